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
