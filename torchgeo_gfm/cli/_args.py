# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Argument types and options shared by several sub-commands (standard library only)."""

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def _arg_type[T: (int, float)](
    convert: Callable[[str], T], ok: Callable[[T], bool], expected: str
) -> Callable[[str], T]:
    """An argparse ``type=`` converting text, refusing values that fail ``ok``."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f'expected {expected}, got {text!r}')
        return value

    return parse


positive_int = _arg_type(int, lambda v: v > 0, 'a positive integer')
non_negative_int = _arg_type(int, lambda v: v >= 0, 'a non-negative integer')
positive_float = _arg_type(
    float, lambda v: math.isfinite(v) and v > 0, 'a positive number'
)
fraction = _arg_type(float, lambda v: 0 <= v <= 1, 'a fraction in [0, 1]')  # not NaN


def name_path(text: str) -> tuple[str, Path]:
    """Argparse ``type=`` of a ``NAME=PATH`` option."""
    name, sep, path = text.partition('=')
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f'expected NAME=PATH, got {text!r}')
    return name, Path(path)


#: help of the OUTPUT argument of ``convert`` and ``export``
OUTPUT_HELP = (
    'backbone weights to write (.safetensors); missing folders are created, an existing '
    'file is kept unless --force. Written to a temporary file, checked, then renamed.'
)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add OUTPUT and ``-f/--force`` (the same for ``convert`` and ``export``).

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('output', help=OUTPUT_HELP)
    parser.add_argument(
        '-f', '--force', action='store_true', help='overwrite OUTPUT if it exists'
    )
