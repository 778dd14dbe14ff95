# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The exported-model runtime: parity, the model's checks, missing and damaged files."""

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from tests.export.exported_files import (
    KINDS,
    TRAINING_STACK,
    Made,
    edit_pt2,
    example,
    set_onnx_metadata,
    stacked,
    tiny_files,
)
from torchgeo_gfm.export import ExportedModel, is_exported, load_exported
from torchgeo_gfm.export.metadata import EXTRA_FILE, ExportError
from torchgeo_gfm.sensors import get_sensor

FORBIDDEN = TRAINING_STACK


@pytest.fixture(scope='module')
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Made]:
    return tiny_files(tmp_path_factory)


def first(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def test_is_exported() -> None:
    assert is_exported('model.onnx')
    assert is_exported(Path('dir/MODEL.PT2'))
    assert is_exported('does/not/exist.Onnx')
    assert not is_exported('model.ckpt')
    assert not is_exported('model.onnx.ckpt')
    assert not is_exported('onnx')
    assert not is_exported(object())
    assert not is_exported(None)


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
@pytest.mark.parametrize('kind', KINDS)
def test_parity(make: Callable[..., Made], kind: str, suffix: str) -> None:
    module, meta, path = make(kind, suffix)
    model = load_exported(path)
    assert isinstance(model, ExportedModel)
    assert model.backend == ('onnxruntime' if suffix == '.onnx' else 'torch.export')
    for batch in (1, 3):
        inputs = example(meta, batch, seed=batch)
        with torch.no_grad():
            expected = first(module(*inputs))
        got = model(stacked(inputs))
        assert got.dtype == torch.float32
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_fixed_batch_pads_and_splits(make: Callable[..., Made], suffix: str) -> None:
    module, meta, path = make('segmentation', suffix, batch=2)
    model = load_exported(path)
    assert model.batch == 2
    for batch in (1, 5):  # one short batch padded; one split in 2 + 2 + 1 (padded)
        inputs = example(meta, batch, seed=batch)
        with torch.no_grad():
            expected = module(*inputs)
        got = model(stacked(inputs))
        assert got.shape == (batch, 2, 16, 16)
        assert (got - expected).abs().max().item() <= 1e-4
        assert (
            model.run(*(x.numpy() for x in inputs))['probabilities'].shape[0] == batch
        )


def test_attributes(make: Callable[..., Made]) -> None:
    _, meta, path = make('super_resolution', '.pt2')
    model = load_exported(path, device=torch.device('cpu'))
    assert (model.kind, model.mode, model.images) == (
        'super_resolution',
        'regression',
        1,
    )
    assert (model.in_channels, model.outputs, model.scale) == (3, 2, 2)
    assert (model.tile, model.multiple, model.batch) == (16, 4, None)
    assert model.classes is None
    assert model.bands == [0, 1, 2]
    assert model.sensor is None
    assert model.mean.dtype == torch.float32
    assert model.mean.tolist() == meta.mean
    assert torch.allclose(model.std, torch.tensor(meta.std))
    assert model.source == 'in the exported graph: mean [10, 20, 30], std [2, 3.5, 5]'
    assert model.meta == meta
    assert model.path == str(path)
    assert model.to('cpu') is model
    assert model.device == torch.device('cpu')
    assert 'super_resolution' in repr(model)


def test_sensor(make: Callable[..., Made]) -> None:
    _, _, path = make('change', '.onnx', sensor='rgb')
    model = load_exported(path, expect='task')
    assert model.sensor == get_sensor('rgb')
    assert model.source == 'in the exported graph: sensor rgb'
    assert (model.kind, model.images, model.classes) == (
        'change',
        2,
        ['class0', 'class1'],
    )
    with pytest.raises(ExportError, match=r'has 4 band\(s\), .* takes 3: sensor rgb'):
        model.check_bands(4, 'a.tif')
    model.check_bands(3, 'a.tif')


def test_run_names_every_output(make: Callable[..., Made]) -> None:
    module, meta, path = make('backbone', '.onnx')
    model = load_exported(path, expect='backbone')
    inputs = example(meta, 3)
    out = model.run(*(x.numpy() for x in inputs))
    assert sorted(out) == ['embedding', 'features']
    assert out['features'].shape == (3, 2, 4, 4)
    assert out['features'].dtype == np.float32
    np.testing.assert_allclose(
        out['embedding'], out['features'].mean((2, 3)), atol=1e-5
    )
    np.testing.assert_allclose(out['features'], module(*inputs)[0].detach(), atol=1e-4)
    with pytest.raises(ExportError, match='takes 1 input'):
        model.run(inputs[0].numpy(), inputs[0].numpy())


def test_check_tile(make: Callable[..., Made]) -> None:
    _, meta, path = make()
    model = load_exported(path)
    model.check_tile(16)
    with pytest.raises(
        ExportError, match=r'--tile 30: .* exported for 16 px tiles.*--tile 32'
    ):
        model.check_tile(30)
    with pytest.raises(ExportError, match=r'--size 8: .*pass --size 16'):
        model.check_tile(8, '--size')
    x = stacked(example(dataclasses.replace(meta, tile=8), 1))
    with pytest.raises(ExportError, match='exported for 16 px tiles'):
        model(x)
    with pytest.raises(ExportError, match=r'takes \[batch, 1, 3, 16, 16\]'):
        model(x[:, :, :2])
    with pytest.raises(
        ExportError, match=r'bands 0, 1, 2; pass --bands .* --bands 1,2,3'
    ):
        model.check_bands(4, 'in.tif')


# --- files that are not exported models


def test_missing_and_folders(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match='no such file'):
        load_exported(tmp_path / 'missing.onnx')
    (tmp_path / 'dir.pt2').mkdir()
    with pytest.raises(ExportError, match='is a folder'):
        load_exported(tmp_path / 'dir.pt2')
    (tmp_path / 'model.ckpt').write_bytes(b'')
    with pytest.raises(ExportError, match=r'expected a \.onnx or \.pt2 file'):
        load_exported(tmp_path / 'model.ckpt')


def test_not_ours(make: Callable[..., Made], tmp_path: Path) -> None:
    _, _, onnx_path = make()
    bare = set_onnx_metadata(onnx_path, tmp_path / 'bare.onnx', None)
    with pytest.raises(ExportError, match='not a model exported by torchgeo-gfm'):
        load_exported(bare)
    _, _, pt2 = make(suffix='.pt2')
    bare = edit_pt2(pt2, tmp_path / 'bare.pt2', lambda e: e.pop(f'extra/{EXTRA_FILE}'))
    with pytest.raises(ExportError, match='not a model exported by torchgeo-gfm'):
        load_exported(bare)


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_damaged(make: Callable[..., Made], tmp_path: Path, suffix: str) -> None:
    _, _, path = make(suffix=suffix)
    data = path.read_bytes()
    for name, content in [
        ('empty', b''),
        ('half', data[: len(data) // 2]),
        ('text', b'hello, not a model\n' * 10),
    ]:
        bad = tmp_path / f'{name}{suffix}'
        bad.write_bytes(content)
        with pytest.raises(ExportError, match=f'{name}{suffix}: .*'):
            load_exported(bad)


def _corrupted_model(path: Path) -> None:
    """Load and run a corrupted file: an ExportError, or a model that still runs."""
    try:
        model = load_exported(path)
        out = model(torch.zeros(2, 1, 3, 16, 16))
    except ExportError:
        return
    assert out.shape == (2, 2, 16, 16)


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_damaged_anywhere(
    make: Callable[..., Made], tmp_path: Path, suffix: str, data: st.DataObject
) -> None:
    _, _, path = make(suffix=suffix)
    content = bytearray(path.read_bytes())
    offset = data.draw(st.integers(0, len(content) - 1), label='offset')
    if data.draw(st.booleans(), label='truncate'):
        content = content[:offset]
    else:
        content[offset] ^= data.draw(st.integers(1, 255), label='xor')
    bad = tmp_path / f'bad{suffix}'
    bad.write_bytes(bytes(content))
    _corrupted_model(bad)


# --- no Lightning, TorchGeo or timm

BLOCKER = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {forbidden!r}:
            raise ImportError(f'{{name}} blocked by the test')
        return None

sys.meta_path.insert(0, Block())
"""

RUN = """
import sys
import torch
from torchgeo_gfm.export.runtime import load_exported

for path in {paths!r}:
    model = load_exported(path)
    out = model(torch.zeros(1, model.images, model.in_channels, model.tile, model.tile))
    assert out.shape[0] == 1, out.shape
print(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r}))
"""


@pytest.mark.parametrize(
    'block',
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=['plain', 'blocked'],
)
def test_imports_nothing_heavy(make: Callable[..., Made], block: bool) -> None:
    paths = [str(make()[2]), str(make('backbone', '.pt2')[2])]
    code = (BLOCKER.format(forbidden=FORBIDDEN) if block else '') + RUN.format(
        paths=paths, forbidden=FORBIDDEN
    )
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).parents[2])}
    result = subprocess.run(
        [sys.executable, '-c', code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == '[]'


# --- files written by the exporter

#: exported in the default tests (others are slow to export: marked slow)
REAL = [
    'fcn',
    *(
        pytest.param(name, marks=pytest.mark.slow)
        for name in ('unet', 'binary13', 'change', 'classification', 'multilabel', 'sr')
    ),
]


@pytest.mark.parametrize(
    'suffix', ['.pt2', pytest.param('.onnx', marks=pytest.mark.slow)]
)
@pytest.mark.parametrize('name', REAL)
def test_exported_task_equals_predictor(
    exported: Callable[[str, str], Path],
    checkpoints: Callable[[str], Path],
    name: str,
    suffix: str,
) -> None:
    """What the scene engine computes from the checkpoint, from the exported file."""
    from torchgeo_gfm.scene.predictor import load_predictor

    model = load_exported(exported(name, suffix), expect='task')
    sensor = 's2' if name == 'binary13' else None  # exported with --sensor s2
    predictor = load_predictor(checkpoints(name), sensor=sensor)
    assert (model.kind, model.mode) == (predictor.kind, predictor.mode)
    assert (model.outputs, model.scale, model.images) == (
        predictor.outputs,
        predictor.scale,
        predictor.images,
    )
    assert model.in_channels == predictor.in_channels
    torch.testing.assert_close(model.mean, predictor.mean.float())
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 3):
        shape = (batch, model.images, model.in_channels, model.tile, model.tile)
        images = torch.rand(shape, generator=generator) * predictor.mean.max() * 2
        assert (model(images) - predictor(images)).abs().max().item() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('suffix', ['.pt2', '.onnx'])
def test_exported_backbone_equals_backbone(
    exported: Callable[[str, str], Path],
    checkpoints: Callable[[str], Path],
    suffix: str,
) -> None:
    from torchgeo_gfm.scene.backbone import load_backbone_for_embedding

    model = load_exported(exported('backbone', suffix), expect='backbone')
    backbone = load_backbone_for_embedding(
        checkpoints('classification'), 3, in_channels=3
    )
    mean = torch.tensor(backbone.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(backbone.std, dtype=torch.float32)[:, None, None]
    images = torch.rand(3, 1, 3, model.tile, model.tile) * 255
    with torch.no_grad():
        expected = backbone.features((images[:, 0] - mean) / std)
    assert (model(images) - expected).abs().max().item() <= 1e-4
    out = model.run(images[:, 0].numpy())
    np.testing.assert_allclose(
        out['embedding'], out['features'].mean((2, 3)), atol=1e-5
    )
