# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import pytest
import torch
from torch.utils.data import Dataset

from torchgeo_gfm.datamodules.tiling import GridTiles, tile_starts


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


class TestTileStarts:
    @pytest.mark.parametrize(
        ('length', 'size', 'expected'),
        [(10, 4, [0, 4, 6]), (8, 4, [0, 4]), (4, 4, [0]), (3, 4, [0])],
    )
    def test_tile_starts(self, length: int, size: int, expected: list[int]) -> None:
        assert tile_starts(length, size) == expected

    @pytest.mark.parametrize(
        ('length', 'size', 'stride', 'shift_last', 'expected'),
        [
            (10, 4, 3, True, [0, 3, 6]),
            (11, 4, 3, True, [0, 3, 6, 7]),
            (11, 4, 3, False, [0, 3, 6, 9]),
            (4, 4, 2, False, [0]),
            (9, 4, 0, False, [0]),
        ],
    )
    def test_overlapping(
        self, length: int, size: int, stride: int, shift_last: bool, expected: list[int]
    ) -> None:
        assert tile_starts(length, size, stride, shift_last) == expected

    def test_one_helper_for_the_scene_engine(self) -> None:
        from torchgeo_gfm.scene.tiling import TileGrid
        from torchgeo_gfm.scene.tiling import tile_starts as scene_tile_starts

        assert scene_tile_starts is tile_starts
        grid = TileGrid(height=11, width=4, tile=4, overlap=1)
        assert (grid.rows, grid.cols) == ([0, 3, 6, 7], [0])


class TestGridTiles:
    def test_cover_every_pixel(self) -> None:
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
