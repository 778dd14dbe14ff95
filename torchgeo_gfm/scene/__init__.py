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

import importlib
from typing import Any

# imported on first use: running an exported model (torchgeo_gfm.export.runtime) needs the
# engine, rasters and writers, not the checkpoint loaders (Lightning, TorchGeo, timm)
_NAMES = {
    'Backbone': 'backbone',
    'load_backbone_for_embedding': 'backbone',
    'EmbedResult': 'embed',
    'embed_scene': 'embed',
    'RunStats': 'engine',
    'run_tiles': 'engine',
    'SceneError': 'errors',
    'PredictResult': 'predict',
    'predict_scene': 'predict',
    'Predictor': 'predictor',
    'load_predictor': 'predictor',
    'Scene': 'raster',
    'open_scene': 'raster',
    'Blender': 'tiling',
    'TileGrid': 'tiling',
    'taper': 'tiling',
    'write_polygons': 'writers',
}

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


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_NAMES[name]}', __name__), name)
