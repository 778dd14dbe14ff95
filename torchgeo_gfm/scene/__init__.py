# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Whole-scene engine: tiled prediction to Cloud-Optimized GeoTIFF, embeddings to GeoParquet.

One engine (:mod:`.engine`: windowed reads, tiles, nodata, batches, writes) with two heads:
:func:`predict_scene` (a fine-tuned checkpoint over a scene, blended without seams) and
:func:`embed_scene` (GFM features per chip, with their footprint in EPSG:4326).

Inputs: :mod:`.raster` (checks, windowed reads), :mod:`.footprints` (where windows lie),
:mod:`.tiling` (grids, blending). Models: :mod:`.checkpoints` (reading and trusting a
checkpoint), :mod:`.normalisation`, :mod:`.predictor` (the rebuilt task),
:mod:`.backbone` (what ``embed`` runs). Outputs: :mod:`.writers`. The commands
``torchgeo-gfm predict`` and ``embed`` are :mod:`torchgeo_gfm.cli.predict` and
:mod:`torchgeo_gfm.cli.embed`.

.. versionadded:: 0.1
"""

from .backbone import Backbone, load_backbone_for_embedding
from .embed import EmbedResult, embed_scene
from .engine import RunStats, run_tiles
from .errors import SceneError
from .predict import PredictResult, predict_scene
from .predictor import Predictor, load_predictor
from .raster import Scene, open_scene
from .tiling import Blender, TileGrid, taper
from .writers import write_polygons

__all__ = (
    'Backbone',
    'Blender',
    'EmbedResult',
    'PredictResult',
    'Predictor',
    'RunStats',
    'Scene',
    'SceneError',
    'TileGrid',
    'embed_scene',
    'load_backbone_for_embedding',
    'load_predictor',
    'open_scene',
    'predict_scene',
    'run_tiles',
    'taper',
    'write_polygons',
)
