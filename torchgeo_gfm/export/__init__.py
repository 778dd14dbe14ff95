# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Portable GFM: models exported to ONNX or torch.export ``.pt2``, and run from the file.

:mod:`.metadata` is what an exported file says about itself (standard library only),
:mod:`.modules` the PyTorch modules that are exported (normalisation inside),
:mod:`.writing` writes ``.onnx`` and ``.pt2`` files (``torchgeo-gfm export``), and
:mod:`.runtime` loads one for the scene engine (``predict model.onnx``, ``embed --weights
model.onnx``) with onnxruntime or PyTorch alone: no Lightning, TorchGeo or timm. The formats:
:mod:`.onnx_file` (external data kept in the model's folder, the onnxruntime session) and
:mod:`.pt2_file` (a ``.pt2`` archive read without unpickling or running its code), with the
checks they share in :mod:`.checks`.

Names are imported on first use, so that reading the metadata needs no PyTorch.

.. versionadded:: 0.2
"""

import importlib
from typing import Any

_NAMES = {
    'ExportError': 'metadata',
    'ExportMetadata': 'metadata',
    'export_model': 'writing',
    'ExportedModel': 'runtime',
    'is_exported': 'runtime',
    'load_exported': 'runtime',
    'read_metadata': 'runtime',
}

__all__ = tuple(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_NAMES[name]}', __name__), name)
