# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Multispectral pretraining datamodules: stored values from the CPU, augmentation on the device.

The batch contract every multispectral pretraining datamodule keeps (the SSL4EO ones in
:mod:`torchgeo_gfm.datamodules.ssl4eo` too): ``{'image': float32 [B, C, size, size]}``
holding the sensor's stored values (e.g. uint16 reflectance x 10000), cropped and flipped
but not normalised, and ``self.sensor``: the task normalises with ``sensor.normalize`` and
renders true colour for an RGB teacher with ``sensor.true_colour``.
"""

import os
from typing import Any

import torch
from torch.utils.data import random_split
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

from ..datasets.multiband import MultibandFolder
from ..sensors import Sensor, get_sensor
from .geopile import augment_batch, gfm_augmentations
from .utils import _FolderPretrainDataModule, check_int, check_sizes


class MultibandPretrainDataModule(_FolderPretrainDataModule):
    """Base of the multispectral pretraining datamodules: loaders, split, augmentation.

    CPU workers read the stored values in the sensor's dtype (uint16 stays 2 bytes a
    value on its way to the device); :meth:`on_after_batch_transfer` turns them into
    float32 (exact for uint8 and uint16) and applies GFM's augmentation per sample with
    Kornia: RandomResizedCrop(``size``, ``scale``, ``ratio``) and a horizontal flip, the
    pieces of :func:`~torchgeo_gfm.datamodules.geopile.gfm_augmentations` without
    normalisation. Validation (a held-out ``val_fraction``, optional) is resized
    to ``size`` without randomness.

    Resuming: as :class:`~torchgeo_gfm.datamodules.GeoPileDataModule`, the training loader
    is a torchdata ``StatefulDataLoader`` saved with each checkpoint, so a resumed run
    sees the samples, in the order, of the uninterrupted one (crops, flips and other
    per-sample draws are random afresh).

    Subclasses set ``self.sensor``; :meth:`setup` splits ``dataset_class(**kwargs)``.

    .. versionadded:: 0.2
    """

    sensor: Sensor

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 192,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        val_fraction: float = 0.0,
        seed: int = 0,
        pin_memory: bool = True,
        **kwargs: Any,
    ) -> None:
        """Initialize a new MultibandPretrainDataModule instance.

        Args:
            dataset_class: the dataset, built with ``kwargs``.
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            size: side of the augmented crops fed to the model.
            scale: RandomResizedCrop area range, relative to the loaded image.
            ratio: RandomResizedCrop aspect-ratio range.
            flip: probability of a horizontal flip.
            val_fraction: fraction of the samples held out for validation; 0 disables it.
            seed: seed of the train/val assignment.
            pin_memory: pin batches in page-locked memory (when CUDA is available).
            **kwargs: passed to the dataset.

        Raises:
            TypeError: if ``size``, ``batch_size`` or ``num_workers`` is not an int.
            ValueError: if one of them or ``val_fraction`` is out of range.
        """
        check_int('batch_size', batch_size, 1)
        check_int('num_workers', num_workers, 0)
        self.size = check_int('size', size, 1)
        super().__init__(
            dataset_class,
            batch_size,
            num_workers,
            # stored values: the task normalises with its sensor
            gfm_augmentations(size, scale, ratio, flip, mean=None, std=None),
            val_fraction,
            pin_memory,
            **kwargs,
        )
        self.seed = seed

    def setup(self, stage: str) -> None:
        """Set up the train (and, with ``val_fraction``, validation) datasets.

        Args:
            stage: either 'fit', 'validate', 'test' or 'predict'.
        """
        dataset = self.dataset_class(**self.kwargs)
        if self.val_fraction <= 0:
            self.train_dataset = self.dataset = dataset
            return
        split = torch.Generator().manual_seed(self.seed)
        fractions = [1 - self.val_fraction, self.val_fraction]
        train, val = random_split(dataset, fractions, generator=split)
        self.train_dataset, self.val_dataset, self.dataset = train, val, val

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Crop and flip (training) or resize (otherwise) the stored values on the device.

        Args:
            batch: ``{'image': [B, C, H, W]}`` in the sensor's dtype.
            dataloader_idx: index of the data loader.

        Returns:
            The batch, ``image`` now float32 ``[B, C, size, size]``, not normalised.
        """
        self.sensor.check_bands(batch['image'].shape[1], 'the batch')
        augment_batch(self, batch)
        return batch


class MultibandFolderDataModule(MultibandPretrainDataModule):
    """Multispectral pretraining on a folder tree of multiband GeoTIFFs.

    The data are a :class:`~torchgeo_gfm.datasets.MultibandFolder`: every GeoTIFF under
    ``root``, any size, each read as a random ``load_size`` crop (memory stays bounded
    however big the files), band count and dtype checked against the sensor per file.
    Batches are those of every multispectral pretraining datamodule:
    ``{'image': float32 [B, C, size, size]}`` in the sensor's stored values, cropped and
    flipped on the device, not normalised (see
    :class:`~torchgeo_gfm.datamodules.MultibandPretrainDataModule`).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        sensor: str | os.PathLike[str] | Sensor = 's2',
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 192,
        load_size: int = 256,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        val_fraction: float = 0.0,
        seed: int = 0,
        pin_memory: bool = True,
    ) -> None:
        """Initialize a new MultibandFolderDataModule instance.

        Args:
            root: folder searched (recursively) for GeoTIFFs.
            sensor: the imagery's sensor: a shipped name (``'s2'``), a sensor YAML or a
                :class:`~torchgeo_gfm.sensors.Sensor`.
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            size: side of the augmented crops fed to the model.
            load_size: side of the crops read from the files (>= ``size``).
            scale: RandomResizedCrop area range, relative to the loaded crop.
            ratio: RandomResizedCrop aspect-ratio range.
            flip: probability of a horizontal flip.
            val_fraction: fraction of the files held out for validation; 0 disables it.
            seed: seed of the train/val assignment.
            pin_memory: pin batches in page-locked memory (when CUDA is available).

        Raises:
            TypeError: if a size or count is not an int.
            ValueError: if one is out of range, or ``load_size`` < ``size``.
        """
        check_sizes(size, load_size, batch_size, num_workers)
        self.sensor = get_sensor(sensor)
        super().__init__(
            MultibandFolder,
            batch_size,
            num_workers,
            size,
            scale,
            ratio,
            flip,
            val_fraction,
            seed,
            pin_memory,
            root=root,
            sensor=self.sensor,
        )
        self.kwargs['size'] = load_size  # the dataset's crop size, not ``size``
