# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Run an exported model from its file: onnxruntime for ``.onnx``, PyTorch for ``.pt2``.

:func:`load_exported` reads what the file says about itself (:mod:`.metadata`), checks
the graph against it and returns an :class:`ExportedModel`, which the scene engine runs
as it runs a :class:`~torchgeo_gfm.scene.Predictor`: raw tiles in, probabilities (SR:
values; backbone: features) out, normalisation inside the graph. Nothing of Lightning,
TorchGeo or timm is imported; ``onnx`` and ``onnxruntime`` only for an ``.onnx`` file
(``pip install 'torchgeo-gfm[export]'``).

Safety. An ``.onnx`` file is data: onnxruntime builds its graph from ONNX operators, and
external-data paths that leave the model's folder are refused here. A ``.pt2`` file read
by :func:`torch.export.load` alone is not, in torch 2.14:

* weights and constants of tensor subclasses are read with ``torch.load(...,
  weights_only=False)``, opaque constants with :func:`pickle.loads` and TorchBind
  objects with TorchScript's unpickler;
* the example inputs (and a legacy archive's weights) are read with ``weights_only=True``
  and, should that fail, again with ``weights_only=False``;
* symbolic shapes are parsed by :func:`sympy.sympify`, which evaluates Python;
* the program's ``guards_code`` strings are compiled and run by ``.module()``;
* operators are resolved as attribute chains from ``torch``, ``math`` and ``operator``.

So this module reads the archive itself first and refuses all of that: entries other
than those ``torch.export.save`` writes for one program, any pickled payload, example
inputs that do not load with ``weights_only=True``, guards and shape expressions outside
small grammars (input sizes and integer arithmetic; SymPy's constructors of those),
operators other than ``torch.ops.aten`` and a few arithmetic functions. It then hands
PyTorch an archive rebuilt from the checked entries, without the nodes' metadata (free
text, such as stack traces, that running needs not). What is left to trust is PyTorch's
JSON decoder and its aten operators; still, prefer ``.onnx`` for files from others.

.. versionadded:: 0.2
"""

import importlib
import io
import json
import operator
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from ..scene.errors import first_line
from ..sensors import Sensor, SensorError, get_sensor
from .metadata import EXTRA_FILE, METADATA_KEY, ExportError, ExportMetadata

__all__ = ('ExportedModel', 'is_exported', 'load_exported')

#: the suffixes of exported files
SUFFIXES = ('.onnx', '.pt2')
#: how to get onnx and onnxruntime
INSTALL = "pip install 'torchgeo-gfm[export]'"

#: a graph's input and output shapes: a dimension is None where it is dynamic
Shape = tuple[int | None, ...] | None


def is_exported(path: object) -> bool:
    """Whether *path* names an exported model (by its suffix; nothing is read).

    Args:
        path: a file name, or anything else (a checkpoint object: False).

    Returns:
        True for ``.onnx`` and ``.pt2`` (any case).

    .. versionadded:: 0.2
    """
    if not isinstance(path, str | os.PathLike):
        return False
    name = os.fsdecode(os.fspath(path))
    return Path(name).suffix.lower() in SUFFIXES


class _Backend(Protocol):
    """What runs the graph: onnxruntime or a torch.export program."""

    name: str
    device: torch.device
    #: the batch sizes the graph takes: least, most (None: any)
    batches: tuple[int, int | None]

    def to(self, device: torch.device) -> None: ...

    def run(self, inputs: list[Tensor]) -> list[Tensor]: ...


class ExportedModel:
    """An exported model, ready for raw tiles; duck-types :class:`~torchgeo_gfm.scene.Predictor`.

    Attributes:
        meta: what the file says about itself.
        path: the file.
        sensor: the sensor of its inputs, where the metadata records one.
        mean: per-band mean ``[C]`` (float32), what the scene engine writes where the
            raster has no data; the graph normalises by itself.
        std: per-band std ``[C]`` (float32).
        source: where the normalisation is, for the log.

    .. versionadded:: 0.2
    """

    def __init__(self, meta: ExportMetadata, path: str, backend: _Backend) -> None:
        """Wrap a checked graph; use :func:`load_exported`.

        Args:
            meta: the file's metadata.
            path: the file.
            backend: what runs its graph.
        """
        self.meta = meta
        self.path = path
        self._backend = backend
        self.sensor = _sensor(meta, path)
        self.mean = torch.tensor(meta.mean, dtype=torch.float32)
        self.std = torch.tensor(meta.std, dtype=torch.float32)
        self.source = 'in the exported graph: ' + (
            f'sensor {self.sensor.name}'
            if self.sensor is not None
            else f'mean {_numbers(meta.mean)}, std {_numbers(meta.std)}'
        )

    def __repr__(self) -> str:
        """The file, what it is and where it runs."""
        return (
            f'ExportedModel({self.path!r}, {self.kind}/{self.mode}, '
            f'{self.backend} on {self.device})'
        )

    @property
    def backend(self) -> str:
        """``'onnxruntime'`` or ``'torch.export'``."""
        return self._backend.name

    @property
    def device(self) -> torch.device:
        """Where the graph runs."""
        return self._backend.device

    @property
    def kind(self) -> str:
        """'segmentation', 'change', 'classification', 'super_resolution' or 'backbone'."""
        return self.meta.kind

    @property
    def mode(self) -> str:
        """'binary', 'multiclass', 'multilabel', 'regression' or 'embedding'."""
        return self.meta.mode

    @property
    def in_channels(self) -> int:
        """Bands per image."""
        return self.meta.in_channels

    @property
    def outputs(self) -> int:
        """Channels of the first output (classes, labels, SR bands, features)."""
        return self.meta.channels

    @property
    def scale(self) -> int:
        """Output pixels per input pixel (SR), else 1."""
        return self.meta.scale

    @property
    def multiple(self) -> int:
        """Tile sizes the model was made for are multiples of this."""
        return self.meta.multiple

    @property
    def classes(self) -> list[str] | None:
        """Class names, where recorded."""
        return self.meta.classes

    @property
    def bands(self) -> list[str | int] | None:
        """Band names (or 0-based indexes) of the training data, where recorded."""
        return self.meta.bands

    @property
    def tile(self) -> int:
        """The one tile size the graph takes."""
        return self.meta.tile

    @property
    def batch(self) -> int | None:
        """The one batch size the graph takes (None: any; other sizes are padded/split)."""
        return self.meta.batch

    @property
    def images(self) -> int:
        """Rasters the model takes (2 for change detection)."""
        return self.meta.images

    def to(self, device: str | torch.device) -> 'ExportedModel':
        """Run on *device* from now on.

        Args:
            device: 'cpu', 'cuda' or 'cuda:N'.

        Returns:
            self

        Raises:
            ExportError: if the runtime cannot use *device*.
        """
        target = _device(device)
        self._backend.to(target)
        self.mean, self.std = self.mean.to(target), self.std.to(target)
        return self

    def __call__(self, images: Tensor) -> Tensor:
        """The first output (probabilities, SR values or features) of raw tiles.

        Args:
            images: ``[B, T, C, tile, tile]`` raw values (T = 1, or 2 for change
                detection).

        Returns:
            ``[B, K, tile * scale, tile * scale]`` per pixel, ``[B, K]`` per chip, or
            ``[B, D, tile / stride, tile / stride]`` features, float32 on the device of
            *images*.

        Raises:
            ExportError: if *images* has another shape than the graph takes.
        """
        shape = tuple(images.shape)
        if len(shape) != 5 or shape[1:3] != (self.images, self.in_channels):
            raise ExportError(
                f'{self.path}: takes [batch, {self.images}, {self.in_channels}, '
                f'{self.tile}, {self.tile}] raw tiles, got {list(shape)}'
            )
        self._check_size(shape[3], shape[4])
        inputs = [images[:, t].float() for t in range(self.images)]
        return self._forward(inputs)[0].float().to(images.device)

    def run(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Every named output of raw ``[B, C, tile, tile]`` arrays, for deployers.

        Args:
            inputs: one array per graph input (two, before and after, for change
                detection), float32 raw values.

        Returns:
            The outputs by name (:attr:`ExportMetadata.outputs`), float32 arrays.

        Raises:
            ExportError: for another number of inputs or another shape.
        """
        if len(inputs) != self.images:
            raise ExportError(
                f'{self.path}: takes {self.images} input(s) '
                f'({", ".join(self.meta.inputs)}), got {len(inputs)}'
            )
        tensors = [torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in inputs]
        for name, x in zip(self.meta.inputs, tensors, strict=True):
            shape = tuple(x.shape)
            if len(shape) != 4 or shape[1] != self.in_channels:
                raise ExportError(
                    f'{self.path}: input {name} is [batch, {self.in_channels}, '
                    f'{self.tile}, {self.tile}], got {list(shape)}'
                )
            self._check_size(shape[2], shape[3])
        outs = self._forward(tensors)
        return {
            name: out.detach().float().cpu().numpy()
            for name, out in zip(self.meta.outputs, outs, strict=True)
        }

    def check_tile(self, tile: int, option: str = '--tile') -> None:
        """Refuse a tile size other than the one the graph was exported for.

        Args:
            tile: the tile size asked for.
            option: the option that set it, named in the message.

        Raises:
            ExportError: naming the exported size and how to export for another.
        """
        if tile == self.tile:
            return
        m = self.multiple
        other = m * max(1, round(tile / m))
        raise ExportError(
            f'{option} {tile}: {self.path} was exported for {self.tile} px tiles (the '
            f'tile size is fixed in an exported graph); pass {option} {self.tile}, or '
            f'export the checkpoint again with --tile {other} (a multiple of {m})'
        )

    def check_bands(self, count: int, where: str) -> None:
        """Refuse a raster with another number of bands than the model takes.

        Args:
            count: the bands read from the raster.
            where: the raster (and the ``--bands`` read), named in the message.

        Raises:
            ExportError: naming both counts, the model's bands and the ``--bands`` to
                pass.
        """
        n = self.in_channels
        if count == n:
            return
        if self.sensor is not None:
            what = f'sensor {self.sensor.name} ({", ".join(self.sensor.bands)})'
        elif self.bands is not None:
            what = f'bands {", ".join(map(str, self.bands))}'
        else:
            what = f'{n} bands'
        example = ','.join(str(b) for b in range(1, n + 1))
        raise ExportError(
            f'{where} has {count} band(s), {self.path} takes {n}: {what}; pass --bands '
            f"with the raster's numbers of those {n} bands in that order (e.g. --bands "
            f'{example})'
        )

    def _check_size(self, height: int, width: int) -> None:
        """Refuse tiles of another size than the graph's."""
        if height != width:
            raise ExportError(
                f'{self.path}: takes square {self.tile} px tiles, got {height} x {width}'
            )
        self.check_tile(height, 'tile')

    def _check_outputs(self, outs: list[Tensor], batch: int) -> None:
        """Refuse what a damaged graph gives: other outputs than its metadata says."""
        expected = (batch, *_first_output(self.meta)[1:])
        if len(outs) != len(self.meta.outputs) or tuple(outs[0].shape) != expected:
            raise ExportError(
                f'{self.path}: its graph gave {len(outs)} output(s), the first '
                f'{list(outs[0].shape) if outs else None}; its metadata says '
                f'{len(self.meta.outputs)}, the first {list(expected)}: the file is '
                'damaged: export it again'
            )

    def _forward(self, inputs: list[Tensor]) -> list[Tensor]:
        """Run the graph on a batch of any size: split to its most, padded to its least."""
        least, most = self._backend.batches
        count = inputs[0].shape[0]
        if count == 0:
            raise ExportError(f'{self.path}: an empty batch; give at least one tile')
        step = count if most is None else most
        parts = []
        for start in range(0, count, step):
            chunk = [x[start : start + step] for x in inputs]
            size = chunk[0].shape[0]
            if size < least:  # a fixed-batch graph: pad with zeros, drop their outputs
                chunk = [
                    torch.cat([x, x.new_zeros(least - size, *x.shape[1:])])
                    for x in chunk
                ]
            outs = self._backend.run(chunk)
            self._check_outputs(outs, chunk[0].shape[0])
            parts.append([out[:size] for out in outs])
        if len(parts) == 1:
            return parts[0]
        return [torch.cat(outs) for outs in zip(*parts, strict=True)]


def load_exported(
    path: str | os.PathLike[str],
    *,
    expect: Literal['task', 'backbone'] | None = None,
    device: str | torch.device = 'cpu',
) -> ExportedModel:
    """Load an exported ``.onnx`` (onnxruntime) or ``.pt2`` (PyTorch) file, checked.

    Args:
        path: the file, as written by :func:`~torchgeo_gfm.export.export_model`.
        expect: 'task' for ``predict`` (a fine-tuned task), 'backbone' for ``embed``;
            None takes either.
        device: where to run it: 'cpu', 'cuda' or 'cuda:N'.

    Returns:
        The model.

    Raises:
        ExportError: if the file is missing, not an exported model of this package,
            damaged, of the other kind than *expect*, unsafe (external data outside its
            folder; a ``.pt2`` with pickled or executable parts), its graph disagrees
            with its metadata, or its runtime is not installed or cannot use *device*.

    .. versionadded:: 0.2
    """
    where = _check_file(path)
    target = _device(device)
    if where.lower().endswith('.onnx'):
        return _load_onnx(where, expect, target)
    return _load_pt2(where, expect, target)


def _check_file(path: str | os.PathLike[str]) -> str:
    """The file's name, if it is an existing file with an exported suffix."""
    where = os.fsdecode(os.fspath(path))
    if not is_exported(where):
        raise ExportError(
            f'{where}: not an exported model (expected a .onnx or .pt2 file, as written '
            'by torchgeo-gfm export)'
        )
    if os.path.isdir(where):
        raise ExportError(f'{where}: is a folder; give the exported .onnx or .pt2 file')
    if not os.path.isfile(where):
        raise ExportError(
            f'{where}: no such file; export one with: torchgeo-gfm export CHECKPOINT -o '
            f'{Path(where).name}'
        )
    return where


def _device(device: str | torch.device) -> torch.device:
    """The device named, refused if it is not one."""
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ExportError(
            f"--device {device!r}: not a device name; expected 'cpu', 'cuda' or 'cuda:N'"
        ) from None


def _check_expect(meta: ExportMetadata, expect: str | None, where: str) -> None:
    """Refuse a backbone where a task is expected, and the other way round."""
    if expect is None:
        return
    if expect not in ('task', 'backbone'):
        raise ExportError(f"expect={expect!r}: expected 'task', 'backbone' or None")
    if expect == 'task' and meta.kind == 'backbone':
        raise ExportError(
            f'{where}: is an exported backbone (features), not a fine-tuned task: use '
            'embed --weights, or export the fine-tuned task with --what task'
        )
    if expect == 'backbone' and meta.kind != 'backbone':
        raise ExportError(
            f'{where}: is an exported {meta.kind} task, not a backbone: use predict, or '
            'export the backbone with --what backbone'
        )


def _sensor(meta: ExportMetadata, where: str) -> Sensor | None:
    """The recorded sensor, which must have the model's bands."""
    if meta.sensor is None:
        return None
    try:
        sensor = get_sensor(meta.sensor)
    except SensorError as error:
        raise ExportError(
            f'{where}: its metadata sensor is not valid ({error}); export it again'
        ) from None
    if sensor.num_bands != meta.in_channels:
        raise ExportError(
            f'{where}: its metadata sensor {sensor.name} has {sensor.num_bands} bands, '
            f'in_channels is {meta.in_channels}; export it again'
        )
    return sensor


def _numbers(values: list[float]) -> str:
    """Numbers for a message, shortly."""
    return '[' + ', '.join(f'{v:g}' for v in values) + ']'


def _import(name: str, where: str) -> Any:
    """An optional runtime package, or an error saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(
            f'{where}: running an .onnx file needs {name}, which is not installed: '
            f'{INSTALL}'
        ) from None


# --- the graph against the metadata


def _check_signature(
    meta: ExportMetadata,
    where: str,
    inputs: list[tuple[str | None, Shape]],
    outputs: list[tuple[str | None, Shape]],
) -> None:
    """Refuse a graph whose inputs or outputs are not what its metadata says.

    Names are compared where the graph has them (ONNX); a dimension that is dynamic in
    the graph (None) is not compared.
    """

    def disagree(what: str, graph: object, said: object) -> ExportError:
        return ExportError(
            f'{where}: its graph {what} {graph}, its metadata says {said}; the file '
            'was changed after export: export it again'
        )

    names = [name for name, _ in inputs]
    if len(names) != len(meta.inputs) or (None not in names and names != meta.inputs):
        raise disagree('takes inputs', names, meta.inputs)
    t = meta.tile
    image = (meta.batch, meta.in_channels, t, t)
    for name, shape in inputs:
        _compare(disagree, f'input {name or ""}'.strip(), shape, image)
    names = [name for name, _ in outputs]
    if len(names) != len(meta.outputs) or (None not in names and names != meta.outputs):
        raise disagree('gives outputs', names, meta.outputs)
    _compare(disagree, f'output {meta.outputs[0]}', outputs[0][1], _first_output(meta))


def _compare(
    disagree: Any, what: str, shape: Shape, said: tuple[int | None, ...]
) -> None:
    """Compare a graph shape with the metadata's, where both are known."""
    if shape is None:
        return
    show = [d if d is not None else 'batch' for d in shape]
    expected = [d if d is not None else 'batch' for d in said]
    if len(shape) != len(said):
        raise disagree(f'{what} is', show, expected)
    for i, (a, b) in enumerate(zip(shape, said, strict=True)):
        if i == 0 and a != b:  # the batch: dynamic (None) in both, or the same number
            raise disagree(f'{what} takes batches of', a or 'any size', b or 'any size')
        if a is not None and b is not None and a != b:
            raise disagree(f'{what} is', show, expected)


def _first_output(meta: ExportMetadata) -> tuple[int | None, ...]:
    """The shape of the first output, as the metadata describes it."""
    k, t = meta.channels, meta.tile
    if meta.kind == 'classification':
        return (meta.batch, k)
    if meta.kind == 'backbone':
        return (meta.batch, k, t // meta.stride, t // meta.stride)
    return (meta.batch, k, t * meta.scale, t * meta.scale)


# --- ONNX


def _load_onnx(where: str, expect: str | None, device: torch.device) -> ExportedModel:
    """Read, check and open an .onnx file with onnxruntime."""
    onnx = _import('onnx', where)
    try:
        model = onnx.load(where, load_external_data=False)
    except Exception as error:  # noqa: BLE001  (protobuf's and onnx's many errors)
        raise ExportError(
            f'{where}: not a readable ONNX file ({first_line(error) or type(error).__name__}'
            '); it is damaged or truncated: export it again'
        ) from None
    props = {p.key: p.value for p in model.metadata_props}
    meta = ExportMetadata.from_json(props.get(METADATA_KEY), where)
    _check_expect(meta, expect, where)
    _check_external_data(model, where, onnx.TensorProto.EXTERNAL)
    inputs, outputs = _onnx_signature(model, where, onnx.TensorProto.FLOAT)
    _check_signature(meta, where, inputs, outputs)
    del model
    batch = inputs[0][1][0] if inputs[0][1] else None
    runtime = _OnnxRuntime(where, meta, device, batch)
    return ExportedModel(meta, where, runtime)


def _onnx_tensors(graph: Any) -> Iterator[Any]:
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
                yield from _onnx_tensors(attr.g)
            for sub in attr.graphs:
                yield from _onnx_tensors(sub)


def _check_external_data(model: Any, where: str, external: int) -> None:
    """Refuse external data that is absolute, outside the model's folder, or missing."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(where)))
    for tensor in _onnx_tensors(model.graph):
        if tensor.data_location != external:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get('location', '')
        absolute = (
            os.path.isabs(location)
            or PurePosixPath(location).is_absolute()
            or bool(PureWindowsPath(location).anchor)
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


def _onnx_signature(
    model: Any, where: str, float32: int
) -> tuple[list[tuple[str | None, Shape]], list[tuple[str | None, Shape]]]:
    """The graph's inputs and outputs with their shapes; inputs must be float32."""
    weights = {t.name for t in model.graph.initializer}

    def shape(value: Any) -> Shape:
        kind = value.type.tensor_type
        if not kind.HasField('shape'):
            return None
        return tuple(
            d.dim_value if d.HasField('dim_value') else None for d in kind.shape.dim
        )

    inputs = [v for v in model.graph.input if v.name not in weights]
    for value in inputs:
        if value.type.tensor_type.elem_type != float32:
            raise ExportError(
                f'{where}: its graph input {value.name} is not float32; the file was '
                'not written by torchgeo-gfm export: export it again'
            )
    return (
        [(v.name, shape(v)) for v in inputs],
        [(v.name, shape(v)) for v in model.graph.output],
    )


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
            self.session = _onnx_session(self.where, device)
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


def _onnx_session(where: str, device: torch.device) -> Any:
    """An onnxruntime session of the file on *device*."""
    ort = _import('onnxruntime', where)
    available = ort.get_available_providers()
    providers: list[Any]
    if device.type == 'cpu':
        providers = ['CPUExecutionProvider']
    elif device.type == 'cuda':
        if 'CUDAExecutionProvider' not in available:
            raise ExportError(
                f'--device {device}: this onnxruntime has no CUDA provider (it has '
                f'{", ".join(available)}); pip install onnxruntime-gpu in place of '
                'onnxruntime, or pass --device cpu'
            )
        options = {'device_id': device.index or 0}
        providers = [('CUDAExecutionProvider', options), 'CPUExecutionProvider']
    else:
        raise ExportError(
            f'--device {device}: onnxruntime runs {where} on cpu or cuda; pass '
            '--device cpu (or export a .pt2 file, which PyTorch runs)'
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the file was checked already
    try:
        return ort.InferenceSession(where, sess_options=options, providers=providers)
    except Exception as error:  # noqa: BLE001  (onnxruntime's own error types)
        raise ExportError(
            f'{where}: onnxruntime cannot load it ({first_line(error)}); the file is '
            'damaged or needs a newer onnxruntime: export it again'
        ) from None


# --- torch.export (.pt2)

#: the entries torch.export.save writes for one program named 'model', under one folder
_ENTRIES = re.compile(
    r'(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id'
    r'|models/model\.json|data/sample_inputs/model\.pt'
    r'|data/weights/model_weights_config\.json|data/weights/weight_\d+'
    r'|data/constants/model_constants_config\.json|data/constants/tensor_\d+'
    r'|extra/[\w.-]+)'
)
#: graph operators: aten's, and the arithmetic of symbolic sizes
_OPERATORS = re.compile(
    r'torch\.ops\.aten\.(?!__)\w+\.(?!__)\w+'
    r'|_operator\.(getitem|add|sub|mul|floordiv|truediv|mod|neg|pow|eq|ne|lt|le|gt|ge)'
    r'|torch\.sym_(max|min|int|float|not|ite|sum)|math\.(ceil|floor|trunc)'
)
_PYTHON_OPERATORS = {
    getattr(operator, name)
    for name in (
        *('getitem', 'add', 'sub', 'mul', 'floordiv', 'truediv', 'mod', 'neg', 'pow'),
        *('eq', 'ne', 'lt', 'le', 'gt', 'ge'),
    )
}
#: the tokens of symbolic-shape expressions (sympy.srepr of integer arithmetic)
_TOKENS = re.compile(r"\s+|\d{1,18}|[A-Za-z_]\w*|'[a-z]+\d+'|\"[a-z]+\d+\"|[-+*/%(),=]")
_SYMPY_NAMES = frozenset(
    (
        *(
            'Symbol',
            'Integer',
            'Add',
            'Mul',
            'Max',
            'Min',
            'Mod',
            'FloorDiv',
            'CeilDiv',
        ),
        *(
            'CleanDiv',
            'PythonMod',
            'ModularIndexing',
            'Where',
            'TruncToInt',
            'FloorToInt',
        ),
        *(
            'CeilToInt',
            'IntTrueDiv',
            'Eq',
            'Ne',
            'Lt',
            'Le',
            'Gt',
            'Ge',
            'StrictLessThan',
        ),
        *(
            'StrictGreaterThan',
            'LessThan',
            'GreaterThan',
            'Equality',
            'Unequality',
            'And',
        ),
        *('Or', 'Not', 'True', 'False', 'positive', 'negative', 'nonnegative'),
        *('nonpositive', 'integer', 'real', 'finite', 'zero', 'nonzero'),
    )
)
_SYMBOL = re.compile(r'[a-z]+\d+')
_NAME = re.compile(r'[A-Za-z_]\w*')
#: the tokens of input guards, e.g. ``L['images'][1].size()[0] == L['images'][0].size()[0]``
#: (compiled and run by ``.module()``): sizes of inputs, integers, comparisons
_GUARD_TOKENS = re.compile(
    r" +|\d{1,18}|L\['[A-Za-z_]\w*'\](?:\[\d+\]|\['[A-Za-z_]\w*'\])*"
    r'(?:\.size\(\)\[\d+\]|\.stride\(\)\[\d+\]|\.storage_offset\(\))?'
    r'|==|!=|>=|<=|<|>|//|[-+*%()]|math\.(?:floor|ceil|trunc|isnan)|[a-z]+'
)
_GUARD_NAMES = frozenset(('and', 'or', 'not'))


def _load_pt2(where: str, expect: str | None, device: torch.device) -> ExportedModel:
    """Read, check and load a .pt2 file with torch.export."""
    prefix, entries = _pt2_entries(where)
    meta = ExportMetadata.from_json(entries.get(f'extra/{EXTRA_FILE}'), where)
    _check_expect(meta, expect, where)
    entries['models/model.json'] = _checked_program(entries, where)
    archive = _rebuild(prefix, entries)
    del entries
    try:
        program = torch.export.load(archive)
    except Exception as error:  # noqa: BLE001  (the deserialiser's many errors)
        raise ExportError(
            f'{where}: PyTorch cannot load it ({type(error).__name__}: '
            f'{first_line(error)}); it is damaged or from another PyTorch version: '
            'export it again (or export an .onnx file)'
        ) from None
    _check_operators(program, where)
    inputs, outputs, batches = _program_signature(program)
    _check_signature(meta, where, inputs, outputs)
    return ExportedModel(meta, where, _TorchExport(where, program, device, batches))


def _pt2_entries(where: str) -> tuple[str, dict[str, bytes]]:
    """The archive's folder and its entries (CRC-checked), if only torch.export's."""
    try:
        with zipfile.ZipFile(where) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            prefix = names[0].split('/', 1)[0] if names else ''
            for info in infos:
                folder, _, rest = info.filename.partition('/')
                if folder != prefix or not _ENTRIES.fullmatch(rest):
                    raise _refuse(where, f'holds {info.filename!r}')
                if info.compress_type != zipfile.ZIP_STORED:
                    raise _refuse(where, f'holds {info.filename!r} compressed')
            if len(set(names)) != len(names) or 'models/model.json' not in {
                name.partition('/')[2] for name in names
            }:
                raise _refuse(where, 'holds no single program named model')
            entries = {
                info.filename.partition('/')[2]: archive.read(info) for info in infos
            }
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001  (zipfile's many errors for a bad file)
        raise ExportError(
            f'{where}: not a readable .pt2 archive ({first_line(error) or type(error).__name__}'
            '); it is damaged or truncated: export it again'
        ) from None
    return prefix, entries


def _refuse(where: str, what: str) -> ExportError:
    """The error for a .pt2 file this module will not hand to PyTorch."""
    return ExportError(
        f'{where}: {what}; refused: a .pt2 file may hold only what torch.export.save '
        'writes for one program, with no pickled data or code (torch.export.load would '
        'unpickle or run it): export the model again (or use an .onnx file)'
    )


def _checked_program(entries: dict[str, bytes], where: str) -> bytes:
    """The program's JSON without node metadata, if nothing in it would run code."""
    for folder, config, pattern in (
        ('weights', 'model_weights_config.json', r'weight_\d+'),
        ('constants', 'model_constants_config.json', r'tensor_\d+'),
    ):
        for name, payload in _json(entries, f'data/{folder}/{config}', where)[
            'config'
        ].items():
            file = payload.get('path_name', '')
            if payload.get('use_pickle') is not False or not re.fullmatch(
                pattern, file
            ):
                raise _refuse(where, f'stores {folder[:-1]} {name!r} pickled')
            if f'data/{folder}/{file}' not in entries:
                raise _refuse(where, f'lacks the data of {name!r}')
    sample = entries.get('data/sample_inputs/model.pt')
    if sample is None:
        raise _refuse(where, 'lacks its example inputs')
    try:
        torch.load(io.BytesIO(sample), weights_only=True)
    except Exception:  # noqa: BLE001  (what a weights-only unpickler refuses)
        raise _refuse(
            where, 'holds example inputs that are not plain tensors'
        ) from None
    program = _json(entries, 'models/model.json', where)
    guards = program.get('guards_code') or []
    for guard in guards if isinstance(guards, list) else [guards]:
        _check_tokens(guard, _GUARD_TOKENS, _GUARD_NAMES, where, 'guard')
    _check_json(program, where)
    return json.dumps(program).encode()


def _json(entries: dict[str, bytes], name: str, where: str) -> Any:
    """A JSON entry of the archive."""
    try:
        return json.loads(entries[name])
    except (KeyError, ValueError, UnicodeDecodeError):
        raise ExportError(
            f'{where}: its {name} is missing or not JSON; the file is damaged: export '
            'it again'
        ) from None


def _check_json(value: Any, where: str) -> None:
    """Refuse operators and shape expressions that would run code; drop node metadata."""
    if isinstance(value, list):
        for item in value:
            _check_json(item, where)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key == 'nodes' and isinstance(item, list):
            for node in item:
                if isinstance(node, dict):
                    _check_operator(node.get('target'), where)
                    node['metadata'] = {}  # stack traces go into generated source
        elif key == 'as_operator':
            _check_operator(item, where)
        elif key == 'expr_str':
            _check_expression(item, where)
        _check_json(item, where)


def _check_operator(target: Any, where: str) -> None:
    if not isinstance(target, str) or not _OPERATORS.fullmatch(target):
        raise _refuse(where, f'calls {str(target)[:80]!r}')


def _check_expression(text: Any, where: str) -> None:
    """Refuse a symbolic-shape expression outside a small srepr grammar (sympify evals)."""
    _check_tokens(text, _TOKENS, _SYMPY_NAMES, where, 'shape expression')


def _check_tokens(
    text: Any, tokens: re.Pattern[str], names: frozenset[str], where: str, what: str
) -> None:
    """Refuse code that is not made of *tokens*, with no name but *names* and symbols."""
    if not isinstance(text, str) or len(text) > 2000 or '**' in text:
        raise _refuse(where, f'holds a {what} {str(text)[:80]!r}')
    end = 0
    for match in tokens.finditer(text):
        token = match.group()
        if match.start() != end or (
            _NAME.fullmatch(token)
            and token not in names
            and not _SYMBOL.fullmatch(token)
        ):
            break
        end = match.end()
    if end != len(text):
        raise _refuse(where, f'holds the {what} {text[:80]!r}')


def _rebuild(prefix: str, entries: Mapping[str, bytes]) -> io.BytesIO:
    """A fresh archive of the checked entries, for torch.export.load."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(f'{prefix}/{name}', data)
    buffer.seek(0)
    return buffer


def _check_operators(program: Any, where: str) -> None:
    """Refuse a loaded graph calling anything but aten operators and size arithmetic."""
    for module in program.graph_module.modules():
        graph = getattr(module, 'graph', None)
        for node in graph.nodes if graph is not None else ():
            if node.op not in ('call_function', 'call_method', 'call_module'):
                continue
            target = node.target
            aten = (
                isinstance(target, torch._ops.OpOverload) and target.namespace == 'aten'
            )
            if node.op != 'call_function' or not (aten or target in _PYTHON_OPERATORS):
                raise _refuse(where, f'calls {str(target)[:80]!r}')


def _program_signature(
    program: Any,
) -> tuple[
    list[tuple[str | None, Shape]],
    list[tuple[str | None, Shape]],
    tuple[int, int | None],
]:
    """The program's user inputs and outputs (unnamed) and the batch sizes it takes."""
    nodes = {node.name: node for node in program.graph.nodes}
    placeholders = [nodes[name] for name in program.graph_signature.user_inputs]
    leaves = [nodes.get(str(name)) for name in program.graph_signature.user_outputs]
    # the graph's own names (e.g. images_0) are not the metadata's: compared by count
    inputs: list[tuple[str | None, Shape]] = [(None, _shape(n)) for n in placeholders]
    outputs: list[tuple[str | None, Shape]] = [(None, _shape(n)) for n in leaves]
    first = placeholders[0].meta.get('val') if placeholders else None
    size = first.shape[0] if isinstance(first, torch.Tensor) and first.dim() else 1
    if isinstance(size, int):
        return inputs, outputs, (size, size)
    ranges = program.range_constraints.get(size.node.expr)
    least = int(ranges.lower) if ranges is not None else 1
    upper = ranges.upper if ranges is not None else None
    most = int(upper) if getattr(upper, 'is_Integer', False) else None  # else unbounded
    return inputs, outputs, (max(least, 1), most)


def _shape(node: Any) -> Shape:
    """A graph value's shape; dynamic dimensions are None."""
    value = None if node is None else node.meta.get('val')
    if not isinstance(value, torch.Tensor):
        return None
    return tuple(d if isinstance(d, int) else None for d in value.shape)


class _TorchExport:
    """A torch.export program, unlifted to a module on the device."""

    name = 'torch.export'

    def __init__(
        self,
        where: str,
        program: Any,
        device: torch.device,
        batches: tuple[int, int | None],
    ) -> None:
        self.where = where
        self.program = program
        self.batches = batches
        self.module: Any = None
        self.device = device
        self.to(device)

    def to(self, device: torch.device) -> None:
        if self.module is not None and device == self.device:
            return
        if device.type not in ('cpu', 'cuda', 'mps'):
            raise ExportError(f"--device {device}: expected 'cpu', 'cuda' or 'mps'")
        from torch.export.passes import move_to_device_pass

        try:
            program = (
                self.program
                if device.type == 'cpu'
                else move_to_device_pass(self.program, device)
            )
            self.module = program.module()
        except (RuntimeError, AssertionError) as error:
            raise ExportError(
                f'--device {device}: PyTorch cannot run {self.where} there '
                f'({first_line(error)}); pass --device cpu'
            ) from None
        self.device = device

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        with torch.inference_mode():
            out = self.module(*(x.to(self.device, torch.float32) for x in inputs))
        return [out] if isinstance(out, Tensor) else list(out)
