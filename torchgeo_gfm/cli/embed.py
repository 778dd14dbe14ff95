# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm embed``: GFM embeddings of every chip of a scene, to GeoParquet.

The engine is :func:`torchgeo_gfm.scene.embed_scene`.

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.embed`.
"""

import argparse
from typing import TYPE_CHECKING

from ._scene import add_scene_arguments, run_scene

if TYPE_CHECKING:
    from ..scene import EmbedResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``torchgeo-gfm embed``'s arguments.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('inputs', nargs='+', help='raster(s), each in its own CRS')
    parser.add_argument('-o', '--output', required=True, help='output GeoParquet')
    parser.add_argument(
        '--weights',
        help='GFM weights file, fine-tuned checkpoint or exported backbone (.onnx, '
        '.pt2) (default: GEOPILE_RGB_GFM)',
    )
    parser.add_argument(
        '--chip',
        type=int,
        help="chip size (px; default 192, or the exported backbone's, the only one "
        'it takes)',
    )
    parser.add_argument(
        '--stride', type=int, help='step between chips (default: --chip)'
    )
    parser.add_argument(
        '--stage',
        type=int,
        help="Swin stage 1-4 (default 4; an exported backbone's is fixed in the file)",
    )
    parser.add_argument(
        '--dense', metavar='OUT.tif', help='also write the feature map (COG)'
    )
    add_scene_arguments(parser)  # --mean/--std default: the weights' normalisation


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm embed``: its summary, or one line saying what was wrong.

    Args:
        args: parsed arguments.

    Returns:
        The exit status, as :func:`~torchgeo_gfm.cli._scene.run_scene` says.
    """
    # torch loads here, not for --help
    from ..scene import embed_scene

    return run_scene(
        'embed',
        args,
        embed_scene,
        _summary,
        args.inputs,
        args.output,
        weights=args.weights,
        chip=args.chip,
        stride=args.stride,
        stage=args.stage,
        dense=args.dense,
    )


def _summary(result: 'EmbedResult') -> None:
    print(f'{result.output}: {result.rows} chips; precision: {result.precision}')
    if result.dense:
        print(f'{result.dense}: dense features')
