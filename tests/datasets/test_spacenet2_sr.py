# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import shutil
from pathlib import Path

import pytest
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets import SpaceNet2SuperResolution
from torchgeo_gfm.datasets.spacenet2_sr import MAX_VALUE

DATA = Path(__file__).parents[1] / 'data' / 'spacenet2_sr'


class TestSpaceNet2SuperResolution:
    @pytest.mark.parametrize(
        ('target', 'bands'), [('MUL-PanSharpen', 8), ('RGB-PanSharpen', 3)]
    )
    def test_getitem(self, target: str, bands: int) -> None:
        ds = SpaceNet2SuperResolution(DATA, aois=[2], target=target)  # type: ignore[arg-type]
        assert len(ds) == 5
        sample = ds[0]
        assert sample['image'].shape == (8, 163, 163)
        assert sample['target'].shape == (bands, 652, 652)
        for x in sample.values():
            assert 0 <= x.min()
            assert x.max() <= 1

    def test_reads_chips_as_torchgeo_does(self) -> None:
        # our reader uses SpaceNet2's public attributes; TorchGeo's private reader is the
        # reference it must match (resampling, chip size, dtype)
        ds = SpaceNet2SuperResolution(DATA, aois=[2])
        for view, key in ((ds.low, 'image'), (ds.high, 'target')):
            expected = view._load_image(view.images[1])[0] / MAX_VALUE
            torch.testing.assert_close(ds[1][key], expected.clamp(0, 1))

    def test_mismatched_products(self, tmp_path: Path) -> None:
        # SpaceNet2's test split has no labels to align the products by
        test = tmp_path / 'SN2_buildings' / 'test'
        shutil.copytree(DATA / 'SN2_buildings' / 'train', test)
        next((test / 'AOI_2_Vegas' / 'MUL-PanSharpen').iterdir()).unlink()
        with pytest.raises(ValueError, match='chips differ'):
            SpaceNet2SuperResolution(tmp_path, split='test', aois=[2])

    def test_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetNotFoundError):
            SpaceNet2SuperResolution(tmp_path, aois=[2])
