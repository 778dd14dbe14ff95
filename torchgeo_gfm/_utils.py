# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Two small helpers the package shares: argument checks and plain data trees.

.. versionadded:: 0.2
"""

from collections.abc import Mapping
from typing import Any


def require(ok: bool, name: str, value: object, expected: str) -> None:
    """Raise ``ValueError('name=value: expected ...')`` unless *ok*.

    Args:
        ok: whether the argument is valid.
        name: the argument's name.
        value: its value.
        expected: what it should be (``'a positive integer'``).

    Raises:
        ValueError: if not *ok*.
    """
    if not ok:
        raise ValueError(f'{name}={value!r}: expected {expected}')


def plain(value: Any) -> Any:
    """Mappings as dicts and tuples as lists, recursively (what YAML and JSON hold).

    Args:
        value: a tree of mappings, sequences and leaves (a yacs config, hparams).

    Returns:
        The same tree of plain dicts and lists.
    """
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value
