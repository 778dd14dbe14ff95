# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm naip-chips``: cut reproducible NAIP chips into the GeoPile layout.

Chip locations come from TorchGeo's samplers: random (the default; uniform over the tiles'
footprints) or grid (non-overlapping chips, taken in a seeded random order). Chips with more
than --max-nodata empty pixels are skipped. Output: OUT/<source>/chips_<k>/naip_<i>.<ext>
(10,000 chips a folder) and OUT/<source>/chips.csv with each chip's bounds and CRS; the same
tiles, options and seed give the same chips. OUT/<source> appears only when complete and is
never overwritten.

The chip options are shared with ``torchgeo-gfm shard --naip`` (:func:`add_chip_options`,
:func:`chip_spec`). See :func:`torchgeo_gfm.datasets.cut_naip_chips` for the details.

.. versionadded:: 0.2
"""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import report_error
from ._args import fraction, non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    from ..datasets.naip_chips import NAIPChipSpec

#: chip image formats (the keys of :data:`torchgeo_gfm.datasets.naip_chips.FORMATS`)
IMAGE_FORMATS = ('jpg', 'png')


def add_chip_options(parser: argparse._ActionsContainer, prefix: str = '') -> None:
    """Add the options of :class:`~torchgeo_gfm.datasets.NAIPChipSpec` (all but paths, n).

    Args:
        parser: parser or argument group.
        prefix: option prefix, e.g. 'naip-' for ``--naip-size`` (``args.naip_size``).
    """
    parser.add_argument(
        f'--{prefix}size', type=positive_int, default=256, help='chip side in pixels'
    )
    parser.add_argument(
        f'--{prefix}sampler',
        choices=('random', 'grid'),
        default='random',
        help='chip locations: random or grid (default random)',
    )
    parser.add_argument(
        f'--{prefix}seed', type=non_negative_int, default=0, help='random seed'
    )
    parser.add_argument(
        f'--{prefix}res',
        type=positive_float,
        default=None,
        help='resolution in metres (native if unset)',
    )
    parser.add_argument(f'--{prefix}format', choices=IMAGE_FORMATS, default='jpg')
    parser.add_argument(
        f'--{prefix}max-nodata',
        type=fraction,
        default=0.01,
        help='max fraction of empty pixels',
    )
    parser.add_argument(
        f'--{prefix}source', default='naip', help='source name (a plain folder name)'
    )


def chip_spec(
    args: argparse.Namespace, paths: Sequence[str], n: int, prefix: str = ''
) -> 'NAIPChipSpec':
    """The :class:`~torchgeo_gfm.datasets.NAIPChipSpec` of :func:`add_chip_options`.

    Args:
        args: parsed arguments.
        paths: NAIP GeoTIFF files or folders.
        n: number of chips.
        prefix: the prefix given to :func:`add_chip_options`.

    Returns:
        The checked spec.

    Raises:
        ValueError: if an argument is invalid.
    """
    from ..datasets.naip_chips import NAIPChipSpec  # torch loads here, not for --help

    option = vars(args)
    key = prefix.replace('-', '_')
    return NAIPChipSpec(
        tuple(paths),
        n,
        size=option[f'{key}size'],
        sampler=option[f'{key}sampler'],
        seed=option[f'{key}seed'],
        res=option[f'{key}res'],
        image_format=option[f'{key}format'],
        max_nodata=option[f'{key}max_nodata'],
        source=option[f'{key}source'],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm naip-chips``.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('paths', nargs='+', help='NAIP GeoTIFF files or folders')
    parser.add_argument('--out', required=True, help='GeoPile root to write into')
    parser.add_argument(
        '-n', '--num-chips', type=positive_int, required=True, help='chips'
    )
    add_chip_options(parser)
    parser.epilog = __doc__.split('\n\n')[1] if __doc__ else None


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm naip-chips``.

    Args:
        args: parsed arguments.

    Returns:
        0 if all chips were written, 1 if the imagery ran out first, 2 (with one line
        on stderr) on a bad input or an error.
    """
    from ..datasets.naip_chips import write_chips  # torch loads here, not for --help

    try:
        written = write_chips(chip_spec(args, args.paths, args.num_chips), args.out)
    except (ValueError, OSError) as err:
        return report_error('naip-chips', err)
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
