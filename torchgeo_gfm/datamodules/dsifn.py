# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""DSIFN datamodule."""

from typing import Any

import kornia.augmentation as K
from timm.layers import to_2tuple
from torchgeo.datamodules import NonGeoDataModule

from ..datasets.dsifn import DSIFN
from ..transforms import BitemporalAugmentation
from .utils import IMAGENET_MEAN, IMAGENET_STD, crop_and_flips


class DSIFNDataModule(NonGeoDataModule):
    """LightningDataModule for :class:`~torchgeo_gfm.datasets.DSIFN`.

    Uses the dataset's train/val/test splits. Training takes random crops with flips
    (the same for both dates and the mask, on the device); validation and test see
    whole tiles.

    .. versionadded:: 0.1
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        batch_size: int = 8,
        patch_size: tuple[int, int] | int = 256,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new DSIFNDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: size of training crops, ``size`` or ``(height, width)``.
            num_workers: number of workers for parallel data loading.
            **kwargs: passed to :class:`~torchgeo_gfm.datasets.DSIFN`.
        """
        super().__init__(DSIFN, batch_size, num_workers, **kwargs)
        self.patch_size = to_2tuple(patch_size)
        # both dates share the normalization: statistics repeated per date
        mean, std = self.mean.repeat(2), self.std.repeat(2)
        self.train_aug = BitemporalAugmentation(
            *crop_and_flips(mean, std, self.patch_size)
        )
        self.aug = BitemporalAugmentation(K.Normalize(mean=mean, std=std))
