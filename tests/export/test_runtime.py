# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The exported-model runtime: parity, the metadata checks, bad and hostile files."""

import builtins
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from tests.export.exported_files import (
    KINDS,
    edit_program,
    edit_pt2,
    example,
    set_onnx_metadata,
    tiny,
    write_onnx,
    write_pt2,
)
from torchgeo_gfm.export import ExportedModel, is_exported, load_exported
from torchgeo_gfm.export.metadata import EXTRA_FILE, ExportError, ExportMetadata
from torchgeo_gfm.sensors import get_sensor

WRITERS = {'.onnx': write_onnx, '.pt2': write_pt2}
FORBIDDEN = (
    'lightning',
    'torchgeo',
    'timm',
    'kornia',
    'segmentation_models_pytorch',
    'torchmetrics',
)

Made = tuple[nn.Module, ExportMetadata, Path]


@pytest.fixture(scope='module')
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Made]:
    """``make(kind, suffix, batch=None, sensor=None)``: a tiny exported file, once."""
    root = tmp_path_factory.mktemp('runtime')
    cache: dict[tuple[Any, ...], Made] = {}

    def get(
        kind: str = 'segmentation',
        suffix: str = '.onnx',
        batch: int | None = None,
        sensor: str | None = None,
    ) -> Made:
        key = (kind, suffix, batch, sensor)
        if key not in cache:
            recorded = get_sensor(sensor).to_dict() if sensor else None
            module, meta = tiny(kind, batch=batch, sensor=recorded)
            folder = root / f'{kind}-{batch}-{sensor}'
            folder.mkdir(exist_ok=True)
            path = WRITERS[suffix](module, meta, folder / f'model{suffix}')
            cache[key] = module, meta, path
        return cache[key]

    return get


def first(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def stacked(inputs: tuple[Tensor, ...]) -> Tensor:
    """The engine's ``[B, T, C, H, W]`` batch of per-image inputs."""
    return torch.stack(inputs, 1)


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


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_expect(make: Callable[..., Made], suffix: str) -> None:
    _, _, backbone = make('backbone', suffix)
    _, _, task = make('classification', suffix)
    with pytest.raises(
        ExportError, match='use embed --weights, or export the fine-tuned'
    ):
        load_exported(backbone, expect='task')
    with pytest.raises(ExportError, match='is an exported classification task'):
        load_exported(task, expect='backbone')
    assert load_exported(task, expect='task').kind == 'classification'


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


def _metadata(meta: ExportMetadata, **changes: Any) -> str:
    return dataclasses.replace(meta, **changes).to_json()


DISAGREE: dict[str, tuple[dict[str, Any], str]] = {
    'names': ({'inputs': ['x']}, 'takes inputs'),
    'tile': (
        {'tile': 32},
        r'input image is \[.*16, 16\], its metadata says \[.*32, 32\]',
    ),
    'channels': (
        {'channels': 3, 'classes': ['a', 'b', 'c']},
        'output probabilities is',
    ),
    'in_channels': (
        {'in_channels': 4, 'mean': [0.0] * 4, 'std': [1.0] * 4},
        'input image is',
    ),
    'batch': (
        {'batch': 4},
        'input image takes batches of any size, its metadata says 4',
    ),
    'outputs': ({'outputs': ['probabilities', 'x']}, 'gives outputs'),
}


@pytest.mark.parametrize('case', DISAGREE)
@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_graph_disagrees(
    make: Callable[..., Made], tmp_path: Path, case: str, suffix: str
) -> None:
    changes, message = DISAGREE[case]
    if suffix == '.pt2' and case == 'names':
        pytest.skip('a .pt2 graph names its inputs after forward (images_0)')
    _, meta, path = make(suffix=suffix)
    text = _metadata(meta, **changes)
    out = tmp_path / f'edited{suffix}'
    if suffix == '.onnx':
        set_onnx_metadata(path, out, text)
    else:
        edit_pt2(path, out, lambda e: e.update({f'extra/{EXTRA_FILE}': text.encode()}))
    if suffix == '.pt2':  # unnamed
        message = message.replace('input image', 'input')
    with pytest.raises(ExportError, match=f'its graph {message}.*export it again'):
        load_exported(out)


def test_fixed_batch_disagrees(make: Callable[..., Made], tmp_path: Path) -> None:
    _, meta, path = make(batch=2)
    out = set_onnx_metadata(path, tmp_path / 'any.onnx', _metadata(meta, batch=None))
    with pytest.raises(ExportError, match='takes batches of 2, its metadata says any'):
        load_exported(out)


# --- ONNX external data


@pytest.fixture
def external(make: Callable[..., Made], tmp_path: Path) -> Callable[[str], Path]:
    """``external(location)``: the ONNX model with its weights in a side file it names."""
    _, _, path = make()
    folder = tmp_path / 'model'
    folder.mkdir()
    model = onnx.load(path)
    onnx.save_model(
        model,
        folder / 'model.onnx',
        save_as_external_data=True,
        location='weights.bin',
        size_threshold=0,
    )

    def get(location: str) -> Path:
        model = onnx.load(folder / 'model.onnx', load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == 'location':
                    entry.value = location
        out = folder / f'edited{len(list(folder.iterdir()))}.onnx'
        onnx.save(model, out)
        return out

    return get


def test_external_data(external: Callable[[str], Path], tmp_path: Path) -> None:
    model = load_exported(external('weights.bin'))  # beside the model: fine
    assert model(torch.ones(1, 1, 3, 16, 16)).shape == (1, 2, 16, 16)
    outside = tmp_path / 'outside.bin'
    outside.write_bytes((tmp_path / 'model' / 'weights.bin').read_bytes())
    os.symlink(outside, tmp_path / 'model' / 'link.bin')
    for location in [str(outside), '../outside.bin', 'link.bin', '/etc/passwd']:
        with pytest.raises(ExportError, match="outside the model's folder; refused"):
            load_exported(external(location))
    with pytest.raises(ExportError, match=r"in 'gone\.bin', which is missing"):
        load_exported(external('gone.bin'))


# --- runtimes and devices


@pytest.mark.parametrize('package', ['onnx', 'onnxruntime'])
def test_runtime_missing(
    make: Callable[..., Made], monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    _, _, path = make()
    monkeypatch.setitem(sys.modules, package, None)  # import raises ImportError
    with pytest.raises(
        ExportError, match=rf"needs {package}.*pip install 'torchgeo-gfm\[export\]'"
    ):
        load_exported(path)


def test_devices(make: Callable[..., Made], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, path = make()
    monkeypatch.setattr(
        onnxruntime, 'get_available_providers', lambda: ['CPUExecutionProvider']
    )
    with pytest.raises(
        ExportError, match=r'pip install onnxruntime-gpu .* or pass --device cpu'
    ):
        load_exported(path, device='cuda:1')
    model = load_exported(path)
    with pytest.raises(ExportError, match='onnxruntime-gpu'):
        model.to('cuda')
    with pytest.raises(ExportError, match=r'runs .* on cpu or cuda'):
        model.to('mps')
    with pytest.raises(ExportError, match='not a device name'):
        load_exported(path, device='gpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_pt2_on_gpu(make: Callable[..., Made]) -> None:
    module, meta, path = make('change', '.pt2')
    model = load_exported(path, device='cuda')
    inputs = example(meta, 3)
    got = model(stacked(inputs).cuda())
    assert got.device.type == 'cuda'
    assert (got.cpu() - module(*inputs)).abs().max().item() <= 1e-4


# --- hostile .pt2 files


class Payload:
    """Creates a marker file when unpickled (a stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return builtins.open, (str(self.marker), 'w')


def _pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    return buffer.getvalue()


def _pickled_weight(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def change(entries: dict[str, bytes]) -> None:
        config = json.loads(entries['data/weights/model_weights_config.json'])
        payload = next(iter(config['config'].values()))
        payload['use_pickle'] = True
        entries[f'data/weights/{payload["path_name"]}'] = _pickled(marker)
        entries['data/weights/model_weights_config.json'] = json.dumps(config).encode()

    return change


def _pickled_sample(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def change(entries: dict[str, bytes]) -> None:
        entries['data/sample_inputs/model.pt'] = _pickled(marker)

    return change


def _guard(marker: Path) -> Callable[[dict[str, Any]], None]:
    def change(program: dict[str, Any]) -> None:
        program['guards_code'] = [f"open('{marker}', 'w') is not None"]

    return change


def _shape_expression(marker: Path) -> Callable[[dict[str, Any]], None]:
    def change(program: dict[str, Any]) -> None:
        for value in program['graph_module']['graph']['tensor_values'].values():
            for size in value['sizes']:
                if 'as_expr' in size:
                    text = size['as_expr']['expr_str']
                    size['as_expr']['expr_str'] = (
                        f"{text} + 0 * len(str(open('{marker}', 'w')))"
                    )

    return change


def _walk_nodes(program: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from program['graph_module']['graph']['nodes']


HOSTILE: dict[str, tuple[str, Callable[[Path], Any], bool]] = {
    # name: (archive or program, the change of a marker path, whether torch runs it)
    'pickled weight': ('archive', _pickled_weight, True),
    'pickled example inputs': ('archive', _pickled_sample, True),
    'guard code': ('program', _guard, True),
    'shape expression': ('program', _shape_expression, True),
    'operator': (
        'program',
        lambda marker: lambda p: next(_walk_nodes(p)).update(target='torch.os.system'),
        False,
    ),
    'legacy weights': (
        'archive',
        lambda marker: lambda e: e.update({'data/weights/model.pt': _pickled(marker)}),
        False,
    ),
    'opaque constant': (
        'archive',
        lambda marker: (
            lambda e: e.update(
                {
                    'data/constants/model_constants_config.json': json.dumps(
                        {
                            'config': {
                                'x': {'path_name': 'opaque_obj_0', 'use_pickle': False}
                            }
                        }
                    ).encode()
                }
            )
        ),
        False,
    ),
}


def _hostile(make: Callable[..., Made], tmp_path: Path, case: str) -> tuple[Path, Path]:
    where, change, _ = HOSTILE[case]
    _, _, path = make('segmentation', '.pt2')
    marker = tmp_path / 'marker'
    out = tmp_path / 'hostile.pt2'
    edit = edit_pt2 if where == 'archive' else edit_program
    edit(path, out, change(marker))
    return out, marker


@pytest.mark.parametrize('case', HOSTILE)
def test_hostile_pt2_refused(
    make: Callable[..., Made], tmp_path: Path, case: str
) -> None:
    out, marker = _hostile(make, tmp_path, case)
    with pytest.raises(ExportError, match=r'hostile\.pt2: .*refused'):
        load_exported(out)
    assert not marker.exists()


@pytest.mark.parametrize('case', [c for c, (_, _, runs) in HOSTILE.items() if runs])
def test_hostile_pt2_runs_in_torch(
    make: Callable[..., Made], tmp_path: Path, case: str
) -> None:
    """What the refused files do to torch.export.load alone (torch 2.14): they run code."""
    out, marker = _hostile(make, tmp_path, case)
    # torch may fail after the payload ran: the marker says whether it did
    with contextlib.suppress(Exception):
        torch.export.load(out).module()(*example(tiny()[1], 2))
    assert marker.exists()


def test_pt2_compressed_or_foreign_entries(
    make: Callable[..., Made], tmp_path: Path
) -> None:
    _, _, path = make(suffix='.pt2')
    out = tmp_path / 'deflated.pt2'
    with (
        zipfile.ZipFile(path) as source,
        zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z,
    ):
        for name in source.namelist():
            z.writestr(name, source.read(name))
    with pytest.raises(ExportError, match='compressed'):
        load_exported(out)
    extra = edit_pt2(path, tmp_path / 'extra.pt2', lambda e: e.update({'../x.py': b''}))
    with pytest.raises(ExportError, match=r"holds '.*x\.py'"):
        load_exported(extra)


def test_pt2_guards_of_two_inputs_accepted(make: Callable[..., Made]) -> None:
    """Change detection: the graph guards that both inputs have the same batch size."""
    _, _, path = make('change', '.pt2')
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('models/model.json'))
        assert json.loads(archive.read(name))['guards_code']
    assert load_exported(path).images == 2


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
