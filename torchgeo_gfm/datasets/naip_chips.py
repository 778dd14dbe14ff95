# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reproducible NAIP chips in the GeoPile layout (``torchgeo-gfm naip-chips``).

GeoPile's largest source is 300,000 unlabelled NAIP chips; the paper does not say how they
were sampled. :func:`cut_naip_chips` reads NAIP GeoTIFFs with TorchGeo's
:class:`~torchgeo.datasets.NAIP` (mosaicking and reprojecting overlapping tiles) and draws
chip locations with one of TorchGeo's samplers:

* ``random`` (default): :class:`~torchgeo.samplers.RandomPatchSampler`, uniform over the
  union of the tiles' footprints (overlapping tiles are not over-sampled; chips may
  overlap, rarely at GeoPile's density).
* ``grid``: :class:`~torchgeo.samplers.GriddedPatchSampler`, non-overlapping chips on a
  regular grid, taken in a seeded random order (best for a compact region; the grid
  spans the bounding box of all tiles).

Chips where more than ``--max-nodata`` of the pixels are empty (all bands 0, e.g. outside
the imagery) are skipped. Output: ``OUT/<source>/chips_<k>/naip_<i>.<ext>`` (10,000 chips a
folder) plus ``OUT/<source>/chips.csv`` recording each chip's bounds and CRS. The same
tiles, arguments and seed give the same chips. The chips are written into a hidden folder
``OUT/.<source>.partial-<pid>-<random>`` and renamed into place when complete
(:func:`torchgeo_gfm.outputs.atomic_output`), so an interrupted run leaves no partial
source; an existing, non-empty ``OUT/<source>`` is never overwritten. Chip locations are
drawn in rounds, so any number of chips fits in memory; a chip larger than the imagery is
refused.

.. versionadded:: 0.1
"""

import contextlib
import csv
import io
import itertools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from PIL import Image
from torchgeo.datasets import NAIP, DatasetNotFoundError
from torchgeo.samplers import GriddedPatchSampler, RandomPatchSampler

from .._utils import require
from ..outputs import OutputError, atomic_output, check_output, looks_like_url

CHIPS_PER_FOLDER = 10_000
#: chip locations drawn at once by the random sampler (memory stays flat for any n)
LOCATIONS_PER_ROUND = 10_000
#: image format (file extension) -> PIL format name
FORMATS = {'jpg': 'JPEG', 'png': 'PNG'}

Chip = tuple[np.ndarray, slice, slice]


def _is_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _is_fraction(value: float) -> bool:
    return 0 <= value <= 1  # False for NaN


def _check_arguments(
    n: int,
    size: int,
    sampler: str,
    seed: int,
    res: float | None,
    image_format: str,
    max_nodata: float,
) -> None:
    """Refuse invalid arguments of :func:`cut_naip_chips` before any work."""
    require(isinstance(n, int) and n >= 1, 'n', n, 'a positive integer')
    require(isinstance(size, int) and size >= 1, 'size', size, 'a positive integer')
    require(sampler in ('random', 'grid'), 'sampler', sampler, "'random' or 'grid'")
    # numpy's generators refuse negative seeds
    require(isinstance(seed, int) and seed >= 0, 'seed', seed, 'a non-negative integer')
    require(res is None or _is_positive(res), 'res', res, 'a positive number or None')
    require(image_format in FORMATS, 'image_format', image_format, "'jpg' or 'png'")
    require(_is_fraction(max_nodata), 'max_nodata', max_nodata, 'in [0, 1]')


def _check_source(source: str) -> None:
    """Refuse a source that is not one plain folder name: it could write outside out."""
    if (
        not isinstance(source, str)
        or not source
        or source.startswith('.')  # '.', '..', and hidden folders, which GeoPile skips
        or any(c in source for c in ('/', '\\', '\0', os.sep))
        or os.path.isabs(source)
    ):
        raise ValueError(
            f'source must be a plain folder name (no path separator, no leading '
            f"'.'), got {source!r}: pass a name such as 'naip'"
        )


def _open_naip(paths: Sequence[str | os.PathLike[str]], res: float | None) -> NAIP:
    """TorchGeo's NAIP over ``paths``, with errors that name them."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f'{os.fspath(path)}: no such file or folder; expected NAIP GeoTIFFs '
                '(m_*.tif) or folders holding them'
            )
    try:
        dataset = NAIP(paths=paths, res=res, bands=NAIP.rgb_bands)
    except DatasetNotFoundError:
        raise FileNotFoundError(
            f'no NAIP GeoTIFF (m_*.tif) found in {[os.fspath(p) for p in paths]}: '
            'pass NAIP tiles or folders holding them'
        ) from None
    for file in dataset.index['filepath']:
        # else reading a chip over it fails halfway through with an IndexError
        with rasterio.open(file) as f:
            if f.count < len(NAIP.rgb_bands):
                raise ValueError(
                    f'{file} has {f.count} band(s); expected a NAIP GeoTIFF with '
                    'RGB (+ NIR) bands: remove it from the paths'
                )
    return dataset


def _output_folder(out: str | os.PathLike[str], source: str) -> Path:
    """``out/source``, refused if it would overwrite anything (the package's check)."""
    given = os.fspath(out)
    if not given.strip():
        raise OutputError(
            'out is empty; give the GeoPile root folder (created if missing)'
        )
    if looks_like_url(given) or '\0' in given:
        check_output(given, folder=True)  # refused, with the reason
    path = Path(given)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise NotADirectoryError(
            f'out {path} is a file; expected the GeoPile root folder (created if missing)'
        )
    root = path / source
    # chips are never mixed with an earlier run's; missing folders are created: the
    # first of them is checked
    missing = [p for p in (root, *root.parents) if not os.path.lexists(p)]
    check_output(missing[-1] if missing else root, folder=True)
    return root


def _locations(
    dataset: NAIP, size: int, sampler: str, seed: int, n: int
) -> Iterator[tuple[slice, slice]]:
    """Chip locations in the order they are tried, reproducible from ``seed``."""
    if sampler == 'grid':
        cells = list(GriddedPatchSampler(dataset, size=size))
        order = np.random.default_rng(seed).permutation(len(cells))
        yield from (cells[i] for i in order)
        return
    # geopandas draws a round's points at once (~240 bytes each): rounds of at most
    # LOCATIONS_PER_ROUND keep memory flat for any n; the first round of a small n is
    # the whole draw, so small runs keep their chips
    batch = min(n, LOCATIONS_PER_ROUND)
    random = RandomPatchSampler(dataset, size=size, length=batch, generator=seed)
    for _ in range(math.ceil(20 * n / batch)):  # later rounds replace rejected chips
        yield from random


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """NAIP float sample [3, H, W] (0-255 values) to an HWC uint8 array."""
    array = image.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(array.numpy())


def _chips(
    dataset: NAIP, locations: Iterable[tuple[slice, slice]], max_nodata: float
) -> Iterator[Chip]:
    """The chips at ``locations`` with at most ``max_nodata`` empty pixels."""
    for x, y in locations:
        image = _to_uint8(dataset[x, y]['image'])
        if (image.max(axis=-1) == 0).mean() <= max_nodata:
            yield image, x, y


@dataclass(frozen=True)
class NAIPChipSpec:
    """Which chips to cut from NAIP GeoTIFFs, and how to encode them.

    The one definition of a chip, shared by ``torchgeo-gfm naip-chips`` (files) and
    ``torchgeo-gfm shard --naip`` (shards straight from the rasters): the same tiles and
    arguments give the same chips, file names and bytes in both. Arguments are checked
    at construction.

    .. versionadded:: 0.1
    """

    #: NAIP GeoTIFF files or folders (searched for ``m_*.tif``).
    paths: tuple[str, ...]
    #: number of chips.
    n: int
    #: chip side in pixels (at ``res``).
    size: int = 256
    #: 'random' or 'grid' (see the module docstring).
    sampler: str = 'random'
    #: random seed of the chip locations (>= 0).
    seed: int = 0
    #: output resolution in CRS units; None keeps the native resolution.
    res: float | None = None
    #: 'jpg' (quality 95) or 'png'.
    image_format: str = 'jpg'
    #: largest allowed fraction of empty (all-zero) pixels in a chip.
    max_nodata: float = 0.01
    #: the source's name, one plain folder name (no path).
    source: str = 'naip'

    def __post_init__(self) -> None:
        """Refuse invalid arguments before any work."""
        _check_arguments(
            self.n,
            self.size,
            self.sampler,
            self.seed,
            self.res,
            self.image_format,
            self.max_nodata,
        )
        _check_source(self.source)

    def open(self) -> NAIP:
        """Open the tiles (TorchGeo's NAIP), with errors that name them.

        Returns:
            The NAIP dataset over :attr:`paths`.

        Raises:
            FileNotFoundError: if a path is missing or holds no NAIP file.
            ValueError: if a tile has fewer than 3 bands.
        """
        return _open_naip(self.paths, self.res)

    def check_fits(self, dataset: NAIP) -> None:
        """Refuse a chip larger than the imagery, before reading a pixel.

        A larger chip would be read (and allocated) whole, only to be all nodata.

        Args:
            dataset: :meth:`open`'s dataset.

        Raises:
            ValueError: naming the sizes and what to change.
        """
        res_x, res_y = dataset.res
        bounds = dataset.bounds
        width = (bounds[0].stop - bounds[0].start) / res_x
        height = (bounds[1].stop - bounds[1].start) / res_y
        if self.size > min(width, height):
            raise ValueError(
                f'size {self.size} px is larger than the imagery of {list(self.paths)} '
                f'({width:.0f} x {height:.0f} px at {res_x:g} m): lower size (--size) '
                'or res, or add tiles'
            )

    def encoded(self, dataset: NAIP) -> Iterator[tuple[str, bytes, slice, slice]]:
        """Cut and encode the chips, in order (fewer than ``n`` if imagery runs out).

        Args:
            dataset: :meth:`open`'s dataset.

        Yields:
            ``(name, data, x, y)``: the chip's path under the source folder
            (``chips_<k>/naip_<i>.<ext>``), its encoded bytes, its x and y bounds.
        """
        locations = itertools.islice(
            _locations(dataset, self.size, self.sampler, self.seed, self.n), 50 * self.n
        )
        chips = _chips(dataset, locations, self.max_nodata)
        for i, (image, x, y) in enumerate(itertools.islice(chips, self.n)):
            name = f'chips_{i // CHIPS_PER_FOLDER:03d}/naip_{i:07d}.{self.image_format}'
            data = io.BytesIO()
            Image.fromarray(image).save(
                data, format=FORMATS[self.image_format], quality=95
            )
            yield name, data.getvalue(), x, y

    def no_chip_error(self) -> ValueError:
        """The error for imagery with no chip at all to offer.

        Returns:
            A ValueError saying what to change.
        """
        return ValueError(
            f'no chip of {self.size} px with <= {self.max_nodata:.0%} empty pixels in '
            f'{list(self.paths)}: the tiles are smaller than a chip or mostly empty; '
            'lower size or res, or raise max_nodata'
        )


def _write_folder(folder: Path, spec: NAIPChipSpec, dataset: NAIP) -> int:
    """Write chips and their ``chips.csv`` into ``folder``; return their number."""
    written = 0
    crs = dataset.crs.to_string()
    with open(folder / 'chips.csv', 'w', newline='') as f:
        manifest = csv.writer(f)
        manifest.writerow(['file', 'xmin', 'xmax', 'ymin', 'ymax', 'crs'])
        for name, data, x, y in spec.encoded(dataset):
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)
            manifest.writerow([name, x.start, x.stop, y.start, y.stop, crs])
            written += 1
    return written


def cut_naip_chips(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    n: int,
    size: int = 256,
    sampler: str = 'random',
    seed: int = 0,
    res: float | None = None,
    image_format: str = 'jpg',
    max_nodata: float = 0.01,
    source: str = 'naip',
) -> int:
    """Cut ``n`` RGB chips from NAIP GeoTIFFs into ``out/<source>/chips_<k>/``.

    The chips are written into a hidden folder in ``out`` and renamed to ``out/<source>``
    when complete: an error or an interruption leaves nothing behind.

    Args:
        paths: NAIP GeoTIFF files or folders (searched for ``m_*.tif``).
        out: GeoPile root to write into (created if missing).
        n: number of chips.
        size: chip side in pixels (at ``res``).
        sampler: 'random' or 'grid' (see the module docstring).
        seed: random seed of the chip locations (>= 0).
        res: output resolution in CRS units (metres for NAIP's UTM); None keeps the
            native resolution (0.6 m for recent NAIP; GeoPile's is about 1 m).
        image_format: 'jpg' (quality 95) or 'png'.
        max_nodata: largest allowed fraction of empty (all-zero) pixels in a chip.
        source: source folder name under ``out``: one plain folder name.

    Returns:
        The number of chips written (less than ``n`` if the imagery ran out).

    Raises:
        ValueError: if an argument is invalid, a tile has fewer than 3 bands, the chip
            is larger than the imagery, or no chip fits in it.
        FileNotFoundError: if a path is missing or holds no NAIP file.
        NotADirectoryError: if ``out`` is a file.
        OutputError: (a ValueError) if ``out/<source>`` exists and is not an empty
            folder.

    .. versionadded:: 0.1
    """
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    spec = NAIPChipSpec(
        tuple(os.fspath(path) for path in paths),
        n,
        size,
        sampler,
        seed,
        res,
        image_format,
        max_nodata,
        source,
    )
    return write_chips(spec, out)


def write_chips(spec: NAIPChipSpec, out: str | os.PathLike[str]) -> int:
    """Write the chips of a spec into ``out/<source>``, all or nothing.

    :func:`cut_naip_chips` with the arguments checked already.

    Args:
        spec: which chips to cut, and how to encode them.
        out: GeoPile root to write into (created if missing).

    Returns:
        The number of chips written (less than ``spec.n`` if the imagery ran out).

    Raises:
        ValueError, FileNotFoundError, NotADirectoryError, OutputError: as
            :func:`cut_naip_chips`.

    .. versionadded:: 0.2
    """
    root = _output_folder(out, spec.source)  # before the work
    out = Path(out)
    dataset = spec.open()
    spec.check_fits(dataset)
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    out.mkdir(parents=True, exist_ok=True)
    try:  # a hidden .<source>.partial-<pid>-<random> folder, renamed when complete
        with atomic_output(root) as staging:
            staging.mkdir()
            written = _write_folder(staging, spec, dataset)
            if not written:
                raise spec.no_chip_error()
    except BaseException:  # interrupted too: leave nothing behind
        for folder in created:
            with contextlib.suppress(OSError):  # not empty: no longer only ours
                folder.rmdir()
        raise
    return written
