# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The ``torchgeo-gfm`` console script.

Training itself is ``torchgeo fit --config ...``; this package holds the small tools around
it, one module per sub-command (``cli/predict.py`` for ``predict``...), each defining
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import only the standard
library at the top; ``run`` imports the implementation (and with it torch), so
``torchgeo-gfm --help`` and every ``torchgeo-gfm COMMAND --help`` answer at once.
Library code never imports from here.

.. versionadded:: 0.1
"""

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

#: sub-command -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    'convert': (
        'torchgeo_gfm.cli.convert',
        "convert the authors' gfm.pth into backbone weights (safetensors, timm names)",
    ),
    'export': (
        'torchgeo_gfm.cli.export',
        'export backbone weights (.safetensors) or a portable model (.onnx, .pt2)',
    ),
    'naip-chips': (
        'torchgeo_gfm.cli.naip_chips',
        'cut reproducible NAIP chips into the GeoPile folder layout',
    ),
    'shard': (
        'torchgeo_gfm.cli.shard',
        'write GeoPile as litdata shards (a folder, s3:// or gs://) for streaming',
    ),
    'predict': (
        'torchgeo_gfm.cli.predict',
        'apply a fine-tuned checkpoint to whole scenes (tiled, seamless) -> Cloud-Optimized GeoTIFF',
    ),
    'embed': (
        'torchgeo_gfm.cli.embed',
        'GFM embeddings of every chip of a scene -> GeoParquet (TorchGeo ClayEmbeddings schema)',
    ),
    'arp': (
        'torchgeo_gfm.cli.arp',
        'average relative performance of downstream runs against the IN-22k baseline',
    ),
    'stats': (
        'torchgeo_gfm.cli.stats',
        'per-band mean/std of your GeoTIFFs -> a sensor YAML file (--sensor s2 ...)',
    ),
    'config': (
        'torchgeo_gfm.cli.config',
        'list the shipped `torchgeo fit` configs (--list) or write one out (NAME -o FILE)',
    ),
}


def report_error(command: str, error: BaseException | str) -> int:
    """Print a bad input's message as argparse does, on one line; return status 2.

    Args:
        command: the sub-command (``convert``, ``shard``, ...).
        error: the exception (its message, not its traceback) or the text.

    Returns:
        2, the status of a usage error.

    .. versionadded:: 0.1
    """
    # KeyError's str() is the repr of its message
    keyed = isinstance(error, KeyError) and error.args
    message = str(error.args[0] if keyed else error)  # type: ignore[union-attr]
    print(
        f'torchgeo-gfm {command}: error: {" ".join(message.split())}', file=sys.stderr
    )
    return 2


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser, importing only the sub-command being run.

    Args:
        argv: command-line arguments (used to pick the sub-command to import).

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog='torchgeo-gfm', description=__doc__.split('\n')[0]
    )
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    chosen = next((a for a in (argv or []) if a in COMMANDS), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script.

    Args:
        argv: command-line arguments, ``sys.argv[1:]`` if None.

    Returns:
        The exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # Ctrl-C while torch imports, too: one line, not a traceback
        args = build_parser(argv).parse_args(argv)
        module = importlib.import_module(COMMANDS[args.command][0])
        from ..outputs import sigterm_exits

        with sigterm_exits():  # a SIGTERM raises, so partial outputs are removed
            return int(module.run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: partial outputs were removed on the way out
        command = next((f' {a}' for a in argv if a in COMMANDS), '')
        print(f'\ntorchgeo-gfm{command}: interrupted', file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == '__main__':  # pragma: no cover
    raise SystemExit(main())
