# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets import GeoPile, MLRSNet

ROOT = Path('tests', 'data', 'mlrsnet')


class TestMLRSNet:
    def test_getitem(self) -> None:
        ds = MLRSNet(ROOT)
        assert len(ds) == 15
        assert ds.classes == ['airplane', 'bareland', 'harbor&port']
        sample = ds[0]
        assert sample['image'].shape == (3, 16, 16)
        assert sample['image'].dtype == torch.float32
        assert sample['label'] == 0

    def test_splits_partition_all(self) -> None:
        parts = [MLRSNet(ROOT, split=s) for s in ('train', 'val', 'test')]
        names = [{p for p, _ in ds.samples} for ds in parts]
        assert sum(len(n) for n in names) == 15
        assert set().union(*names) == {p for p, _ in MLRSNet(ROOT).samples}

    def test_multilabel(self) -> None:
        ds = MLRSNet(ROOT, task='multilabel')
        assert ds.labels[:3] == ['airplane', 'airport', 'bare soil']
        label = ds[0]['label']
        assert label.shape == (7,)
        assert set(label.tolist()) <= {0, 1}
        fig = ds.plot(ds[0], suptitle='x')
        plt.close(fig)

    def test_multilabel_missing_labels(self, tmp_path: Path) -> None:
        shutil.copytree(ROOT / 'MLRSNet' / 'Images', tmp_path / 'MLRSNet' / 'Images')
        assert len(MLRSNet(tmp_path)) == 15
        with pytest.raises(DatasetNotFoundError, match='multi-labels not found'):
            MLRSNet(tmp_path, task='multilabel')

    def test_multilabel_missing_row(self, tmp_path: Path) -> None:
        shutil.copytree(ROOT / 'MLRSNet', tmp_path / 'MLRSNet')
        csv = tmp_path / 'MLRSNet' / 'Labels' / 'airplane.csv'
        csv.write_text('\n'.join(csv.read_text().splitlines()[:-1]))
        with pytest.raises(ValueError, match='1 images have no row'):
            MLRSNet(tmp_path, task='multilabel')

    def test_extract_mendeley_zip(self, tmp_path: Path) -> None:
        shutil.copy(ROOT / '7j9bv9vwsx-3.zip', tmp_path)
        ds = MLRSNet(tmp_path, task='multilabel')
        assert len(ds) == 15
        assert (tmp_path / 'MLRSNet' / 'Labels' / 'airplane.csv').exists()

    def test_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(
            DatasetNotFoundError, match=r'not found in root=.*7j9bv9vwsx'
        ):
            MLRSNet(tmp_path)

    def test_download_explains(self, tmp_path: Path) -> None:
        with pytest.raises(
            DatasetNotFoundError, match='cannot be downloaded automatically'
        ):
            MLRSNet(tmp_path, download=True)

    def test_rar_not_extracted(self, tmp_path: Path) -> None:
        images = tmp_path / 'MLRSNet' / 'Images'
        images.mkdir(parents=True)
        (images / 'airplane.rar').write_bytes(b'Rar!')
        with pytest.raises(DatasetNotFoundError, match=r'1 \.rar archives.*unrar x'):
            MLRSNet(tmp_path)

    def test_checksum_counts(self) -> None:
        with pytest.raises(ValueError, match='has 15 images in 3 categories, expected'):
            MLRSNet(ROOT, checksum=True)
        assert len(MLRSNet(ROOT, split='train', checksum=True)) > 0

    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [({'split': 'x'}, 'split must'), ({'task': 'x'}, 'task must')],
    )
    def test_bad_arguments(self, kwargs: dict[str, str], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            MLRSNet(ROOT, **kwargs)  # type: ignore[arg-type]

    def test_transforms_and_plot(self) -> None:
        ds = MLRSNet(ROOT, transforms=lambda s: {**s, 'image': s['image'] / 255})
        sample = ds[0]
        assert sample['image'].max() <= 1
        sample['prediction'] = torch.tensor(1)
        fig = MLRSNet(ROOT).plot({**sample, 'image': sample['image'] * 255})
        assert 'Prediction: bareland' in fig.axes[0].get_title()
        plt.close(fig)

    def test_in_geopile(self) -> None:
        pile = GeoPile.from_datasets({'mlrsnet': MLRSNet(ROOT)})
        assert pile.counts == {'mlrsnet': 15}
        assert pile[0]['image'].dtype == torch.uint8
