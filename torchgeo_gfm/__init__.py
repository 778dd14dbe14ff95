# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""torchgeo-gfm: GFM, geospatial foundation models via continual pretraining, for TorchGeo.

Importing :mod:`torchgeo_gfm.models` (or anything that uses it: the tasks, the scene
engine) registers the ``gfm_swin_base`` architecture with timm, so smp's
``tu-gfm_swin_base`` encoder and TorchGeo's tasks find it, and GFM with
``torchgeo.models``. The package itself imports nothing heavy, so the ``torchgeo-gfm``
command answers ``--help`` without loading torch; its sub-packages load on first use.
"""

import importlib
from types import ModuleType

__version__ = '0.1.0'

__all__ = (
    '__version__',
    'datamodules',
    'datasets',
    'models',
    'scene',
    'tasks',
    'transforms',
)


def __getattr__(name: str) -> ModuleType:
    if name in __all__:  # sub-packages load on first use (torchgeo_gfm.models)
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
