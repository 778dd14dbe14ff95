# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm convert``: the authors' ``gfm.pth`` to backbone weights (safetensors).

Keeps the student only, in timm ``gfm_swin_base`` key names; the result loads with
``gfm_swin_b(weights=OUT)``, ``timm.create_model('gfm_swin_base', pretrained=True,
pretrained_cfg_overlay=dict(file=OUT))`` or :func:`~torchgeo_gfm.models.load_backbone`.

.. versionadded:: 0.1
"""

import argparse
import json
import os
import sys

from ..cli import report_error
from .checkpoint import (
    load_upstream_checkpoint,
    prepare_output,
    save_backbone,
    sha256sum,
)
from .gfm_swin import check_complete_student, describe_swin, student_state_dict

#: help of the OUTPUT argument, shared with ``torchgeo-gfm export``
OUTPUT_HELP = (
    'backbone weights to write (.safetensors); missing folders are created, an existing '
    'file is kept unless --force. Written to a temporary file, checked, then renamed.'
)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add OUTPUT and ``-f/--force`` (the same for ``convert`` and ``export``).

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('output', help=OUTPUT_HELP)
    parser.add_argument(
        '-f', '--force', action='store_true', help='overwrite OUTPUT if it exists'
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sub-command's arguments.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('checkpoint', help="the authors' gfm.pth")
    add_output_arguments(parser)


def convert(
    checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *, force: bool
) -> dict[str, str]:
    """Write the student of the authors' checkpoint as a backbone file.

    Args:
        checkpoint: the authors' ``gfm.pth``.
        output: the safetensors file to write.
        force: overwrite an existing *output*.

    Returns:
        The metadata written.

    Raises:
        FileNotFoundError: if *checkpoint* does not exist.
        GFMCheckpointError: if it is not a complete GFM checkpoint.
        ValueError: if *output* cannot be written (see
            :func:`~torchgeo_gfm.models.checkpoint.prepare_output`).
        OSError: if writing fails.

    .. versionadded:: 0.1
    """
    source = os.fspath(checkpoint)
    student = student_state_dict(load_upstream_checkpoint(source))
    check_complete_student(student, source)
    out = prepare_output(output, source, force=force)
    arch = describe_swin(student)
    metadata = {
        'source': os.path.basename(source),
        'source_sha256': sha256sum(source),
        'arch': json.dumps(arch),
    }
    save_backbone(student, out, metadata=metadata)
    return metadata


def run(args: argparse.Namespace) -> int:
    """Convert, print the SHA-256 of input and output.

    Args:
        args: parsed arguments.

    Returns:
        0 on success, 2 (with one line on stderr) if the input is not a complete GFM
        checkpoint or OUTPUT is refused or cannot be written.
    """
    try:
        metadata = convert(args.checkpoint, args.output, force=args.force)
    except (ValueError, OSError) as e:  # GFMCheckpointError is a ValueError
        return report_error('convert', e)
    print(f'{metadata["source_sha256"]}  {args.checkpoint}')
    print(f'{sha256sum(args.output)}  {args.output}')
    print(f'student: arch {metadata["arch"]}', file=sys.stderr)
    return 0
