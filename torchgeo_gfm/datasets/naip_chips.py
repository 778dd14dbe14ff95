# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm naip-chips``: cut reproducible NAIP chips into the GeoPile layout.

GeoPile's largest source is 300,000 unlabelled NAIP chips; the paper does not say how they
were sampled. This command reads NAIP GeoTIFFs with TorchGeo's :class:`~torchgeo.datasets.NAIP`
(mosaicking and reprojecting overlapping tiles) and draws chip locations with one of
TorchGeo's samplers:

* ``random`` (default): :class:`~torchgeo.samplers.RandomPatchSampler`, uniform over the
  union of the tiles' footprints (overlapping tiles are not over-sampled; chips may
  overlap, rarely at GeoPile's density).
* ``grid``: :class:`~torchgeo.samplers.GriddedPatchSampler`, non-overlapping chips on a
  regular grid, taken in a seeded random order (best for a compact region; the grid
  spans the bounding box of all tiles).

Chips where more than ``--max-nodata`` of the pixels are empty (all bands 0, e.g. outside
the imagery) are skipped. Output: ``OUT/<source>/chips_<k>/naip_<i>.<ext>`` (10,000 chips a
folder) plus ``OUT/<source>/chips.csv`` recording each chip's bounds and CRS. The same
tiles, arguments and seed give the same chips.

.. versionadded:: 0.1
"""

import argparse
import csv
import itertools
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchgeo.datasets import NAIP
from torchgeo.samplers import GriddedPatchSampler, RandomPatchSampler

CHIPS_PER_FOLDER = 10_000


def _locations(
    dataset: NAIP, size: int, sampler: str, seed: int, n: int
) -> Iterator[tuple[slice, slice]]:
    """Chip locations in the order they are tried, reproducible from ``seed``."""
    if sampler == 'grid':
        cells = list(GriddedPatchSampler(dataset, size=size))
        order = np.random.default_rng(seed).permutation(len(cells))
        yield from (cells[i] for i in order)
        return
    random = RandomPatchSampler(dataset, size=size, length=n, generator=seed)
    for _ in range(20):  # later rounds replace chips rejected for nodata
        yield from random


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """NAIP float sample [3, H, W] (0-255 values) to an HWC uint8 array."""
    array = image.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(array.numpy())


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

    Args:
        paths: NAIP GeoTIFF files or folders (searched for ``m_*.tif``).
        out: GeoPile root to write into.
        n: number of chips.
        size: chip side in pixels (at ``res``).
        sampler: 'random' or 'grid' (see the module docstring).
        seed: random seed of the chip locations.
        res: output resolution in CRS units (metres for NAIP's UTM); None keeps the
            native resolution (0.6 m for recent NAIP; GeoPile's is about 1 m).
        image_format: 'jpg' (quality 95) or 'png'.
        max_nodata: largest allowed fraction of empty (all-zero) pixels in a chip.
        source: source folder name under ``out``.

    Returns:
        The number of chips written (less than ``n`` if the imagery ran out).

    Raises:
        ValueError: if an argument is invalid.
        DatasetNotFoundError: if no NAIP file is found in ``paths``.

    .. versionadded:: 0.1
    """
    if n < 1 or size < 1 or sampler not in ('random', 'grid'):
        raise ValueError('need n >= 1, size >= 1 and sampler in {random, grid}')
    if image_format not in ('jpg', 'png'):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    dataset = NAIP(paths=paths, res=res, bands=NAIP.rgb_bands)
    root = Path(out, source)
    root.mkdir(parents=True, exist_ok=True)
    written, crs = 0, dataset.crs.to_string()
    with open(root / 'chips.csv', 'w', newline='') as f:
        manifest = csv.writer(f)
        manifest.writerow(['file', 'xmin', 'xmax', 'ymin', 'ymax', 'crs'])
        for x, y in itertools.islice(
            _locations(dataset, size, sampler, seed, n), 50 * n
        ):
            image = _to_uint8(dataset[x, y]['image'])
            if (image.max(axis=-1) == 0).mean() > max_nodata:
                continue
            name = Path(
                f'chips_{written // CHIPS_PER_FOLDER:03d}', f'naip_{written:07d}'
            )
            file = root / name.with_suffix(f'.{image_format}')
            file.parent.mkdir(exist_ok=True)
            Image.fromarray(image).save(file, quality=95)
            row = [file.relative_to(root).as_posix(), x.start, x.stop, y.start, y.stop]
            manifest.writerow([*row, crs])
            written += 1
            if written == n:
                break
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm naip-chips``.

    Args:
        parser: the sub-command's parser.

    .. versionadded:: 0.1
    """
    parser.add_argument('paths', nargs='+', help='NAIP GeoTIFF files or folders')
    parser.add_argument('--out', required=True, help='GeoPile root to write into')
    parser.add_argument('-n', '--num-chips', type=int, required=True, help='chips')
    parser.add_argument('--size', type=int, default=256, help='chip side in pixels')
    parser.add_argument(
        '--sampler', choices=('random', 'grid'), default='random', help='see --help'
    )
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--res', type=float, default=None, help='resolution in metres (native if unset)'
    )
    parser.add_argument('--format', choices=('jpg', 'png'), default='jpg')
    parser.add_argument(
        '--max-nodata', type=float, default=0.01, help='max fraction of empty pixels'
    )
    parser.add_argument('--source', default='naip', help='source folder name')
    parser.epilog = __doc__.split('\n\n')[1] if __doc__ else None


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm naip-chips``.

    Args:
        args: parsed arguments.

    Returns:
        0 if all chips were written, 1 if the imagery ran out first.

    .. versionadded:: 0.1
    """
    written = cut_naip_chips(
        args.paths,
        args.out,
        args.num_chips,
        size=args.size,
        sampler=args.sampler,
        seed=args.seed,
        res=args.res,
        image_format=args.format,
        max_nodata=args.max_nodata,
        source=args.source,
    )
    where = os.path.join(args.out, args.source)
    print(f'wrote {written} NAIP chips of {args.size} px to {where}')
    if written < args.num_chips:
        print(
            f'only {written} of {args.num_chips} chips had <= {args.max_nodata:.0%} '
            'empty pixels; add tiles or lower --num-chips',
            file=sys.stderr,
        )
        return 1
    return 0
