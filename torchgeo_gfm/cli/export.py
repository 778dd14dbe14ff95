# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm export``: backbone weights, or a portable model (ONNX, ``.pt2``).

``export TRAINING.ckpt OUT.safetensors`` writes the student of a GFM training checkpoint
as backbone weights (as in 0.1). ``export SOURCE -o model.onnx|model.pt2`` writes a model
that runs without this package's training stack: a fine-tuned checkpoint's task (or, with
``--what backbone``, its backbone), or the backbone of GFM weights or of a training
checkpoint, normalisation inside and its description in the file.

.. versionadded:: 0.2
"""

import argparse
from pathlib import Path

from . import report_error
from ._args import positive_int

#: suffixes of the portable formats (the rest: backbone weights)
_PORTABLE = ('.onnx', '.pt2')

_OUTPUT_HELP = (
    'the file to write: backbone weights (.safetensors) of a GFM training checkpoint, '
    'or a portable model (.onnx, .pt2) of any SOURCE; missing folders are created, an '
    'existing file is kept unless --force. Written to a temporary file, checked, then '
    'renamed.'
)


#: where a checkpoint is not a training checkpoint and OUTPUT not .safetensors
_PORTABLE_HINT = (
    ' For a portable model of any checkpoint or weights, name OUTPUT model.onnx or '
    'model.pt2.'
)


def _batch(text: str) -> int | None:
    """Argparse ``type=`` of ``--batch``: a positive integer or 'dynamic'."""
    return None if text == 'dynamic' else positive_int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm export``.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument(
        'checkpoint',
        type=Path,
        metavar='SOURCE',
        help='GFM training checkpoint (.ckpt); for .onnx/.pt2 also a fine-tuned '
        "checkpoint or GFM weights (.safetensors, the authors' gfm.pth)",
    )
    parser.add_argument('output', nargs='?', metavar='OUTPUT', help=_OUTPUT_HELP)
    parser.add_argument(
        '-o', '--output', dest='output_option', metavar='OUTPUT', help='same as OUTPUT'
    )
    parser.add_argument(
        '-f', '--force', action='store_true', help='overwrite OUTPUT if it exists'
    )
    portable = parser.add_argument_group('portable models (.onnx, .pt2)')
    portable.add_argument(
        '--what',
        choices=('task', 'backbone'),
        help="the fine-tuned task's whole model (default for a fine-tuned checkpoint) "
        'or its backbone (features and embedding; the only choice for weights and '
        'training checkpoints)',
    )
    portable.add_argument(
        '--tile',
        type=positive_int,
        help='tile size the model takes (default 512 for a task, 192 for a backbone); '
        'a multiple of its size multiple; export again for other sizes',
    )
    portable.add_argument(
        '--batch',
        type=_batch,
        default=None,
        metavar='N|dynamic',
        help='batch size the model takes (default: dynamic, any)',
    )
    portable.add_argument(
        '--stage',
        type=int,
        choices=(1, 2, 3, 4),
        default=4,
        help="Swin stage whose features a backbone gives (default 4, as embed's)",
    )
    portable.add_argument(
        '--opset', type=positive_int, help="ONNX opset (default: the exporter's)"
    )
    portable.add_argument(
        '--sensor',
        metavar='NAME|YAML',
        help='sensor of the inputs, for a SOURCE that records none (e.g. s2)',
    )


def run(args: argparse.Namespace) -> int:
    """Export, print the output's path, size, SHA-256 (and what a model takes and gives).

    Args:
        args: parsed arguments.

    Returns:
        The exit status: 0, or 2 (with one line on stderr) if an argument is wrong, the
        input cannot be exported, or OUTPUT is refused or cannot be written.
    """
    output = _output(args)
    if isinstance(output, int):
        return output
    if Path(output).suffix.lower() in _PORTABLE:
        return _portable(args, output)
    given = [
        f'--{name}'
        for name in ('what', 'tile', 'batch', 'opset', 'sensor')
        if getattr(args, name) is not None
    ] + (['--stage'] if args.stage != 4 else [])
    if given:
        return report_error(
            'export',
            f'{", ".join(given)}: for portable models only (an OUTPUT ending in .onnx or '
            f'.pt2); {output} is written as backbone weights',
        )
    # torch loads here, not for --help
    from ..models.checkpoint import GFMCheckpointError, sha256sum
    from ..tasks.export import export_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, output, force=args.force)
    except GFMCheckpointError as e:  # perhaps a model was meant: say how
        hint = '' if output.endswith('.safetensors') else _PORTABLE_HINT
        return report_error('export', f'{e}{hint}')
    except (ValueError, OSError) as e:
        return report_error('export', e)
    print(f'wrote {out} (sha256 {sha256sum(out)})')
    return 0


def _output(args: argparse.Namespace) -> str | int:
    """OUTPUT, given once (positional or -o); else the exit status of the error."""
    if args.output is not None and args.output_option is not None:
        return report_error(
            'export', 'OUTPUT given twice (positional and -o); give it once'
        )
    output = args.output if args.output is not None else args.output_option
    if output is None:
        return report_error(
            'export', 'no OUTPUT: give the file to write, e.g. -o model.onnx'
        )
    return str(output)


def _portable(args: argparse.Namespace, output: str) -> int:
    """Write an ONNX or .pt2 model and describe it."""
    from ..export.runtime import read_metadata
    from ..export.writing import describe, export_model
    from ..models.checkpoint import sha256sum

    try:
        out = export_model(
            args.checkpoint,
            output,
            what=args.what,
            tile=args.tile,
            batch=args.batch,
            stage=args.stage,
            opset=args.opset,
            force=args.force,
            sensor=args.sensor,
        )
    except (ValueError, OSError) as e:  # ExportError, SceneError, OutputError
        return report_error('export', e)
    size = out.stat().st_size / 2**20
    print(f'wrote {out} ({size:.1f} MiB, sha256 {sha256sum(out)})')
    print(describe(read_metadata(out)))
    return 0
