# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules import WHUBuildingDataModule

DATA = Path(__file__).parents[1] / 'data'


class TestWHUBuildingDataModule:
    def test_train(self) -> None:
        dm = WHUBuildingDataModule(
            root=DATA / 'whu_building', batch_size=2, patch_size=16
        )
        batch = device_batch(dm, 'train')
        assert batch['image'].shape == (2, 3, 16, 16)
        assert batch['mask'].shape == (2, 16, 16)

    @pytest.mark.parametrize('stage', ['val', 'test'])
    def test_eval(self, stage: str) -> None:
        dm = WHUBuildingDataModule(root=DATA / 'whu_building', batch_size=2)
        batch = device_batch(dm, stage)
        assert batch['image'].shape == (2, 3, 32, 32)
        assert batch['mask'].shape == (2, 32, 32)

    def test_plot(self) -> None:
        dm = WHUBuildingDataModule(root=DATA / 'whu_building')
        dm.setup('validate')
        assert dm.plot(dm.val_dataset[0]) is not None  # type: ignore[index]
