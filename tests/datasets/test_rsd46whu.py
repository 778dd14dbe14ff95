# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets import RSD46WHU

ROOT = Path('tests', 'data', 'rsd46whu')


class TestRSD46WHU:
    @pytest.mark.parametrize(('split', 'n'), [('train', 12), ('test', 6), ('all', 18)])
    def test_official_split(self, split: str, n: int) -> None:
        ds = RSD46WHU(ROOT, split=split)  # type: ignore[arg-type]
        assert len(ds) == n
        assert ds.classes == ['Airplane', 'Bare land', 'Water']
        sample = ds[n - 1]
        assert sample['image'].shape == (3, 16, 16)
        assert sample['label'] == 2

    def test_hashed_split_without_official_folders(self, tmp_path: Path) -> None:
        base = tmp_path / 'RSD46-WHU'
        shutil.copytree(ROOT / 'RSD46-WHU' / 'train', base)
        train, test = RSD46WHU(tmp_path, 'train'), RSD46WHU(tmp_path, 'test')
        assert len(train) + len(test) == len(RSD46WHU(tmp_path)) == 12
        assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}

    def test_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetNotFoundError, match=r'not found.*Baidu Netdisk'):
            RSD46WHU(tmp_path)

    def test_download_explains(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetNotFoundError, match='cannot be downloaded'):
            RSD46WHU(tmp_path, download=True)

    def test_checksum(self) -> None:
        with pytest.raises(ValueError, match='3 class folders, expected 46'):
            RSD46WHU(ROOT, checksum=True)

    def test_bad_split(self) -> None:
        with pytest.raises(ValueError, match='split must'):
            RSD46WHU(ROOT, split='val')  # type: ignore[arg-type]

    def test_plot(self) -> None:
        ds = RSD46WHU(ROOT)
        fig = ds.plot(ds[0], show_titles=False)
        plt.close(fig)
        assert ds[0]['image'].dtype == torch.float32


def test_transforms() -> None:
    ds = RSD46WHU(ROOT, transforms=lambda s: {**s, 'image': s['image'] / 255})
    assert ds[0]['image'].max() <= 1
