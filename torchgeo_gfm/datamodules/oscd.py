# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""OSCD datamodule that works with Kornia >= 0.8 and scores whole cities."""

from typing import Any

import kornia.augmentation as K
from torchgeo.datamodules import OSCDDataModule

from ..transforms import BitemporalAugmentation
from .tiling import _CropTrainTileEval


# The Kornia >= 0.8 fix is upstream/torchgeo/oscd-kornia.patch: once TorchGeo ships it,
# BitemporalAugmentation here can go (the whole-city tiled evaluation stays ours).
class OSCDTiledDataModule(_CropTrainTileEval, OSCDDataModule):
    """TorchGeo's OSCD datamodule, fixed for Kornia >= 0.8, tiled for evaluation.

    TorchGeo 0.10's :class:`~torchgeo.datamodules.OSCDDataModule` crops with
    ``K.VideoSequential``, which Kornia >= 0.8 rejects for a 2-date image with a 1-frame
    mask. This one crops training samples on the CPU
    (:class:`~torchgeo_gfm.transforms.RandomPairCrop`, same window for both dates and
    the mask), scores every pixel of the val/test cities on a grid of ``patch_size``
    tiles, and normalizes/flips on the device. Splits, statistics and arguments are
    TorchGeo's.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 32,
        patch_size: tuple[int, int] | int = 64,
        val_split_pct: float = 0.2,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new OSCDTiledDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: size of each crop and tile, ``size`` or ``(height, width)``.
            val_split_pct: fraction of the train split used for validation.
            num_workers: number of workers for parallel data loading.
            **kwargs: passed to :class:`~torchgeo.datasets.OSCD`.
        """
        super().__init__(batch_size, patch_size, val_split_pct, num_workers, **kwargs)
        # both dates share the normalization: statistics repeated per date
        mean, std = self.mean.repeat(2), self.std.repeat(2)
        self.train_aug = BitemporalAugmentation(
            K.Normalize(mean=mean, std=std),
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
        )
        self.aug = BitemporalAugmentation(K.Normalize(mean=mean, std=std))
