# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules import Vaihingen2DTiledDataModule
from torchgeo_gfm.datamodules.tiling import GridTiles, tile_starts

DATA = Path(__file__).parents[1] / 'data'


class TestVaihingen2DTiledDataModule:
    def test_train_crops_tiles_of_any_size(self) -> None:
        dm = Vaihingen2DTiledDataModule(
            root=DATA / 'vaihingen', batch_size=4, patch_size=16
        )
        batch = device_batch(dm, 'train')
        assert batch['image'].shape == (4, 3, 16, 16)
        assert batch['mask'].shape == (4, 16, 16)

    @pytest.mark.parametrize('stage', ['val', 'test'])
    def test_eval_tiles_whole_scenes(self, stage: str) -> None:
        dm = Vaihingen2DTiledDataModule(
            root=DATA / 'vaihingen', batch_size=4, patch_size=16
        )
        batch = device_batch(dm, stage)
        assert batch['image'].shape == (4, 3, 16, 16)
        dataset = dm.val_dataset if stage == 'val' else dm.test_dataset
        assert isinstance(dataset, GridTiles)
        # every 16 px window of each scene: ceil(h / 16) * ceil(w / 16) tiles
        scenes = {i for i, _, _ in dataset.tiles}
        expected = sum(
            len(tile_starts(dataset.dataset[i]['image'].shape[-2], 16))
            * len(tile_starts(dataset.dataset[i]['image'].shape[-1], 16))
            for i in scenes
        )
        assert len(dataset) == expected
