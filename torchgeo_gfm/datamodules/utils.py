# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What the datamodules share."""

import numbers

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

#: ImageNet statistics on the 0-255 scale of uint8 batches: the normalisation the GFM
#: student and the ImageNet-22k Swin were trained with (TorchGeo's default is 0 / 255).
IMAGENET_MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN) * 255
IMAGENET_STD = torch.tensor(IMAGENET_DEFAULT_STD) * 255


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
