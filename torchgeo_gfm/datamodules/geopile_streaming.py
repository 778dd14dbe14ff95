# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPile streamed from litdata shards (a folder or object storage), for many machines.

Shards of RGB images give GFM's normalised RGB batches; multiband shards
(``torchgeo-gfm shard --sensor``) give the stored values of their sensor, un-normalised,
as every multispectral datamodule does (the task normalises with ``sensor``).
"""

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from litdata import StreamingDataLoader
from torch.utils.data import DataLoader
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..datasets.shards import GeoPileStreamingDataset
from ..sensors import Sensor, get_sensor
from .geopile import augment_batch, gfm_augmentations
from .utils import IMAGENET_MEAN, IMAGENET_STD, ResumableTrainLoader, check_sizes

logger = logging.getLogger(__name__)


class GeoPileStreamingDataModule(ResumableTrainLoader, NonGeoDataModule):
    """GeoPile from shards written by ``torchgeo-gfm shard``, with GFM's augmentation.

    The same batches as :class:`~torchgeo_gfm.datamodules.GeoPileDataModule` (the same
    CPU decoding to ``load_size`` and the same device-side augmentation, one
    implementation: :func:`~torchgeo_gfm.datamodules.geopile.gfm_augmentations`):
    ``{'image': float [B, 3, size, size], 'source': int64 [B]}``.

    Data come from litdata's ``StreamingDataset``: shards are downloaded on demand from
    ``input_dir`` (a folder or ``s3://``, ``gs://``, ``azure://`` URL) into a local cache
    of at most ``max_cache_size``; shards and the samples within them are shuffled anew
    each epoch with the same seed on every rank; each sample goes to exactly one rank and
    worker per epoch. In a distributed run the samples that would leave ranks with
    unequal batch counts (fewer than ``world_size x batch_size``) are left out of that
    epoch, a different few each epoch, so collectives stay in step.

    Object-storage settings: the standard environment variables of each client
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_DEFAULT_REGION``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...) or
    ``storage_options`` (litdata's: for S3, boto3 client arguments such as
    ``endpoint_url``).

    Resuming: the training loader is litdata's ``StreamingDataLoader``, whose
    ``state_dict`` (epoch and samples served per worker) is saved in each checkpoint as
    this data module's state (:class:`~torchgeo_gfm.datamodules.ResumableTrainLoader`); ``--ckpt_path`` after a mid-epoch kill continues with the
    samples not yet seen this epoch, none repeated or skipped (same number of devices,
    workers and batch size, and the same data module class).

    Multiband shards (``torchgeo-gfm shard --sensor s2 SOURCE... OUT``): batches are
    ``{'image': float32 [B, C, size, size], 'source': int64 [B]}`` in the sensor's
    stored values (e.g. Sentinel-2 DN), cropped and flipped on the device as above but
    not normalised; :attr:`sensor` is the shards' sensor, read from their index at
    :meth:`setup`. A ``sensor`` given here must store the same values (bands, dtype,
    scale, offset; its statistics may differ, and are the ones used): any other is an
    error naming both. Given for shards of RGB images, a sensor of 3 uint8 bands
    (``'rgb'``) makes their batches follow the same conventions.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Multiband shards, and ``sensor``.
    """

    #: the sensor of the batches (multiband shards, or one given), or None for RGB images
    #: normalised with ``mean`` and ``std`` as before
    sensor: Sensor | None

    def __init__(
        self,
        input_dir: str = 'data/geopile-shards',
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 192,
        load_size: int = 256,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        mean: Sequence[float] = tuple(IMAGENET_MEAN.tolist()),
        std: Sequence[float] = tuple(IMAGENET_STD.tolist()),
        seed: int = 0,
        shuffle: bool = True,
        max_cache_size: str | int | None = None,
        cache_dir: str | None = None,
        storage_options: dict[str, Any] | None = None,
        pin_memory: bool = True,
        sensor: str | None = None,
    ) -> None:
        """Initialize a new GeoPileStreamingDataModule instance.

        Args:
            input_dir: shard folder or object-storage URL (``s3://bucket/geopile``).
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            size: side of the augmented crops fed to the model.
            load_size: side every image has after decoding on the CPU (>= ``size``).
            scale: RandomResizedCrop area range, relative to the loaded image.
            ratio: RandomResizedCrop aspect-ratio range.
            flip: probability of a horizontal flip.
            mean: per-channel mean, 0-255 scale.
            std: per-channel standard deviation, 0-255 scale.
            seed: shuffling seed (identical on every rank).
            shuffle: shuffle shards and samples each epoch.
            max_cache_size: largest local shard cache, e.g. '50GB' (litdata's
                default, 100GB, if None).
            cache_dir: local cache folder (litdata's default if None).
            storage_options: object-storage client options; None: environment.
            pin_memory: pin batches in page-locked memory (when CUDA is available).
            sensor: a shipped sensor name or a sensor YAML file; None: the shards'
                own (checked against them at :meth:`setup`).

        Raises:
            TypeError: if ``size``, ``load_size``, ``batch_size`` or ``num_workers`` is
                not an int.
            ValueError: if one of them is out of range, or ``load_size`` < ``size``.
            SensorError: if ``sensor`` does not load.
        """
        self.size = check_sizes(size, load_size, batch_size, num_workers)
        super().__init__(
            GeoPileStreamingDataset,
            batch_size,
            num_workers,
            input_dir=input_dir,
            size=load_size,
            seed=seed,
            shuffle=shuffle,
            max_cache_size=max_cache_size,
            cache_dir=cache_dir,
            storage_options=storage_options,
            sensor=sensor,
        )
        self.pin_memory = pin_memory
        self.sensor = None if sensor is None else get_sensor(sensor)
        # for stored values (multiband shards): the same crops, not normalised
        self.stored_values_aug = gfm_augmentations(size, scale, ratio, flip, None, None)
        self.train_aug, self.aug = gfm_augmentations(
            size, scale, ratio, flip, mean, std
        )

    def prepare_data(self) -> None:
        """Nothing to download ahead: shards stream on demand."""

    def setup(self, stage: str) -> None:
        """Open the shards (reads only their index).

        Args:
            stage: either 'fit', 'validate', 'test' or 'predict'.
        """
        dataset = self._open_shards()
        if stage == 'fit':
            self.train_dataset = dataset
        else:
            self.dataset = dataset
        if dataset.sensor is not None:  # stored values: crop and flip, no normalising
            self.sensor = dataset.sensor
            self.train_aug, self.aug = self.stored_values_aug
        logger.info(
            'GeoPile shards %s: %d samples (sensor %s)',
            self.kwargs['input_dir'],
            len(dataset),
            self.sensor.name if self.sensor else 'none: RGB images',
        )

    def _open_shards(self) -> GeoPileStreamingDataset:
        """Open the shards; the first rank of each node fetches the index first.

        The ranks of a node share its cache folder: if they all fetch index.json at
        once, one may find the folder before the file is in it.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return GeoPileStreamingDataset(**self.kwargs)
        first = int(os.environ.get('LOCAL_RANK', dist.get_rank())) == 0
        dataset = GeoPileStreamingDataset(**self.kwargs) if first else None
        dist.barrier()
        return dataset or GeoPileStreamingDataset(**self.kwargs)

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Litdata's StreamingDataLoader (stateful: Lightning checkpoints its position).

        Args:
            split: either 'train', 'val', 'test' or 'predict'.

        Returns:
            The data loader.
        """
        dataset = self._valid_attribute(f'{split}_dataset', 'dataset')
        loader = StreamingDataLoader(
            dataset,
            batch_size=self._valid_attribute(f'{split}_batch_size', 'batch_size'),
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )
        return self._resumable(loader) if split == 'train' else loader

    def val_dataloader(self) -> DataLoader[Sample]:
        """No validation: pretraining on GeoPile has no held-out split here.

        Returns:
            An empty list (Lightning: no validation).
        """
        return []  # type: ignore[return-value]

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Augment (and for RGB images, normalize) the stored values on the device.

        Args:
            batch: a batch from the streaming loader.
            dataloader_idx: index of the data loader.

        Returns:
            The batch, ``image`` now float32 ``[B, C, size, size]``.
        """
        augment_batch(self, batch)
        return batch
