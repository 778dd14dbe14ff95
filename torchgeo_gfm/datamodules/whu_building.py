# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""WHU Aerial building datamodule."""

from typing import Any

import kornia.augmentation as K
from timm.layers import to_2tuple
from torchgeo.datamodules import NonGeoDataModule

from ..datasets.whu_building import WHUBuilding
from .utils import IMAGENET_MEAN, IMAGENET_STD, crop_and_flips


class WHUBuildingDataModule(NonGeoDataModule):
    """LightningDataModule for :class:`~torchgeo_gfm.datasets.WHUBuilding`.

    Uses the dataset's train/val/test splits. Training takes random crops with flips
    (on the device); validation and test see whole 512x512 tiles.

    .. versionadded:: 0.1
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        batch_size: int = 8,
        patch_size: tuple[int, int] | int = 512,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new WHUBuildingDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: size of training crops, ``size`` or ``(height, width)``.
            num_workers: number of workers for parallel data loading.
            **kwargs: passed to :class:`~torchgeo_gfm.datasets.WHUBuilding`.
        """
        super().__init__(WHUBuilding, batch_size, num_workers, **kwargs)
        self.patch_size = to_2tuple(patch_size)
        self.train_aug = K.AugmentationSequential(
            *crop_and_flips(self.mean, self.std, self.patch_size),
            data_keys=None,
            keepdim=True,
        )
