# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm predict``: a fine-tuned checkpoint or exported model over whole scenes, to a COG.

The engine is :func:`torchgeo_gfm.scene.predict_scene`.

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.predict`.
"""

import argparse
from typing import TYPE_CHECKING

from ._scene import add_scene_arguments, run_scene

if TYPE_CHECKING:
    from ..scene import PredictResult

#: the help of --overlap (the default is ``torchgeo_gfm.scene.predict.DEFAULT_OVERLAP``)
OVERLAP_HELP = 'tile overlap (px; default 64, at most half the tile)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``torchgeo-gfm predict``'s arguments.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument(
        'checkpoint',
        help='fine-tuned checkpoint (.ckpt) or exported model (.onnx, .pt2)',
    )
    parser.add_argument('inputs', nargs='+', help='raster(s); two for change detection')
    parser.add_argument('-o', '--output', required=True, help='output COG')
    parser.add_argument(
        '--tile',
        type=int,
        help="tile size (px; default 512, or the exported model's, the only one it "
        'takes)',
    )
    parser.add_argument('--overlap', type=int, help=OVERLAP_HELP)
    parser.add_argument(
        '--probabilities', action='store_true', help='write float32 probabilities'
    )
    parser.add_argument(
        '--vectorize', metavar='OUT.gpkg', help='also write class polygons'
    )
    add_scene_arguments(parser)
    parser.add_argument(
        '--normalize',
        choices=('imagenet', 'unit', 'none'),
        help='named normalisation where the checkpoint records none',
    )


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm predict``: its summary, or one line saying what was wrong.

    Args:
        args: parsed arguments.

    Returns:
        The exit status, as :func:`~torchgeo_gfm.cli._scene.run_scene` says.
    """
    # torch loads here, not for --help
    from ..scene import predict_scene

    return run_scene(
        'predict',
        args,
        predict_scene,
        _summary,
        args.checkpoint,
        args.inputs,
        args.output,
        tile=args.tile,
        overlap=args.overlap,
        probabilities=args.probabilities,
        vectorize=args.vectorize,
        normalize=args.normalize,
    )


def _summary(result: 'PredictResult') -> None:
    s = result.stats
    print(
        f'{result.output}: {s.tiles} tiles ({s.skipped} nodata) in {s.seconds:.1f} s, '
        f'{s.tiles_per_second:.2f} tiles/s; normalisation: {result.normalisation}; '
        f'precision: {result.precision}'
    )
    if result.vectors:
        print(f'{result.vectors}: class polygons')
