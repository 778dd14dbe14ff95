# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What ``predict`` and ``embed`` share: their common options, and how a run ends.

Standard library only: the scene engine (and torch) is imported by :func:`run_scene`'s
caller inside ``run``.
"""

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

from . import report_error


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options ``predict`` and ``embed`` share: bands, batch, device, outputs, stats, sensor.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument(
        '--bands', help="1-based bands to read, e.g. '3,2,1' (default: all)"
    )
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--device',
        default='auto',
        help="'cpu', 'cuda', 'cuda:N', 'mps' or 'auto' (default: 'cuda' where PyTorch "
        "sees a GPU, else 'cpu')",
    )
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing outputs'
    )
    parser.add_argument(
        '--mean',
        type=_floats,
        help="per-band mean, e.g. '123.7,116.3,103.5' (not for an exported model: "
        'its graph normalises, as it does with --std and --sensor)',
    )
    parser.add_argument('--std', type=_floats, help='per-band std (with --mean)')
    parser.add_argument(
        '--sensor',
        metavar='NAME|YAML',
        help="the rasters' sensor (e.g. s2, landsat, naip, or a sensor YAML) for "
        'weights that record none; it normalises them and their bands are checked '
        'against it (weights that record a sensor use theirs)',
    )
    parser.add_argument(
        '--precision',
        choices=('fp32', 'bf16', 'auto'),
        default='fp32',
        help='fp32 (default: the same output on every machine), bf16, or auto (bf16 '
        'where the hardware computes it natively); recorded in the output. An '
        'exported model runs fp32',
    )


def run_scene[T](
    command: str,
    args: argparse.Namespace,
    work: Callable[..., T],
    summary: Callable[[T], None],
    *inputs: Any,
    **options: Any,
) -> int:
    """Run ``work(*inputs, **options)`` with the shared options; print its *summary*.

    Bad input and Ctrl-C end in one line on stderr.

    Args:
        command: 'predict' or 'embed'.
        args: parsed arguments, whose shared options (:func:`add_scene_arguments`) are
            passed too.
        work: ``predict_scene`` or ``embed_scene`` (it raises before writing anything on
            bad input).
        summary: prints what was written.
        *inputs: its positional arguments.
        **options: its other keyword arguments.

    Returns:
        0 on success, 2 on bad input (SceneError, OutputError), 130 on Ctrl-C (the
        partial outputs are already removed).
    """
    from ..outputs import OutputError
    from ..scene import SceneError

    shared = (
        'bands',
        'batch_size',
        'device',
        'overwrite',
        'mean',
        'std',
        'precision',
        'sensor',
    )
    options.update({name: getattr(args, name) for name in shared})
    try:
        result = work(*inputs, **options)
    except (SceneError, OutputError) as error:
        return report_error(command, error)
    except KeyboardInterrupt:
        print(
            f'torchgeo-gfm {command}: interrupted; nothing was written', file=sys.stderr
        )
        return 130
    summary(result)
    return 0


def _floats(text: str) -> list[float]:
    """Argparse ``type=`` of ``--mean``/``--std``: finite numbers separated by commas."""
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected finite numbers separated by commas'
        )
    return values
