# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Vaihingen datamodule that scores whole tiles."""

import kornia.augmentation as K
from torchgeo.datamodules import Vaihingen2DDataModule

from .tiling import _CropTrainTileEval
from .utils import IMAGENET_MEAN, IMAGENET_STD


# Workaround for TorchGeo 0.10.1; upstream/torchgeo/vaihingen-batches-tiles.patch makes
# TorchGeo's own datamodule crop before collation and score every pixel: drop this class
# (keeping the ImageNet statistics) once TorchGeo ships it.
class Vaihingen2DTiledDataModule(_CropTrainTileEval, Vaihingen2DDataModule):
    """TorchGeo's Vaihingen datamodule, scoring every pixel of the val/test tiles.

    TorchGeo 0.10's :class:`~torchgeo.datamodules.Vaihingen2DDataModule` validates and
    tests on one center crop of ``patch_size`` per ~2000 px tile, a few percent of the
    test area, and collates whole tiles of different sizes for training (which fails
    for batches > 1 on the real data). This one crops training tiles on the CPU
    (:class:`~torchgeo_gfm.transforms.RandomPairCrop`) and cuts each val/test tile into
    a grid of ``patch_size`` windows, flips training crops, and normalises with
    ImageNet statistics like the GFM weights (TorchGeo divides by 255). Splits and
    arguments are TorchGeo's.

    .. versionadded:: 0.1
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def setup(self, stage: str) -> None:
        """Set up datasets and the device augmentations.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        # here, not in __init__: TorchGeo's __init__ builds crops we replace, and
        # overriding it would repeat its signature for LightningCLI
        normalize = K.Normalize(mean=self.mean, std=self.std)
        self.train_aug = K.AugmentationSequential(
            normalize,
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
            data_keys=None,
            keepdim=True,
        )
        self.aug = K.AugmentationSequential(normalize, data_keys=None, keepdim=True)
        super().setup(stage)
