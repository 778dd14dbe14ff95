# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""UC Merced datamodule with GFM's fine-tuning input pipeline."""

from typing import Any

import kornia.augmentation as K
from torchgeo.datamodules import UCMercedDataModule

from .utils import IMAGENET_MEAN, IMAGENET_STD


class UCMercedImageNetDataModule(UCMercedDataModule):
    """TorchGeo's UC Merced datamodule with GFM's ImageNet-style fine-tuning pipeline.

    TorchGeo's divides by 255 and only resizes. The GFM weights expect ImageNet
    statistics, and the authors fine-tuned (their ``data/ucmerced.py`` with mixup on) with
    a resize to ``size``, a random resized crop (area 0.67-1, aspect 3/4-4/3) and
    horizontal and vertical flips; evaluation resizes to ``size``. Splits and arguments
    are TorchGeo's. Mixup and cutmix are in the task
    (:class:`~torchgeo_gfm.tasks.FinetuneClassification`).

    .. versionadded:: 0.1
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 256,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        **kwargs: Any,
    ) -> None:
        """Initialize a new UCMercedImageNetDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            size: input size of the model (the paper fine-tunes at 256).
            scale: area range of the training crops (the authors').
            ratio: aspect ratio range of the training crops.
            **kwargs: passed to :class:`~torchgeo.datasets.UCMerced`.
        """
        super().__init__(batch_size, num_workers, **kwargs)
        normalize = K.Normalize(mean=self.mean, std=self.std)
        self.train_aug = K.AugmentationSequential(
            normalize,
            K.Resize((size, size)),
            K.RandomResizedCrop((size, size), scale=scale, ratio=ratio),
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
            data_keys=None,
            keepdim=True,
        )
        self.aug = K.AugmentationSequential(
            normalize, K.Resize((size, size)), data_keys=None, keepdim=True
        )
