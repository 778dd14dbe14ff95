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

from .adapt import describe_swin
from .checkpoint import (
    GFMCheckpointError,
    load_upstream_checkpoint,
    save_backbone,
    student_state_dict,
)
from .download import sha256sum


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sub-command's arguments.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('checkpoint', help="the authors' gfm.pth")
    parser.add_argument('output', help='output file (.safetensors)')
    parser.add_argument(
        '-f', '--force', action='store_true', help='overwrite OUTPUT if it exists'
    )


def run(args: argparse.Namespace) -> int:
    """Convert, print the SHA-256 of input and output.

    Args:
        args: parsed arguments.

    Returns:
        0 on success, 1 if the input is not a GFM checkpoint or OUTPUT exists.
    """
    if os.path.exists(args.output) and not args.force:
        print(
            f'error: {args.output} exists (use --force to overwrite)', file=sys.stderr
        )
        return 1
    try:
        student = student_state_dict(load_upstream_checkpoint(args.checkpoint))
    except (GFMCheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    source_sha = sha256sum(args.checkpoint)
    arch = describe_swin(student)
    metadata = {
        'source': os.path.basename(args.checkpoint),
        'source_sha256': source_sha,
        'arch': json.dumps(arch),
    }
    save_backbone(student, args.output, metadata=metadata)
    print(f'{source_sha}  {args.checkpoint}')
    print(f'{sha256sum(args.output)}  {args.output}')
    print(f'student: {len(student)} tensors, {arch}', file=sys.stderr)
    return 0
