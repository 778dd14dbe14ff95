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

#: sub-packages and modules loaded on first attribute access (``torchgeo_gfm.models``)
_LAZY = ('datamodules', 'datasets', 'models', 'scene', 'tasks', 'transforms')

__all__ = ('__version__', *_LAZY)


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
