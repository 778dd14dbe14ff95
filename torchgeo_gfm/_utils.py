# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Small helpers the package shares: argument checks, plain data trees, tile grids, digests.

.. versionadded:: 0.2
"""

import hashlib
import os
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


def tile_starts(
    length: int, size: int, stride: int | None = None, shift_last: bool = True
) -> list[int]:
    """Starts of windows of ``size`` covering ``[0, length)``.

    The one tile grid of the package: evaluation tiles
    (:class:`torchgeo_gfm.datamodules.tiling.GridTiles`) and the scene engine's tiles
    (:class:`torchgeo_gfm.scene.TileGrid`) both cut with it; it lives here, below both, so
    that the scene engine does not import the datamodules.

    Args:
        length: extent of the scene (rows or columns).
        size: extent of a tile.
        stride: step between tiles (``size - overlap``); None: ``size`` (no overlap).
        shift_last: end the last tile at the scene's edge (overlapping more), instead of
            letting it run past the edge (to be padded).

    Returns:
        Window starts, increasing (``[0]`` when the scene is not larger than a tile).

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       *stride* and *shift_last* (formerly a second ``tile_starts`` in
       ``torchgeo_gfm.scene.tiling``).
    """
    stride = size if stride is None else stride
    if length <= size:
        return [0]
    if not shift_last:
        return list(range(0, length - size + stride, stride)) if stride else [0]
    starts = list(range(0, length - size, stride))
    return [*starts, length - size]


def sha256sum(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file.

    Args:
        path: the file.

    Returns:
        The hex digest.

    .. versionadded:: 0.1
    """
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()
