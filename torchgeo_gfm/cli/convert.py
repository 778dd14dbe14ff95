# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm convert``: the authors' ``gfm.pth`` to backbone weights (safetensors).

.. versionadded:: 0.2
"""

import argparse
import sys

from . import report_error
from ._args import add_output_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm convert``.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('checkpoint', help="the authors' gfm.pth")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Convert, print the SHA-256 of input and output.

    Args:
        args: parsed arguments.

    Returns:
        0 on success, 2 (with one line on stderr) if the input is not a complete GFM
        checkpoint or OUTPUT is refused or cannot be written.
    """
    # torch loads here, not for --help
    from ..models.checkpoint import sha256sum
    from ..models.convert import convert

    try:
        metadata = convert(args.checkpoint, args.output, force=args.force)
    except (ValueError, OSError) as e:  # GFMCheckpointError is a ValueError
        return report_error('convert', e)
    print(f'{metadata["source_sha256"]}  {args.checkpoint}')
    print(f'{sha256sum(args.output)}  {args.output}')
    print(f'student: arch {metadata["arch"]}', file=sys.stderr)
    return 0
