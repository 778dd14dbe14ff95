# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Vaihingen datamodule that evaluates whole tiles."""

import kornia.augmentation as K
import torch
from torch.utils.data import Subset, random_split
from torchgeo.datamodules import Vaihingen2DDataModule as _Vaihingen2DDataModule
from torchgeo.datasets import Vaihingen2D

from .oscd import RandomPairCrop
from .tiling import GridTiles
from .utils import IMAGENET_MEAN, IMAGENET_STD


class Vaihingen2DDataModule(_Vaihingen2DDataModule):
    """TorchGeo's Vaihingen datamodule, scoring every pixel of the val/test tiles.

    TorchGeo 0.10's :class:`~torchgeo.datamodules.Vaihingen2DDataModule` validates and
    tests on one center crop of ``patch_size`` per ~2000 px tile, a few percent of the
    test area, and collates whole tiles of different sizes for training (which fails
    for batches > 1 on the real data). This one crops training tiles on the CPU
    (:class:`~.oscd.RandomPairCrop`) and cuts each val/test tile into a grid of
    ``patch_size`` windows (:class:`~.tiling.GridTiles`), flips training crops, and
    normalises with ImageNet statistics like the GFM weights (TorchGeo divides by 255).
    Splits and arguments are TorchGeo's.

    .. versionadded:: 0.1
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        normalize = K.Normalize(mean=self.mean, std=self.std)
        self.train_aug = K.AugmentationSequential(
            normalize,
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
            data_keys=None,
            keepdim=True,
        )
        self.aug = K.AugmentationSequential(normalize, data_keys=None, keepdim=True)
        if stage in ('fit', 'validate'):
            self.dataset = Vaihingen2D(split='train', **self.kwargs)
            generator = torch.Generator().manual_seed(0)
            train, val = random_split(
                self.dataset, [1 - self.val_split_pct, self.val_split_pct], generator
            )
            crop = RandomPairCrop(self.patch_size)
            cropped = Vaihingen2D(split='train', transforms=crop, **self.kwargs)
            self.train_dataset = Subset(cropped, train.indices)
            self.val_dataset = GridTiles(self.dataset, self.patch_size, val.indices)
        if stage == 'test':
            test = Vaihingen2D(split='test', **self.kwargs)
            self.test_dataset = GridTiles(test, self.patch_size, range(len(test)))
