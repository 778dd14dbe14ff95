# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Whole-scene engine: tiled prediction to Cloud-Optimized GeoTIFF, embeddings to GeoParquet.

One engine (:mod:`.engine`: windowed reads, tiles, nodata, batches, writes) with two heads:
:func:`predict_scene` (a fine-tuned checkpoint over a scene, blended without seams) and
:func:`embed_scene` (GFM features per chip, with their footprint in EPSG:4326).

.. versionadded:: 0.1
"""

from .embed import Backbone, EmbedResult, embed_scene, load_backbone_for_embedding
from .engine import RunStats, run_tiles
from .errors import SceneError
from .predict import PredictResult, predict_scene, write_polygons
from .predictor import Predictor, load_predictor
from .raster import Scene, open_scene
from .tiling import Blender, TileGrid, taper

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
