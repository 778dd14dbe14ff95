# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import Dataset

from torchgeo_gfm.datamodules import Vaihingen2DDataModule
from torchgeo_gfm.datamodules.tiling import GridTiles, tile_starts

DATA = Path(__file__).parents[1] / 'data'


class Scenes(Dataset[dict]):
    """Scenes of different sizes whose pixels hold their own coordinates."""

    sizes = ((10, 7), (4, 4))

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> dict:
        h, w = self.sizes[i]
        yx = torch.stack(
            torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
        )
        return {'image': yx[None].float(), 'mask': yx[0], 'label': i}


@pytest.mark.parametrize(
    ('length', 'size', 'expected'),
    [(10, 4, [0, 4, 6]), (8, 4, [0, 4]), (4, 4, [0]), (3, 4, [0])],
)
def test_tile_starts(length: int, size: int, expected: list[int]) -> None:
    assert tile_starts(length, size) == expected


def test_grid_tiles_cover_every_pixel() -> None:
    tiles = GridTiles(Scenes(), (4, 4), indices=[0, 1])
    assert len(tiles) == 3 * 2 + 1
    seen = torch.zeros(10, 7, dtype=torch.bool)
    for i in range(6):
        tile = tiles[i]
        assert tile['image'].shape == (1, 2, 4, 4)
        assert torch.equal(tile['mask'], tile['image'][0, 0].long())
        assert tile['label'] == 0
        ys, xs = tile['image'][0, 0].long(), tile['image'][0, 1].long()
        seen[ys, xs] = True
    assert seen.all()
    assert tiles[6]['image'].shape == (1, 2, 4, 4)
    assert tiles[6]['label'] == 1


class TestVaihingen2DDataModule:
    def _batch(self, dm: Vaihingen2DDataModule, stage: str) -> dict:
        dm.trainer = Trainer(logger=False, enable_progress_bar=False)
        dm.setup('fit' if stage in ('train', 'val') else stage)
        batch = next(iter(getattr(dm, f'{stage}_dataloader')()))
        flag = {'train': 'training', 'val': 'validating'}.get(stage, 'testing')
        setattr(dm.trainer, flag, True)
        return dm.on_after_batch_transfer(batch, 0)

    def test_train_crops_tiles_of_any_size(self) -> None:
        dm = Vaihingen2DDataModule(root=DATA / 'vaihingen', batch_size=4, patch_size=16)
        batch = self._batch(dm, 'train')
        assert batch['image'].shape == (4, 3, 16, 16)
        assert batch['mask'].shape == (4, 16, 16)

    @pytest.mark.parametrize('stage', ['val', 'test'])
    def test_eval_tiles_whole_scenes(self, stage: str) -> None:
        dm = Vaihingen2DDataModule(root=DATA / 'vaihingen', batch_size=4, patch_size=16)
        batch = self._batch(dm, stage)
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
