# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What the datamodules share."""

import numbers
from typing import Any, Protocol, TypeVar

import kornia.augmentation as K
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor

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
