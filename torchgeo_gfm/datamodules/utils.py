# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What the datamodules share."""

import numbers
import warnings
from typing import Any, Protocol, TypeVar

import kornia.augmentation as K
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

#: ImageNet statistics on the 0-255 scale of uint8 batches: the normalisation the GFM
#: student and the ImageNet-22k Swin were trained with (TorchGeo's default is 0 / 255).
IMAGENET_MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN) * 255
IMAGENET_STD = torch.tensor(IMAGENET_DEFAULT_STD) * 255


def crop_and_flips(
    mean: Tensor, std: Tensor, patch_size: tuple[int, int]
) -> list[K.AugmentationBase2D]:
    """Training augmentation of the dense datasets: normalise, random crop, flips.

    Args:
        mean: per-channel mean (0-255 scale).
        std: per-channel standard deviation.
        patch_size: (height, width) of the crops; smaller images are padded.

    Returns:
        The augmentations, in order, for a kornia ``AugmentationSequential``.
    """
    return [
        K.Normalize(mean=mean, std=std),
        K.RandomCrop(patch_size, pad_if_needed=True),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
    ]


class _Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


_Loader = TypeVar('_Loader', bound=_Stateful)


class ResumableTrainLoader:
    """Mixin for a data module whose training loader is stateful: a resume is exact.

    The loader's position (e.g. torchdata's ``StatefulDataLoader``, litdata's
    ``StreamingDataLoader``) is saved as the data module's own state, and a resumed
    run's training loader starts from it. Lightning also saves the position in the fit
    loop's state, but drops it on resume when the loader was built before the
    checkpoint was read, as ``trainer.estimated_stepping_batches`` in GFM's schedule
    does (Lightning issue #20550): the epoch would restart in the first epoch's order,
    repeating and skipping samples. Data-module states are restored before the model's
    optimizers are configured, so the position is there when the loader is built
    (should Lightning load the same state into it too, that is harmless).

    The subclass passes its training loader through ``_resumable``.

    .. versionadded:: 0.1
    """

    _train_loader: _Stateful | None = None
    _train_state: dict[str, Any] | None = None

    def _resumable(self, loader: _Loader) -> _Loader:
        """Remember the training loader; when resuming, move it to the saved position.

        Args:
            loader: the new training loader.

        Returns:
            The same loader.
        """
        self._train_loader = loader
        if self._train_state is not None:
            loader.load_state_dict(self._train_state)
            self._train_state = None
        return loader

    def state_dict(self) -> dict[str, Any]:
        """The training loader's position (Lightning saves it in each checkpoint).

        Returns:
            ``{'train_loader': loader.state_dict()}``, or ``{}`` before there is one.
        """
        if self._train_loader is None:
            return {}
        return {'train_loader': self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training loader from a checkpoint's :meth:`state_dict`.

        Args:
            state_dict: what :meth:`state_dict` returned when the checkpoint was saved.
        """
        state = state_dict.get('train_loader')
        if state is None:
            return
        if self._train_loader is not None:  # strategies that restore after setup
            self._train_loader.load_state_dict(state)
        else:
            self._train_state = state


class _FolderPretrainDataModule(ResumableTrainLoader, NonGeoDataModule):
    """What the pretraining datamodules on files share: loaders and optional validation.

    The training loader is torchdata's ``StatefulDataLoader``, resumable mid-epoch
    (:class:`ResumableTrainLoader`); every loader can pin memory; validation exists
    only when ``val_fraction`` of the data is held out. Subclasses set up the datasets
    and augment on the device with ``train_aug`` and ``aug``.
    """

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        batch_size: int,
        num_workers: int,
        augmentations: tuple[K.AugmentationSequential, K.AugmentationSequential],
        val_fraction: float,
        pin_memory: bool,
        **kwargs: Any,
    ) -> None:
        """Initialize a new _FolderPretrainDataModule instance.

        Args:
            dataset_class: the dataset.
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            augmentations: ``(train_aug, aug)``, e.g. from ``gfm_augmentations``.
            val_fraction: fraction of the data held out for validation; 0: none.
            pin_memory: pin batches in page-locked memory (when CUDA is available).
            **kwargs: passed to the dataset.

        Raises:
            ValueError: if ``val_fraction`` is not in [0, 1).
        """
        if not 0 <= val_fraction < 1:
            raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.val_fraction = val_fraction
        self.pin_memory = pin_memory
        self.train_aug, self.aug = augmentations

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Build a DataLoader that can pin memory; the training one is stateful.

        Args:
            split: either 'train', 'val', 'test' or 'predict'.

        Returns:
            The data loader.
        """
        train = split == 'train'
        kwargs: dict[str, Any] = {
            'dataset': self._valid_attribute(f'{split}_dataset', 'dataset'),
            'batch_size': self._valid_attribute(f'{split}_batch_size', 'batch_size'),
            'shuffle': train,
            'num_workers': self.num_workers,
            'collate_fn': self.collate_fn,
            'drop_last': train,
            'pin_memory': self.pin_memory and torch.cuda.is_available(),
            'persistent_workers': self.num_workers > 0,
        }
        if not train:
            return DataLoader(**kwargs)
        with warnings.catch_warnings():  # torchdata 0.11 calls torch.set_vital
            warnings.filterwarnings('ignore', "'set_vital' is deprecated", UserWarning)
            return self._resumable(StatefulDataLoader(**kwargs))

    def val_dataloader(self) -> DataLoader[Sample]:
        """Validation loader, or none (an empty list) when ``val_fraction`` is 0.

        Returns:
            The data loader(s).
        """
        if self.val_fraction <= 0 and self.val_dataset is None:
            return []  # type: ignore[return-value]  # Lightning: no validation
        return self._dataloader_factory('val')


def check_int(name: str, value: object, minimum: int) -> int:
    """Refuse an argument that is not an int of at least ``minimum``.

    Args:
        name: argument name, for the message.
        value: the argument.
        minimum: smallest allowed value.

    Returns:
        ``value`` as an int.

    Raises:
        TypeError: if ``value`` is not an int (bools are refused too).
        ValueError: if ``value`` < ``minimum``; both name the argument and its value.

    .. versionadded:: 0.1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name} must be an int >= {minimum}, got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return int(value)


def check_sizes(size: int, load_size: int, batch_size: int, num_workers: int) -> int:
    """Check the loading arguments the GeoPile datamodules share.

    Args:
        size: side of the augmented crops.
        load_size: side of the decoded images (>= *size*).
        batch_size: images per device and step.
        num_workers: DataLoader workers.

    Returns:
        *size*.

    Raises:
        TypeError: if one of them is not an int.
        ValueError: if one is out of range, or *load_size* < *size*.

    .. versionadded:: 0.1
    """
    check_int('batch_size', batch_size, 1)
    check_int('num_workers', num_workers, 0)
    if check_int('load_size', load_size, 1) < check_int('size', size, 1):
        raise ValueError(
            f'load_size ({load_size}) must be >= size ({size}): images are loaded '
            'at load_size and cropped to size on the device'
        )
    return size
