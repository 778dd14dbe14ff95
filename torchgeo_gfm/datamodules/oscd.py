# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""OSCD datamodule that works with Kornia >= 0.8."""

from typing import Any

import kornia.augmentation as K
import torch
from torch.utils.data import Subset, random_split
from torchgeo.datamodules import OSCDDataModule as _OSCDDataModule
from torchgeo.datasets import OSCD
from torchgeo.datasets.utils import Sample

from .dsifn import BitemporalAugmentation
from .tiling import GridTiles


class RandomPairCrop:
    """Crop the same random window from both dates of ``image`` and from ``mask``.

    OSCD's cities differ in size, so samples are cropped before collation.

    .. versionadded:: 0.1
    """

    def __init__(self, size: tuple[int, int]) -> None:
        """Initialize a new RandomPairCrop.

        Args:
            size: (height, width) of the crop; smaller images are zero-padded.
        """
        self.size = size

    def __call__(self, sample: Sample) -> Sample:
        """Crop one sample.

        Args:
            sample: ``image`` ``[T, C, H, W]`` and ``mask`` ``[1, H, W]``.

        Returns:
            The cropped sample.
        """
        image, mask = sample['image'], sample['mask']
        ch, cw = self.size
        pad_h, pad_w = max(0, ch - image.shape[-2]), max(0, cw - image.shape[-1])
        if pad_h or pad_w:
            image = torch.nn.functional.pad(image, (0, pad_w, 0, pad_h))
            mask = torch.nn.functional.pad(mask, (0, pad_w, 0, pad_h))
        top = int(torch.randint(0, image.shape[-2] - ch + 1, (1,)))
        left = int(torch.randint(0, image.shape[-1] - cw + 1, (1,)))
        window = (..., slice(top, top + ch), slice(left, left + cw))
        return {**sample, 'image': image[window], 'mask': mask[window]}


class OSCDDataModule(_OSCDDataModule):
    """TorchGeo's OSCD datamodule, fixed for Kornia >= 0.8.

    TorchGeo 0.10's :class:`~torchgeo.datamodules.OSCDDataModule` crops with
    ``K.VideoSequential``, which Kornia >= 0.8 rejects for a 2-date image with a 1-frame
    mask. This one crops on the CPU (:class:`RandomPairCrop`, same window for both
    dates and the mask) and normalizes/flips on the device. Splits, statistics and
    arguments are TorchGeo's.

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
        """Initialize a new OSCDDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: size of each crop, ``size`` or ``(height, width)``.
            val_split_pct: fraction of the train split used for validation.
            num_workers: number of workers for parallel data loading.
            **kwargs: passed to :class:`~torchgeo.datasets.OSCD`.
        """
        super().__init__(batch_size, patch_size, val_split_pct, num_workers, **kwargs)
        mean, std = self.mean.repeat(2), self.std.repeat(2)
        self.train_aug = BitemporalAugmentation(
            K.Normalize(mean=mean, std=std),
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
        )
        self.aug = BitemporalAugmentation(K.Normalize(mean=mean, std=std))

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        if stage in ('fit', 'validate'):
            crop = RandomPairCrop(self.patch_size)
            self.dataset = OSCD(split='train', **self.kwargs)
            generator = torch.Generator().manual_seed(0)
            train, val = random_split(
                self.dataset, [1 - self.val_split_pct, self.val_split_pct], generator
            )
            cropped = OSCD(split='train', transforms=crop, **self.kwargs)
            self.train_dataset = Subset(cropped, train.indices)
            self.val_dataset = GridTiles(self.dataset, self.patch_size, val.indices)
        if stage == 'test':
            test = OSCD(split='test', **self.kwargs)
            self.test_dataset = GridTiles(test, self.patch_size, range(len(test)))
