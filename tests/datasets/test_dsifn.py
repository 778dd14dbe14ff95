# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets import DSIFN, ManualDownloadError

ROOT = Path(__file__).parents[1] / 'data' / 'dsifn'


class TestDSIFN:
    @pytest.mark.parametrize(
        ('split', 'length'), [('train', 4), ('val', 2), ('test', 2)]
    )
    def test_getitem(self, split: str, length: int) -> None:
        ds = DSIFN(ROOT, split=split, transforms=lambda s: {**s, 'seen': True})
        assert len(ds) == length
        sample = ds[0]
        assert sample['image'].shape == (2, 3, 32, 32)
        assert sample['image'].dtype == torch.float32
        assert sample['mask'].shape == (1, 32, 32)
        assert set(sample['mask'].unique().tolist()) == {0, 1}
        assert sample['seen']

    def test_invalid_split(self) -> None:
        with pytest.raises(ValueError, match='split must be one of'):
            DSIFN(ROOT, split='foo')  # type: ignore[arg-type]

    def test_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(ManualDownloadError, match='Baidu Cloud') as err:
            DSIFN(tmp_path, download=True)
        assert 'train lacks t1/, t2/, mask/' in str(err.value)
        assert 'GeoZcx' in str(err.value)
        with pytest.raises(DatasetNotFoundError, match='GeoZcx') as err:
            DSIFN(tmp_path)
        assert 'Baidu Cloud' not in str(err.value)

    def test_incomplete(self, tmp_path: Path) -> None:
        shutil.copytree(ROOT / 'val', tmp_path / 'val')
        next((tmp_path / 'val' / 't2').iterdir()).unlink()
        with pytest.raises(DatasetNotFoundError, match='download complete'):
            DSIFN(tmp_path, split='val')
        for p in (tmp_path / 'val' / 't1').iterdir():
            p.unlink()
        with pytest.raises(DatasetNotFoundError, match='holds no images'):
            DSIFN(tmp_path, split='val')

    def test_plot(self) -> None:
        ds = DSIFN(ROOT, split='val')
        sample = ds[0]
        fig = ds.plot(sample, suptitle='test')
        assert len(fig.axes) == 3
        plt.close()
        sample['prediction'] = sample['mask'].clone()
        fig = ds.plot(sample, show_titles=False)
        assert len(fig.axes) == 4
        plt.close()
