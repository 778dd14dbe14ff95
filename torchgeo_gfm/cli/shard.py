# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm shard``: write GeoPile as litdata shards for streaming.

``torchgeo-gfm shard ROOT OUT`` turns any GeoPile that GeoPile reads
(``ROOT/<source>/<class>/<image>``, NAIP chips written by ``torchgeo-gfm naip-chips``
included) into litdata chunks. ``--naip TILES... --naip-chips N`` adds NAIP chips cut
straight from the GeoTIFFs, with no chip files in between: the same chips, names and
bytes as ``torchgeo-gfm naip-chips`` with the same options. Each sample holds the image
file's bytes as they are. ``torchgeo-gfm shard --sensor s2 SOURCE... OUT`` stores the
multiband GeoTIFFs of each SOURCE folder as raw arrays instead (lossless, the file's
dtype), each file's band count and dtype checked against the sensor (a shipped name or
a YAML file), which the shards record. OUT is a folder or an ``s3://`` or ``gs://``
URL; object-storage settings come from the standard environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ...) or
``--storage-options``. Every image is decoded once: unreadable files are left out and
listed. The same files, ``--num-workers`` and ``--chunk-bytes`` give the same shards.

See :func:`torchgeo_gfm.datasets.shards.write_geopile_shards` and
:func:`~torchgeo_gfm.datasets.shards.write_multiband_shards` for the details.

.. versionadded:: 0.2
"""

import argparse
import json
import sys
from typing import Any

from . import report_error
from ._args import positive_int
from .naip_chips import add_chip_options, chip_spec


def _chunk_bytes_arg(text: str) -> int:
    """Argparse ``type=`` of ``--chunk-bytes``."""
    from ..datasets.shards import parse_chunk_bytes  # torch loads here, not for --help

    try:
        return parse_chunk_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _workers_arg(text: str) -> int:
    """Argparse ``type=`` of ``--num-workers``."""
    from ..datasets.shards import writing  # torch loads here, not for --help

    try:
        value = int(text)
        writing.check_num_workers(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected an integer from 0 to {writing.MAX_WORKERS}, got {text!r}'
        ) from None
    return value


def _storage_options_arg(text: str) -> dict[str, Any]:
    """Argparse ``type=`` of ``--storage-options``: a JSON object with string keys."""
    try:
        options = json.loads(text)
    except ValueError:  # also json.JSONDecodeError
        options = None
    if not isinstance(options, dict):  # JSON object keys are always strings
        raise argparse.ArgumentTypeError(
            f'expected a JSON object such as \'{{"endpoint_url": "https://..."}}\', '
            f'got {text!r}'
        )
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm shard``.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument(
        'inputs',
        nargs='*',
        metavar='ROOT|SOURCE',
        help='GeoPile root (ROOT/<source>/<class>/<image>; optional with --naip), or '
        'with --sensor one or more folders of multiband GeoTIFFs',
    )
    parser.add_argument('out', help='empty folder, or s3:// or gs:// URL')
    parser.add_argument(
        '--sensor',
        help='store multiband GeoTIFFs losslessly as arrays of this sensor: a shipped '
        'name (s2, s2_l2a, landsat, naip, rgb) or a sensor YAML file',
    )
    parser.add_argument('--sources', nargs='+', help='source folders (default: all)')
    parser.add_argument(
        '--chunk-bytes',
        type=_chunk_bytes_arg,
        default='64MB',
        help='shard size: bytes (67108864) or with a unit (64MB, the default)',
    )
    parser.add_argument(
        '--num-workers',
        type=_workers_arg,
        default=1,
        help='reading processes (default 1; 0: in this process; at most 4 per CPU)',
    )
    parser.add_argument(
        '--storage-options',
        type=_storage_options_arg,
        default=None,
        help='JSON object of object-storage client options (default: environment)',
    )
    parser.add_argument(
        '--from-torchgeo',
        action='store_true',
        help='ROOT holds the per-source TorchGeo datasets (GeoPile.from_torchgeo)',
    )
    naip = parser.add_argument_group(
        'NAIP chips straight from rasters (as torchgeo-gfm naip-chips, no chip files)'
    )
    naip.add_argument('--naip', nargs='+', metavar='PATH', help='NAIP GeoTIFFs/folders')
    naip.add_argument('--naip-chips', type=positive_int, metavar='N', help='chips')
    add_chip_options(naip, prefix='naip-')
    parser.epilog = __doc__.split('\n\n')[1] if __doc__ else None


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm shard``.

    Args:
        args: parsed arguments.

    Returns:
        0 on success (bad files are listed, not fatal), 1 if the imagery ran out of
        NAIP chips, 2 (one line on stderr) on a bad input or an error.
    """
    if args.sensor is not None:
        return _run_multiband(args)
    if len(args.inputs) > 1:
        return report_error(
            'shard', 'give one GeoPile ROOT (several SOURCE folders go with --sensor)'
        )
    root = args.inputs[0] if args.inputs else None
    if bool(args.naip) != bool(args.naip_chips):
        return report_error('shard', '--naip and --naip-chips go together')
    if root is None and not args.naip:
        return report_error('shard', 'give a GeoPile ROOT, --naip tiles, or both')
    # torch loads here, not for --help
    from ..datasets.shards import ShardWriteError, write_geopile_shards

    try:
        naip = (
            chip_spec(args, args.naip, args.naip_chips, 'naip-') if args.naip else None
        )
        report = write_geopile_shards(
            root,
            args.out,
            sources=args.sources,
            chunk_bytes=args.chunk_bytes,
            num_workers=args.num_workers,
            storage_options=args.storage_options,
            from_torchgeo=args.from_torchgeo,
            naip=naip,
        )
    except (ValueError, OSError, RuntimeError) as error:
        if isinstance(error, ShardWriteError):  # after litdata's progress bars
            print(file=sys.stderr)
        return report_error('shard', error)
    _print_report(report, 'images')
    if naip is not None:
        print(
            f'{report.naip_chips} of them NAIP chips cut from {len(naip.paths)} path(s)'
        )
        if report.naip_chips < naip.n:
            print(
                f'only {report.naip_chips} of {naip.n} NAIP chips had <= '
                f'{naip.max_nodata:.0%} empty pixels; add tiles or lower --naip-chips',
                file=sys.stderr,
            )
            return 1
    return 0


def _print_report(report: Any, what: str) -> None:
    """The files left out (stderr), then what was written."""
    for path, reason in report.skipped:
        print(f'skipped bad image {path} ({reason})', file=sys.stderr)
    print(
        f'wrote {report.written} {what} of {len(report.sources)} sources '
        f'({", ".join(report.sources)}) to {report.output_dir}; '
        f'{len(report.skipped)} unreadable file(s) skipped'
    )


def _run_multiband(args: argparse.Namespace) -> int:
    """``shard --sensor``: folders of multiband GeoTIFFs as lossless arrays."""
    others = [
        option
        for option, given in (
            ('--naip', args.naip),
            ('--from-torchgeo', args.from_torchgeo),
            ('--sources', args.sources),
        )
        if given
    ]
    if others:
        return report_error(
            'shard',
            f'--sensor shards SOURCE folders of GeoTIFFs; leave out {others[0]}',
        )
    if not args.inputs:
        return report_error('shard', '--sensor needs one or more SOURCE folders')
    # torch loads here, not for --help
    from ..datasets.shards import ShardWriteError, write_multiband_shards

    try:
        report = write_multiband_shards(
            args.inputs,
            args.out,
            args.sensor,
            chunk_bytes=args.chunk_bytes,
            num_workers=args.num_workers,
            storage_options=args.storage_options,
        )
    except (ValueError, OSError, RuntimeError) as error:
        if isinstance(error, ShardWriteError):  # after litdata's progress bars
            print(file=sys.stderr)
        return report_error('shard', error)
    _print_report(report, f'{report.sensor} arrays')
    return 0
