# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm stats``: per-band mean/std of your GeoTIFFs -> a sensor YAML file.

.. versionadded:: 0.2
"""

import argparse
import sys
from pathlib import Path

from . import report_error
from ._args import positive_int

#: the shipped sensors (torchgeo_gfm.sensors.list_sensors(); written out so that --help
#: reads no YAML)
SENSORS = 'rgb, naip, s2_l1c (s2), s2_l2a, landsat_oli (landsat)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm stats``.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument(
        'root',
        type=Path,
        help='a folder of GeoTIFFs (searched recursively) or one file',
    )
    parser.add_argument(
        '--sensor',
        required=True,
        help=f'what the files hold: a shipped sensor ({SENSORS}) or a sensor YAML file; '
        'every file must have its number of bands. The output is this sensor with the '
        'new mean/std',
    )
    parser.add_argument(
        '-o',
        '--output',
        type=Path,
        required=True,
        help='sensor YAML file to write, in an existing folder; an existing file is kept '
        'unless --force. Checked before any file is read, written to a temporary file, '
        'then renamed',
    )
    parser.add_argument(
        '-f',
        '--force',
        '--overwrite',
        dest='force',
        action='store_true',
        help='overwrite OUTPUT if it exists',
    )
    parser.add_argument(
        '--name', help='name of the new sensor (default: the name of OUTPUT, no suffix)'
    )
    parser.add_argument(
        '--samples',
        type=positive_int,
        default=256,
        help='files to read, picked at random (default: %(default)s; all if fewer)',
    )
    parser.add_argument(
        '--windows',
        type=positive_int,
        default=4,
        help='random windows read from each file larger than --size (default: '
        '%(default)s)',
    )
    parser.add_argument(
        '--size',
        type=positive_int,
        default=256,
        help='window side in pixels; smaller files are read whole (default: %(default)s)',
    )
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random picks: same files and seed, same numbers (default: '
        '%(default)s)',
    )


def run(args: argparse.Namespace) -> int:
    """Measure, write the sensor YAML, print its mean/std per band.

    Args:
        args: parsed arguments.

    Returns:
        0 on success, 2 (with one line on stderr) if the sensor, a file or OUTPUT is
        refused.
    """
    # numpy and rasterio load here, not for --help
    from rasterio.errors import RasterioError

    from ..outputs import check_output
    from ..sensors import get_sensor
    from ..sensors.stats import band_statistics, find_rasters, sensor_statistics

    try:
        check_output(args.output, overwrite=args.force, option='--force')
        base = get_sensor(args.sensor)
        files = find_rasters(args.root)
        stats = band_statistics(
            files,
            base,
            samples=args.samples,
            windows=args.windows,
            size=args.size,
            seed=args.seed,
        )
        sensor = sensor_statistics(base, stats, args.name or args.output.stem)
        header = (
            f'written by: torchgeo-gfm stats {args.root} --sensor {args.sensor} '
            f'--samples {args.samples} --windows {args.windows} --size {args.size} '
            f'--seed {args.seed}\n'
            f'{stats.windows} windows of {stats.files} of {len(files)} files; '
            f'valid pixels per band: {min(stats.pixels)} to {max(stats.pixels)}'
        )
        sensor.to_yaml(args.output, header=header)
    except (ValueError, OSError, RasterioError) as e:  # SensorError, OutputError
        return report_error('stats', e)
    for band, mean, std in zip(sensor.bands, sensor.mean, sensor.std, strict=True):
        print(f'{band}\t{mean:.7g}\t{std:.7g}')
    if stats.dtypes != (sensor.dtype,):  # e.g. float reflectance read as uint16 DN
        print(
            f'warning: the files hold {", ".join(stats.dtypes)}, sensor {base.name} '
            f'stores {sensor.dtype}: check dtype, scale and offset in {args.output}',
            file=sys.stderr,
        )
    print(f'sensor {sensor.name}: {args.output}', file=sys.stderr)
    return 0
