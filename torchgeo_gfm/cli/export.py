# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm export``: the student of a GFM training checkpoint as backbone weights.

.. versionadded:: 0.2
"""

import argparse
from pathlib import Path

from . import report_error
from ._args import add_output_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm export``.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('checkpoint', type=Path, help='GFM training checkpoint (.ckpt)')
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Export, print the output's path and SHA-256.

    Args:
        args: parsed arguments.

    Returns:
        The exit status: 0, or 2 (with one line on stderr) if the input is not a GFM
        training checkpoint or OUTPUT is refused or cannot be written.
    """
    # torch loads here, not for --help
    from ..models.checkpoint import sha256sum
    from ..tasks.export import export_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, args.output, force=args.force)
    except (ValueError, OSError) as e:  # GFMCheckpointError is a ValueError
        return report_error('export', e)
    print(f'wrote {out} (sha256 {sha256sum(out)})')
    return 0
