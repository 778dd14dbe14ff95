# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""DSIFN datamodule."""

from typing import Any

import kornia.augmentation as K
from einops import rearrange
from torch import nn
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample
from torchgeo.samplers.utils import _to_tuple

from ..datasets.dsifn import DSIFN
from .utils import IMAGENET_MEAN, IMAGENET_STD


class BitemporalAugmentation(nn.Module):
    """Apply 2-D augmentations to ``[B, T, C, H, W]`` images and their ``[B, 1, H, W]`` mask.

    The dates are folded into channels, so every date and the mask get the same
    geometric transform (Kornia's ``VideoSequential`` refuses masks with fewer frames
    than the video).

    .. versionadded:: 0.1
    """

    def __init__(self, *augmentations: K.AugmentationBase2D) -> None:
        """Initialize a new BitemporalAugmentation.

        Args:
            *augmentations: Kornia augmentations for ``[B, C, H, W]`` images.
        """
        super().__init__()
        self.aug = K.AugmentationSequential(
            *augmentations, data_keys=None, keepdim=True
        )

    def forward(self, batch: Sample) -> Sample:
        """Augment a batch.

        Args:
            batch: ``image`` ``[B, T, C, H, W]`` and ``mask`` ``[B, 1, H, W]``.

        Returns:
            The augmented batch, same shapes (up to crops).
        """
        t = batch['image'].shape[1]
        batch = {
            **batch,
            'image': rearrange(batch['image'], 'b t c h w -> b (t c) h w'),
        }
        batch = self.aug(batch)
        batch['image'] = rearrange(batch['image'], 'b (t c) h w -> b t c h w', t=t)
        return batch


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
        self.patch_size = _to_tuple(patch_size)
        # both dates share the normalization: statistics repeated per date
        mean, std = self.mean.repeat(2), self.std.repeat(2)
        self.train_aug = BitemporalAugmentation(
            K.Normalize(mean=mean, std=std),
            K.RandomCrop(self.patch_size, pad_if_needed=True),
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
        )
        self.aug = BitemporalAugmentation(K.Normalize(mean=mean, std=std))
