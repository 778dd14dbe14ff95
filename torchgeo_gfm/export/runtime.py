# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Run an exported model from its file: onnxruntime for ``.onnx``, PyTorch for ``.pt2``.

:func:`load_exported` reads what the file says about itself (:mod:`.metadata`), checks
the graph against it and returns an :class:`ExportedModel`, which the scene engine runs
as it runs a :class:`~torchgeo_gfm.scene.Predictor`: raw tiles in, probabilities (SR:
values; backbone: features) out, normalisation inside the graph. Nothing of Lightning,
TorchGeo or timm is imported; ``onnx`` and ``onnxruntime`` only for an ``.onnx`` file
(``pip install 'torchgeo-gfm[export]'``).

Each format is read by its own module, in the steps :func:`load_exported` takes:
:mod:`.onnx_file` (an ONNX graph is data; its external data must stay in the model's
folder) and :mod:`.pt2_file` (a ``.pt2`` archive is read and checked before PyTorch sees
it: :func:`torch.export.load` alone would unpickle and run parts of it). The checks of
the metadata both share are in :mod:`.checks`; the model's own (tile, bands, shapes of
what it is given) are here.

.. versionadded:: 0.2
"""

import os
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from .checks import Signature, check_expect, check_sensor, check_signature, first_output
from .metadata import ExportError, ExportMetadata
from .onnx_file import OnnxFile
from .pt2_file import Pt2File

__all__ = ('ExportedModel', 'is_exported', 'load_exported')

#: the suffixes of exported files
SUFFIXES = ('.onnx', '.pt2')


class _Backend(Protocol):
    """What runs a checked graph: an onnxruntime session or a torch.export program."""

    #: 'onnxruntime' or 'torch.export'
    name: str
    device: torch.device
    #: the batch sizes the graph takes: least, most (None: any)
    batches: tuple[int, int | None]

    def to(self, device: torch.device) -> None:
        """Run on *device* from now on, or raise an :class:`ExportError`."""

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        """The graph's outputs of one batch, one tensor per graph input."""
        ...


class _ExportedFile(Protocol):
    """An exported file of one format, read in the steps :func:`load_exported` takes."""

    #: what the file says about itself, read first (nothing else is read or run)
    meta: ExportMetadata

    def read_graph(self) -> tuple[Signature, Signature]:
        """Read the graph (refusing what is unsafe): its inputs and outputs."""
        ...

    def open(self, device: torch.device) -> _Backend:
        """What runs the graph on *device*."""
        ...


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
        self.sensor = check_sensor(meta, path)
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
        """The one batch size the graph takes, or None for any (others are padded or split)."""
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
            The outputs by name (the metadata's ``outputs``), float32 arrays.

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
        rule = f' (a multiple of {m})' if m > 1 else ''
        raise ExportError(
            f'{option} {tile}: {self.path} was exported for {self.tile} px tiles (the '
            f'tile size is fixed in an exported graph); pass {option} {self.tile}, or '
            f'export the checkpoint again with --tile {other}{rule}'
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

    def _check_outputs(self, outs: list[Tensor], batch: int) -> None:
        """Refuse what a damaged graph gives: other outputs than its metadata says."""
        expected = (batch, *first_output(self.meta)[1:])
        if len(outs) != len(self.meta.outputs) or tuple(outs[0].shape) != expected:
            raise ExportError(
                f'{self.path}: its graph gave {len(outs)} output(s), the first '
                f'{list(outs[0].shape) if outs else None}; its metadata says '
                f'{len(self.meta.outputs)}, the first {list(expected)}: the file is '
                'damaged: export it again'
            )


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
    reader = OnnxFile if where.lower().endswith('.onnx') else Pt2File
    file: _ExportedFile = reader(where)  # what it says about itself, nothing else yet
    check_expect(file.meta, expect, where)
    inputs, outputs = file.read_graph()
    check_signature(file.meta, where, inputs, outputs)
    return ExportedModel(file.meta, where, file.open(target))


def read_metadata(path: str | os.PathLike[str]) -> ExportMetadata:
    """What an exported file says about itself, read and checked without running it.

    Args:
        path: an ``.onnx`` or ``.pt2`` file written by
            :func:`~torchgeo_gfm.export.export_model`.

    Returns:
        Its metadata.

    Raises:
        ExportError: as :func:`load_exported` for a missing, damaged or foreign file.

    .. versionadded:: 0.2
    """
    where = _check_file(path)
    reader = OnnxFile if where.lower().endswith('.onnx') else Pt2File
    return reader(where).meta


# --- the file and the device


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


def _numbers(values: list[float]) -> str:
    """Numbers for a message, shortly."""
    return '[' + ', '.join(f'{v:g}' for v in values) + ']'
