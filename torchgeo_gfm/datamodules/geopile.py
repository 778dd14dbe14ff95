# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPile datamodule: uint8 batches from CPU workers, GFM augmentation on the device."""

import logging
import os
from collections.abc import Sequence
from typing import Any

import kornia.augmentation as K
import torch
from torch import nn
from torchgeo.datamodules import BaseDataModule
from torchgeo.datasets.utils import Sample

from ..datasets.geopile import GeoPile
from .utils import IMAGENET_MEAN, IMAGENET_STD, _FolderPretrainDataModule, check_sizes

logger = logging.getLogger(__name__)


def gfm_augmentations(
    size: int,
    scale: tuple[float, float] = (0.67, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.5,
    mean: Sequence[float] | None = tuple(IMAGENET_MEAN.tolist()),
    std: Sequence[float] | None = tuple(IMAGENET_STD.tolist()),
) -> tuple[K.AugmentationSequential, K.AugmentationSequential]:
    """GFM's pretraining augmentation and its deterministic validation counterpart.

    One implementation for every GeoPile datamodule (folders or streaming shards), so
    that the data a model sees does not depend on where the images are stored.

    Args:
        size: side of the crops fed to the model.
        scale: RandomResizedCrop area range, relative to the loaded image.
        ratio: RandomResizedCrop aspect-ratio range.
        flip: probability of a horizontal flip.
        mean: per-channel mean, 0-255 scale; None (with ``std``): no normalisation,
            for stored values of any number of bands, which the task normalises with
            its sensor.
        std: per-channel standard deviation, 0-255 scale.

    Returns:
        ``(train_aug, aug)``: RandomResizedCrop + flip + normalize, and resize +
        normalize; both take and return ``{'image': float [B, C, H, W]}``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``mean`` and ``std`` may be None.
    """
    normalize = (
        []
        if mean is None or std is None
        else [K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std))]
    )
    train_aug = K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=scale, ratio=ratio),
        K.RandomHorizontalFlip(p=flip),
        *normalize,
        data_keys=None,
        keepdim=True,
    )
    aug = K.AugmentationSequential(
        K.Resize((size, size)), *normalize, data_keys=None, keepdim=True
    )
    return train_aug, aug


def augment_batch(datamodule: BaseDataModule, batch: Sample) -> bool:
    """Augment (training) or resize and normalize (otherwise) a uint8 batch in place.

    Args:
        datamodule: a datamodule with ``train_aug`` and ``aug`` from
            :func:`gfm_augmentations`.
        batch: ``{'image': uint8 [B, 3, H, W], ...}`` on the device.

    Returns:
        Whether the trainer is training (the training augmentation was applied).

    .. versionadded:: 0.1
    """
    trainer = datamodule.trainer
    training = trainer is not None and trainer.training
    aug: nn.Module = datamodule.train_aug if training else datamodule.aug  # type: ignore[assignment]
    batch['image'] = aug({'image': batch['image'].float()})['image']
    return training


class GeoPileDataModule(_FolderPretrainDataModule):
    """LightningDataModule for GeoPile, with GFM's pretraining augmentation.

    CPU workers only read and decode: each image becomes a ``load_size`` x ``load_size``
    uint8 tensor (a random square of its shorter side, resized with antialiasing; a
    no-op for the 256 px images that make up most of GeoPile, and large JPEGs are decoded
    at reduced scale). That is where mixed sizes become one size, so any mix of sizes and
    formats batches; a square crop (not a squashing resize) keeps the ground's aspect, and
    for non-square images the device-side crop then samples within that random square
    rather than the whole image. Batches stay uint8 until they reach the device (4x less to copy than
    float), where :meth:`on_after_batch_transfer` applies the paper's augmentation per
    sample with Kornia: RandomResizedCrop(``size``, ``scale``, ``ratio``), horizontal flip
    and ImageNet mean/std. Validation (a held-out ``val_fraction``, optional) is resized
    to ``size`` and normalized, without randomness.

    Output batches: ``{'image': float [B, 3, size, size], 'source': int64 [B]}``.

    Unreadable files are replaced (see :class:`~torchgeo_gfm.datasets.GeoPile`); the
    number skipped so far is logged as a warning whenever it grows, and is
    :attr:`num_skipped`.

    Resuming: the training loader is a torchdata ``StatefulDataLoader``, whose position
    in the epoch (shuffled order and number of batches served) is saved in each
    checkpoint as this data module's state (:class:`~torchgeo_gfm.datamodules.ResumableTrainLoader`), so ``--ckpt_path`` after a mid-epoch kill continues with the
    very samples, in the same order, that the uninterrupted run would have seen (the
    random crops and flips are drawn afresh: Lightning does not checkpoint the random
    number generators).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 192,
        load_size: int = 256,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        mean: Sequence[float] = tuple(IMAGENET_MEAN.tolist()),
        std: Sequence[float] = tuple(IMAGENET_STD.tolist()),
        val_fraction: float = 0.0,
        sources: Sequence[str] | None = None,
        seed: int = 0,
        pin_memory: bool = True,
        **kwargs: Any,
    ) -> None:
        """Initialize a new GeoPileDataModule instance.

        Args:
            root: GeoPile folder (``root/<source>/<class>/<image>``).
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            size: side of the augmented crops fed to the model.
            load_size: side every image has after loading on the CPU (>= ``size``).
            scale: RandomResizedCrop area range, relative to the loaded image.
            ratio: RandomResizedCrop aspect-ratio range.
            flip: probability of a horizontal flip.
            mean: per-channel mean, 0-255 scale.
            std: per-channel standard deviation, 0-255 scale.
            val_fraction: fraction of files held out for validation; 0 disables it.
            sources: source folders to use (None: all).
            seed: seed of the train/val assignment.
            pin_memory: pin batches in page-locked memory (when CUDA is available).
            **kwargs: additional keyword arguments passed to
                :class:`~torchgeo_gfm.datasets.GeoPile`.

        Raises:
            TypeError: if ``size``, ``load_size``, ``batch_size`` or ``num_workers`` is
                not an int.
            ValueError: if one of them or ``val_fraction`` is out of range, or
                ``load_size`` < ``size``.
        """
        self.size = check_sizes(size, load_size, batch_size, num_workers)
        super().__init__(
            GeoPile,
            batch_size,
            num_workers,
            gfm_augmentations(size, scale, ratio, flip, mean, std),
            val_fraction,
            pin_memory,
            root=root,
            sources=sources,
            size=load_size,
            seed=seed,
            **kwargs,
        )
        self._reported_skips = 0

    def setup(self, stage: str) -> None:
        """Set up the train (and, with ``val_fraction``, validation) datasets.

        Args:
            stage: either 'fit', 'validate', 'test' or 'predict'.
        """
        held_out = self.val_fraction > 0
        args = {**self.kwargs, 'val_fraction': self.val_fraction}
        if stage == 'fit':
            self.train_dataset = GeoPile(split='train' if held_out else 'all', **args)
            logger.info('GeoPile train: %s', self.train_dataset)
            self._check_enough_images(len(self.train_dataset))
        if stage in ('fit', 'validate') and held_out:
            self.val_dataset = GeoPile(split='val', **args)
        if stage in ('test', 'predict'):
            self.dataset = GeoPile(split='val' if held_out else 'all', **args)

    def _check_enough_images(self, n: int) -> None:
        """Refuse a train split that gives no full batch (drop_last: empty epochs)."""
        batch = self.train_batch_size or self.batch_size
        replicas = getattr(self.trainer, 'world_size', 1)  # DDP splits the data
        if n // replicas < batch:
            per = f' ({n // replicas} per device on {replicas})' if replicas > 1 else ''
            raise ValueError(
                f'GeoPile train split has {n} images{per}, fewer than batch_size '
                f'{batch}: an epoch would have no batch (the last partial batch is '
                'dropped). Reduce batch_size or add images.'
            )

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Augment and normalize the uint8 images on the device.

        Args:
            batch: a batch from a GeoPile data loader.
            dataloader_idx: index of the data loader.

        Returns:
            The batch, ``image`` now float ``[B, 3, size, size]``.
        """
        if augment_batch(self, batch):
            self._report_skips()
        return batch

    @property
    def num_skipped(self) -> int:
        """Unreadable training files skipped so far (all workers).

        .. versionadded:: 0.1
        """
        dataset = self.train_dataset
        return dataset.num_skipped if isinstance(dataset, GeoPile) else 0

    def _report_skips(self) -> None:
        """Log the count of skipped files whenever it grows (cheap: one tensor sum)."""
        skipped = self.num_skipped
        if skipped > self._reported_skips:
            self._reported_skips = skipped
            logger.warning(
                'GeoPile: %d unreadable file(s) skipped so far (replaced by readable '
                'ones); their names were warned about once each',
                skipped,
            )
