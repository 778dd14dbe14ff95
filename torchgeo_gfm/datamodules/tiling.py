# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Crop for training, tile for evaluation: datamodules of scenes of different sizes."""

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch.utils.data import Dataset, Subset, random_split
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

from .._utils import tile_starts
from ..transforms import RandomPairCrop

__all__ = ('GridTiles', 'tile_starts')  # tile_starts: public here since 0.1


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


class _CropTrainTileEval(NonGeoDataModule):
    """``setup`` for scenes of different sizes: random crops to train, grid tiles to score.

    Mixed in before a TorchGeo datamodule that has ``dataset_class``, ``patch_size``
    and ``val_split_pct`` (OSCD, Vaihingen). Training samples are cropped on the CPU
    (:class:`~torchgeo_gfm.transforms.RandomPairCrop`) so they can be collated; each
    val/test scene is cut into a grid of ``patch_size`` windows (:class:`GridTiles`)
    so every pixel is scored. Validation is TorchGeo's random split of the train
    split (seed 0).
    """

    patch_size: tuple[int, int]
    val_split_pct: float

    def _split(self, split: str, **kwargs: Any) -> NonGeoDataset:
        """One split of ``dataset_class`` (which TorchGeo types as a bare Dataset)."""
        make = cast(Callable[..., NonGeoDataset], self.dataset_class)
        return make(split=split, **kwargs)

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        if stage in ('fit', 'validate'):
            self.dataset = self._split('train', **self.kwargs)
            generator = torch.Generator().manual_seed(0)
            train, val = random_split(
                self.dataset, [1 - self.val_split_pct, self.val_split_pct], generator
            )
            crop = RandomPairCrop(self.patch_size)
            cropped = self._split('train', transforms=crop, **self.kwargs)
            self.train_dataset = Subset(cropped, train.indices)
            self.val_dataset = GridTiles(self.dataset, self.patch_size, val.indices)
        if stage == 'test':
            test = self._split('test', **self.kwargs)
            self.test_dataset = GridTiles(test, self.patch_size, range(len(test)))
