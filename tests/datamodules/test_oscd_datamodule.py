# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules import OSCDTiledDataModule

DATA = Path(__file__).parents[1] / 'data'
RGB = ['B04', 'B03', 'B02']


class TestOSCDTiledDataModule:
    @pytest.mark.parametrize('stage', ['train', 'val', 'test'])
    def test_batches(self, stage: str) -> None:
        dm = OSCDTiledDataModule(
            root=DATA / 'oscd', bands=RGB, batch_size=2, patch_size=16
        )
        batch = device_batch(dm, stage)
        assert batch['image'].shape == (2, 2, 3, 16, 16)
        assert batch['mask'].shape == (2, 1, 16, 16)
        # normalized with OSCD's band statistics
        assert batch['image'].abs().mean() < 10

    def test_test_tiles_every_city(self) -> None:
        dm = OSCDTiledDataModule(root=DATA / 'oscd', bands=RGB, patch_size=16)
        dm.setup('test')
        # fake cities are 30-50 px: 3 x 3 tiles of 16 px each
        assert len(dm.test_dataset) == 2 * 9  # type: ignore[arg-type]
