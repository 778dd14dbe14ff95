# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Read an exported ``.onnx`` file and run it with onnxruntime.

An ONNX file is data: onnxruntime builds its graph from ONNX operators, and nothing in
the file is run as Python. What is checked before onnxruntime opens it:

* the metadata (:data:`~torchgeo_gfm.export.metadata.METADATA_KEY` in its
  ``metadata_props``), read with the graph but without external data, so that a large
  model is not read twice;
* tensors kept in another file (external data) must keep it beside the model: a path
  that leaves the model's folder (absolute, ``..`` or a link) could read any file;
* the graph's inputs are float32, as the exporter writes them.

``onnx`` and ``onnxruntime`` are optional (``pip install 'torchgeo-gfm[export]'``): a
missing one is an :class:`~torchgeo_gfm.export.ExportError` saying how to install it.
onnxruntime runs on the CPU, or on a GPU where its CUDA provider is installed.

.. versionadded:: 0.2
"""

import importlib
import os
from collections.abc import Iterator
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..scene.errors import first_line
from .checks import Signature
from .metadata import METADATA_KEY, ExportError, ExportMetadata

__all__ = ('OnnxFile',)

#: how to get onnx and onnxruntime
INSTALL = "pip install 'torchgeo-gfm[export]'"


class OnnxFile:
    """An ``.onnx`` file, read in the steps of :func:`~torchgeo_gfm.export.load_exported`.

    Attributes:
        where: the file.
        meta: what it says about itself.

    .. versionadded:: 0.2
    """

    def __init__(self, where: str) -> None:
        """Read the graph, without external data, and its metadata.

        Args:
            where: the file.

        Raises:
            ExportError: if ``onnx`` is not installed, or the file is not a readable
                ONNX file with this package's metadata.
        """
        self.where = where
        self._onnx = _import('onnx', where)
        try:
            self._model = self._onnx.load(where, load_external_data=False)
        except Exception as error:  # noqa: BLE001  (protobuf's and onnx's many errors)
            raise ExportError(
                f'{where}: not a readable ONNX file ({first_line(error) or type(error).__name__}'
                '); it is damaged or truncated: export it again'
            ) from None
        props = {p.key: p.value for p in self._model.metadata_props}
        self.meta = ExportMetadata.from_json(props.get(METADATA_KEY), where)
        self._inputs: Signature = []

    def read_graph(self) -> tuple[Signature, Signature]:
        """The graph's inputs and outputs, with external data and input types checked.

        Returns:
            The inputs and the outputs, by name, with their shapes.

        Raises:
            ExportError: for external data outside the model's folder or missing, or an
                input that is not float32.
        """
        model, self._model = self._model, None  # onnxruntime reads the file itself
        _check_external_data(model, self.where, self._onnx.TensorProto.EXTERNAL)
        self._inputs, outputs = _signature(
            model, self.where, self._onnx.TensorProto.FLOAT
        )
        return self._inputs, outputs

    def open(self, device: torch.device) -> '_OnnxRuntime':
        """An onnxruntime session of the file, after :meth:`read_graph`.

        Args:
            device: the CPU, or a CUDA GPU.

        Returns:
            What runs the graph.

        Raises:
            ExportError: if onnxruntime is not installed, cannot use *device* or cannot
                load the file.
        """
        shape = self._inputs[0][1] if self._inputs else None
        batch = shape[0] if shape else None
        return _OnnxRuntime(self.where, self.meta, device, batch)


def _import(name: str, where: str) -> Any:
    """An optional runtime package, or an error saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:  # the package, or one it needs (onnx: protobuf)
        missing = error.name or name
        raise ExportError(
            f'{where}: running an .onnx file needs {name}, which cannot be imported '
            f'(no module named {missing!r}): {INSTALL}'
        ) from None


# --- the graph


def _check_external_data(model: Any, where: str, external: int) -> None:
    """Refuse external data that is absolute, outside the model's folder, or missing."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(where)))
    for tensor in _tensors(model.graph):
        if tensor.data_location != external:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get('location', '')
        # absolute on any system: /x, C:x, C:\x, \\server\x
        absolute = (
            PurePosixPath(location).is_absolute() or PureWindowsPath(location).anchor
        )
        target = os.path.realpath(os.path.join(folder, location))
        if not location or absolute or os.path.commonpath([folder, target]) != folder:
            raise ExportError(
                f'{where}: tensor {tensor.name!r} keeps its data at {location!r}, '
                "outside the model's folder; refused (a file could point anywhere): "
                'export it again as one file'
            )
        if not os.path.isfile(target):
            raise ExportError(
                f'{where}: tensor {tensor.name!r} keeps its data in {location!r}, which '
                'is missing; copy it beside the model, or export it again as one file'
            )


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph holds: initializers and node attributes, subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField('t'):
                yield attr.t
            yield from attr.tensors
            if attr.HasField('g'):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _signature(model: Any, where: str, float32: int) -> tuple[Signature, Signature]:
    """The graph's inputs and outputs with their shapes; inputs must be float32."""
    weights = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    for value in inputs:
        if value.type.tensor_type.elem_type != float32:
            raise ExportError(
                f'{where}: its graph input {value.name} is not float32; the file was '
                'not written by torchgeo-gfm export: export it again'
            )
    return (
        [(v.name, _shape(v)) for v in inputs],
        [(v.name, _shape(v)) for v in model.graph.output],
    )


def _shape(value: Any) -> tuple[int | None, ...] | None:
    """A graph value's shape; dynamic dimensions are None."""
    kind = value.type.tensor_type
    if not kind.HasField('shape'):
        return None
    return tuple(
        d.dim_value if d.HasField('dim_value') else None for d in kind.shape.dim
    )


# --- onnxruntime


class _OnnxRuntime:
    """An onnxruntime session on the CPU, or on a GPU with the CUDA provider."""

    name = 'onnxruntime'

    def __init__(
        self, where: str, meta: ExportMetadata, device: torch.device, batch: int | None
    ) -> None:
        self.where = where
        self.inputs, self.outputs = meta.inputs, meta.outputs
        self.batches: tuple[int, int | None] = (batch, batch) if batch else (1, None)
        self.session: Any = None
        self.device = device
        self.to(device)

    def to(self, device: torch.device) -> None:
        if self.session is None or device != self.device:
            self.session = _session(self.where, device)
            self.device = device

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        feeds = {
            name: x.detach().to('cpu', torch.float32).contiguous().numpy()
            for name, x in zip(self.inputs, inputs, strict=True)
        }
        try:
            outs = self.session.run(self.outputs, feeds)
        except Exception as error:  # onnxruntime's own error types
            raise ExportError(
                f'{self.where}: onnxruntime could not run it ({first_line(error)})'
            ) from error
        return [torch.from_numpy(np.asarray(out)) for out in outs]


def _session(where: str, device: torch.device) -> Any:
    """An onnxruntime session of the file on *device*."""
    ort = _import('onnxruntime', where)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the file was checked already
    try:
        return ort.InferenceSession(
            where, sess_options=options, providers=_providers(ort, where, device)
        )
    except Exception as error:  # noqa: BLE001  (onnxruntime's own error types)
        raise ExportError(
            f'{where}: onnxruntime cannot load it ({first_line(error)}); the file is '
            'damaged or needs a newer onnxruntime: export it again'
        ) from None


def _providers(ort: Any, where: str, device: torch.device) -> list[Any]:
    """The execution providers of onnxruntime for *device*, or why it cannot use it."""
    if device.type == 'cpu':
        return ['CPUExecutionProvider']
    if device.type != 'cuda':
        raise ExportError(
            f'--device {device}: onnxruntime runs {where} on cpu or cuda; pass '
            '--device cpu (or export a .pt2 file, which PyTorch runs)'
        )
    available = ort.get_available_providers()
    if 'CUDAExecutionProvider' not in available:
        raise ExportError(
            f'--device {device}: this onnxruntime has no CUDA provider (it has '
            f'{", ".join(available)}); pip install onnxruntime-gpu in place of '
            'onnxruntime, or pass --device cpu'
        )
    options = {'device_id': device.index or 0}
    return [('CUDAExecutionProvider', options), 'CPUExecutionProvider']
