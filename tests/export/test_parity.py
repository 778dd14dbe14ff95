# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Exported files compute what eager PyTorch computes: onnxruntime (CPU) and the
reloaded ``.pt2``, fp32, two batch sizes, every kind."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import timm
import torch
from torch import Tensor

from tests.export.conftest import OPTIONS, TILE, tiny_student
from torchgeo_gfm.export.metadata import EXTRA_FILE, METADATA_KEY, ExportMetadata
from torchgeo_gfm.export.modules import TaskModule, task_module
from torchgeo_gfm.export.writing import export_model
from torchgeo_gfm.models.checkpoint import save_backbone
from torchgeo_gfm.scene.backbone import Backbone, load_backbone_for_embedding
from torchgeo_gfm.scene.normalisation import NAMED
from torchgeo_gfm.scene.predictor import load_predictor

TOLERANCE = 1e-4
#: exported in the default tests (the others take longer: marked slow)
QUICK = ('fcn', 'classification')
SLOW = ('unet', 'binary13', 'change', 'multilabel', 'sr', 'backbone', 'student')
KINDS = [*QUICK, *(pytest.param(name, marks=pytest.mark.slow) for name in SLOW)]

Model = Callable[..., tuple[Tensor, ...]]


def read_metadata(path: Path) -> ExportMetadata:
    """The metadata stored in an exported file, read as a deployment would."""
    if path.suffix == '.onnx':
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return ExportMetadata.from_json(props.get(METADATA_KEY), str(path))
    extra = {EXTRA_FILE: ''}
    torch.export.load(path, extra_files=extra)
    return ExportMetadata.from_json(extra[EXTRA_FILE], str(path))


def run_file(path: Path, meta: ExportMetadata) -> Model:
    """The exported file as a function of tensors: onnxruntime or the reloaded .pt2."""
    if path.suffix == '.onnx':
        session = onnxruntime.InferenceSession(
            str(path), providers=['CPUExecutionProvider']
        )

        def run(*images: Tensor) -> tuple[Tensor, ...]:
            feeds = {n: x.numpy() for n, x in zip(meta.inputs, images, strict=True)}
            return tuple(map(torch.from_numpy, session.run(meta.outputs, feeds)))

        return run
    module = torch.export.load(path).module()

    @torch.no_grad()
    def run_pt2(*images: Tensor) -> tuple[Tensor, ...]:
        out = module(*images)
        return (out,) if isinstance(out, Tensor) else tuple(out)

    return run_pt2


def embedder(backbone: Backbone) -> Model:
    """What embed_scene computes of raw tiles: the features and their mean."""
    m = torch.tensor(backbone.mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(backbone.std, dtype=torch.float32)[:, None, None]

    @torch.no_grad()
    def embed(image: Tensor) -> tuple[Tensor, ...]:
        features = backbone.features((image - m) / s)
        return features, features.mean((2, 3))

    return embed


def eager(name: str, source: Path) -> Model:
    """What the scene engine computes on raw tiles, without the export modules."""
    if name == 'backbone':
        stage = OPTIONS[name]['stage']
        return embedder(load_backbone_for_embedding(source, stage, in_channels=3))
    if name == 'student':
        mean, std = NAMED['imagenet']
        return embedder(Backbone(tiny_student(), 4, 3, mean, std, 'student'))
    sensor = OPTIONS.get(name, {}).get('sensor')
    predictor = load_predictor(source, sensor=sensor)
    return lambda *images: (predictor(torch.stack(images, 1)),)


def assert_close(
    model: Model, reference: Model, meta: ExportMetadata, batches: tuple[int, ...]
) -> None:
    """Outputs within TOLERANCE at each batch size, class maps equal."""
    for batch in batches:
        images = raw_tiles(meta, batch, seed=batch)
        got, want = model(*images), reference(*images)
        assert len(got) == len(want) == len(meta.outputs)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == torch.float32
            assert g.shape == w.shape
            assert g.shape[0] == batch
            assert (g - w).abs().max().item() <= TOLERANCE
        expected, found = class_map(meta, want[0]), class_map(meta, got[0])
        if expected is not None:
            assert found is not None
            assert torch.equal(found, expected)


def raw_tiles(meta: ExportMetadata, batch: int, seed: int) -> tuple[Tensor, ...]:
    """Raw values on the raster's scale (around the model's mean)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, meta.in_channels, meta.tile, meta.tile)
    mean = torch.tensor(meta.mean)[:, None, None]
    std = torch.tensor(meta.std)[:, None, None]
    return tuple(
        (mean + std * torch.randn(shape, generator=gen)).clamp(min=0)
        for _ in meta.inputs
    )


def class_map(meta: ExportMetadata, probabilities: Tensor) -> Tensor | None:
    """The classes (or labels) a prediction picks; None for SR and backbones."""
    if meta.mode == 'multiclass':
        return probabilities.argmax(1)
    if meta.mode in ('binary', 'multilabel'):
        return probabilities > 0.5
    return None


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
@pytest.mark.parametrize('name', KINDS)
def test_exported_equals_eager(
    name: str,
    suffix: str,
    exported: Callable[[str, str], Path],
    source: Callable[[str], Path],
) -> None:
    path = exported(name, suffix)
    meta = read_metadata(path)
    assert meta.batch is None
    assert meta.tile == TILE
    if suffix == '.pt2':  # named as the metadata says, as in ONNX
        signature = torch.export.load(path).graph_signature
        assert list(signature.user_inputs) == meta.inputs
    assert_close(run_file(path, meta), eager(name, source(name)), meta, (1, 3))


def test_shapes_follow_the_metadata(exported: Callable[[str, str], Path]) -> None:
    """Inputs and outputs of the ONNX graph: named, batch symbolic, the rest fixed."""
    path = exported('classification', '.onnx')
    meta = read_metadata(path)
    graph = onnx.load(str(path)).graph

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        shape = value.type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in shape]

    assert [v.name for v in graph.input] == ['image']
    assert [v.name for v in graph.output] == ['probabilities']
    (batch, *rest) = dims(graph.input[0])
    assert isinstance(batch, str)
    assert rest == [3, TILE, TILE]
    assert dims(graph.output[0]) == [batch, meta.channels]


@pytest.mark.parametrize('name', ['fcn', 'classification', 'change'])
def test_task_module_is_the_predictor(name: str, source: Callable[[str], Path]) -> None:
    """Eager: the exported module computes exactly what Predictor.__call__ does."""
    predictor = load_predictor(source(name))
    module = task_module(predictor)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, predictor.images, 3, 32, 32), generator=gen)
    with torch.no_grad():
        got = module(*images.float().unbind(1))
    assert torch.equal(got, predictor(images.float()))
    assert module.inputs == (['image1', 'image2'] if name == 'change' else ['image'])
    if name != 'change':  # the class of another kind is refused
        return
    with pytest.raises(TypeError, match='use task_module'):
        TaskModule(predictor)


def test_input_of_another_tile_size_is_refused(
    exported: Callable[[str, str], Path],
) -> None:
    path = exported('fcn', '.onnx')
    meta = read_metadata(path)
    model = run_file(path, meta)
    other = np.zeros((1, 3, TILE + 32, TILE + 32), np.float32)
    with pytest.raises(Exception, match=r'(?i)dimension|shape'):
        model(torch.from_numpy(other))


@pytest.fixture(scope='module')
def paper_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GFM Swin-B (random init) as a backbone weights file, as ``convert`` writes."""
    torch.manual_seed(0)
    model = timm.create_model('gfm_swin_base', num_classes=0)
    path = tmp_path_factory.mktemp('paper') / 'gfm_swin_base.safetensors'
    save_backbone(model.state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize('tile', [192, 512])
def test_paper_architecture(tile: int, paper_weights: Path, tmp_path: Path) -> None:
    """Swin-B at GFM's pretraining size and at a 512 px tile, both formats."""
    reference = embedder(load_backbone_for_embedding(paper_weights, 4, 3))
    for suffix in ('.onnx', '.pt2'):
        path = export_model(paper_weights, tmp_path / f'gfm{suffix}', tile=tile)
        meta = read_metadata(path)
        assert (meta.kind, meta.tile, meta.channels, meta.stride) == (
            'backbone',
            tile,
            1024,
            32,
        )
        assert_close(run_file(path, meta), reference, meta, (1, 2))
        path.unlink()
