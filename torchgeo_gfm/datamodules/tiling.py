# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Evaluate on whole scenes: a dataset of the grid tiles of another dataset's samples."""

from collections.abc import Sequence

from torch.utils.data import Dataset
from torchgeo.datasets.utils import Sample


def tile_starts(length: int, size: int) -> list[int]:
    """Starts of windows of ``size`` covering ``[0, length)``; the last one ends at the edge.

    Args:
        length: extent of the scene.
        size: extent of a tile.

    Returns:
        Window starts (``[0]`` when the scene is not larger than a tile).

    .. versionadded:: 0.1
    """
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size))
    return [*starts, length - size]


class GridTiles(Dataset[Sample]):
    """Every ``size`` tile of each sample of a dataset, covering each scene whole.

    Scenes larger than the tile are cut on a grid whose last row/column is shifted to
    end at the border (so a few pixels are scored twice rather than dropped); smaller
    scenes are returned whole. Applies to all tensors whose last two dimensions match
    the ``image``'s (``image`` and ``mask``, any leading dimensions).

    .. versionadded:: 0.1
    """

    def __init__(
        self, dataset: Dataset[Sample], size: tuple[int, int], indices: Sequence[int]
    ) -> None:
        """Initialize a new GridTiles.

        Args:
            dataset: samples with ``image`` ``[..., H, W]`` (scenes may differ in size).
            size: (height, width) of a tile.
            indices: the samples of *dataset* to tile (e.g. a split's indices).
        """
        self.dataset = dataset
        self.tiles: list[tuple[int, int, int]] = []
        for index in indices:
            h, w = dataset[index]['image'].shape[-2:]
            for top in tile_starts(h, size[0]):
                for left in tile_starts(w, size[1]):
                    self.tiles.append((index, top, left))
        self.size = size
        self._cache: tuple[int, Sample] | None = None

    def __len__(self) -> int:
        """Return the number of tiles.

        Returns:
            Length of the dataset.
        """
        return len(self.tiles)

    def __getitem__(self, i: int) -> Sample:
        """Return one tile.

        Args:
            i: index of the tile.

        Returns:
            The sample's tensors cropped to the tile.
        """
        index, top, left = self.tiles[i]
        # tiles of a scene are consecutive: keep the last scene loaded
        if self._cache is None or self._cache[0] != index:
            self._cache = (index, self.dataset[index])
        sample = self._cache[1]
        hw = sample['image'].shape[-2:]
        window = (..., slice(top, top + self.size[0]), slice(left, left + self.size[1]))
        return {
            k: v[window] if hasattr(v, 'shape') and v.shape[-2:] == hw else v
            for k, v in sample.items()
        }
