# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Small exported files for the runtime's tests, written without the exporter.

Each tiny module normalises raw values in its graph, as the exporter's do, and has the
inputs and outputs of one kind (:data:`KINDS`); :func:`write_onnx` and :func:`write_pt2`
export it with its :class:`~torchgeo_gfm.export.ExportMetadata` (:func:`tiny_files`:
each once per session, shared by the test modules), and the other helpers change a
written file the way a damaged, edited or hostile one would be.
"""

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from torch import Tensor, nn

from torchgeo_gfm.export.metadata import EXTRA_FILE, METADATA_KEY, ExportMetadata
from torchgeo_gfm.sensors import get_sensor

KINDS = ('segmentation', 'change', 'classification', 'super_resolution', 'backbone')

#: a tiny module, its metadata and the file it was exported to
Made = tuple[nn.Module, ExportMetadata, Path]
#: the files written in this session, by folder and what they are
_MADE: dict[tuple[Any, ...], Made] = {}

#: the training stack, which running an exported file must not import
TRAINING_STACK = (
    'lightning',
    'torchgeo',
    'timm',
    'kornia',
    'segmentation_models_pytorch',
    'torchmetrics',
)


class Tiny(nn.Module):
    """Normalisation, a convolution and the head of one kind; float32 in and out."""

    mean: Tensor
    std: Tensor

    def __init__(self, kind: str, in_channels: int, channels: int) -> None:
        super().__init__()
        self.kind = kind
        self.register_buffer('mean', torch.linspace(10, 30, in_channels)[:, None, None])
        self.register_buffer('std', torch.linspace(2, 5, in_channels)[:, None, None])
        images = 2 if kind == 'change' else 1
        stride = 4 if kind == 'backbone' else 1
        out = channels * 4 if kind == 'super_resolution' else channels
        self.conv = nn.Conv2d(in_channels * images, out, 3, stride, padding=1)

    def forward(self, *images: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        x = torch.cat([(image - self.mean) / self.std for image in images], 1)
        y = self.conv(x)
        if self.kind == 'classification':
            return y.mean((2, 3)).softmax(1)
        if self.kind == 'super_resolution':
            return nn.functional.pixel_shuffle(y, 2)
        if self.kind == 'backbone':
            return y, y.mean((2, 3))
        return y.softmax(1)


def tiny(
    kind: str = 'segmentation',
    *,
    in_channels: int = 3,
    channels: int = 2,
    tile: int = 16,
    batch: int | None = None,
    sensor: dict[str, object] | None = None,
) -> tuple[Tiny, ExportMetadata]:
    """A tiny module of *kind* and the metadata describing it."""
    torch.manual_seed(0)
    module = Tiny(kind, in_channels, channels).eval()
    change, sr, backbone = (
        kind == 'change',
        kind == 'super_resolution',
        kind == 'backbone',
    )
    meta = ExportMetadata(
        kind=kind,
        mode={'super_resolution': 'regression', 'backbone': 'embedding'}.get(
            kind, 'multiclass'
        ),
        inputs=['image1', 'image2'] if change else ['image'],
        outputs=['features', 'embedding']
        if backbone
        else ['values' if sr else 'probabilities'],
        meaning='for tests',
        in_channels=in_channels,
        mean=module.mean.flatten().tolist(),
        std=module.std.flatten().tolist(),
        tile=tile,
        multiple=4,
        channels=channels,
        batch=batch,
        scale=2 if sr else 1,
        stride=4 if backbone else 1,
        classes=None if sr or backbone else [f'class{i}' for i in range(channels)],
        bands=list(range(in_channels)),
        sensor=sensor,
        stage=4 if backbone else None,
    )
    return module, meta


def example(meta: ExportMetadata, batch: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
    """Raw ``[batch, C, tile, tile]`` inputs of the model *meta* describes."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, meta.in_channels, meta.tile, meta.tile)
    return tuple(torch.rand(shape, generator=generator) * 40 for _ in meta.inputs)


def stacked(inputs: tuple[Tensor, ...]) -> Tensor:
    """The engine's ``[B, T, C, H, W]`` batch of per-image inputs."""
    return torch.stack(inputs, 1)


def _dynamic(meta: ExportMetadata) -> tuple[tuple[dict[int, object], ...]] | None:
    """The dynamic batch of forward(*images); None for a fixed batch."""
    if meta.batch is not None:
        return None
    dim = torch.export.Dim('batch', min=1)
    return (tuple({0: dim} for _ in meta.inputs),)


def write_onnx(module: nn.Module, meta: ExportMetadata, path: Path) -> Path:
    """Export *module* to ONNX with *meta* in its ``metadata_props``."""
    inputs = example(meta, meta.batch or 2)
    with warnings.catch_warnings():  # two inputs share the batch: one name is kept
        warnings.filterwarnings('ignore', '.*The axis name: batch will not be used')
        program = torch.onnx.export(
            module,
            inputs,
            dynamo=True,
            input_names=meta.inputs,
            output_names=meta.outputs,
            dynamic_shapes=_dynamic(meta),
            external_data=False,
            verbose=False,
        )
    assert program is not None
    program.model.metadata_props[METADATA_KEY] = meta.to_json()
    program.save(path, external_data=False)
    return path


def write_pt2(module: nn.Module, meta: ExportMetadata, path: Path) -> Path:
    """Export *module* with torch.export, *meta* as the extra file."""
    inputs = example(meta, meta.batch or 2)
    program = torch.export.export(module, inputs, dynamic_shapes=_dynamic(meta))
    torch.export.save(program, path, extra_files={EXTRA_FILE: meta.to_json()})
    return path


def tiny_files(factory: pytest.TempPathFactory) -> Callable[..., Made]:
    """``make(kind, suffix, batch=None, sensor=None)``: a tiny exported file, once.

    Each file is written once per session, whichever test module asks first.
    """
    root = factory.getbasetemp() / 'tiny-exported'
    writers = {'.onnx': write_onnx, '.pt2': write_pt2}

    def make(
        kind: str = 'segmentation',
        suffix: str = '.onnx',
        batch: int | None = None,
        sensor: str | None = None,
    ) -> Made:
        key = (root, kind, suffix, batch, sensor)
        if key not in _MADE:
            recorded = get_sensor(sensor).to_dict() if sensor else None
            module, meta = tiny(kind, batch=batch, sensor=recorded)
            folder = root / f'{kind}-{batch}-{sensor}'
            folder.mkdir(parents=True, exist_ok=True)
            path = writers[suffix](module, meta, folder / f'model{suffix}')
            _MADE[key] = module, meta, path
        return _MADE[key]

    return make


def set_onnx_metadata(source: Path, path: Path, text: str | None) -> Path:
    """A copy of an .onnx file with other metadata (None: none)."""
    model = onnx.load(source)
    del model.metadata_props[:]
    if text is not None:
        model.metadata_props.add(key=METADATA_KEY, value=text)
    onnx.save(model, path)
    return path


def edit_pt2(
    source: Path, path: Path, change: Callable[[dict[str, bytes]], object]
) -> Path:
    """A copy of a .pt2 archive whose entries (names below its folder) *change* edits."""
    with zipfile.ZipFile(source) as archive:
        prefix = archive.namelist()[0].split('/', 1)[0]
        entries = {
            name.split('/', 1)[1]: archive.read(name) for name in archive.namelist()
        }
    change(entries)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(f'{prefix}/{name}', data)
    path.write_bytes(buffer.getvalue())
    return path


def edit_program(
    source: Path, path: Path, change: Callable[[dict[str, Any]], object]
) -> Path:
    """A copy of a .pt2 archive whose program JSON *change* edits."""

    def edit(entries: dict[str, bytes]) -> None:
        program = json.loads(entries['models/model.json'])
        change(program)
        entries['models/model.json'] = json.dumps(program).encode()

    return edit_pt2(source, path, edit)
