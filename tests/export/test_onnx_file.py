# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading .onnx files: external data kept beside the model, input types, onnxruntime."""

import os
import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch

from tests.export.exported_files import Made, tiny_files
from torchgeo_gfm.export import load_exported
from torchgeo_gfm.export.metadata import ExportError


@pytest.fixture(scope='module')
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Made]:
    return tiny_files(tmp_path_factory)


# --- external data


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


def test_input_not_float32(make: Callable[..., Made], tmp_path: Path) -> None:
    _, _, path = make()
    model = onnx.load(path)
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    onnx.save(model, tmp_path / 'double.onnx')
    with pytest.raises(ExportError, match='its graph input image is not float32'):
        load_exported(tmp_path / 'double.onnx')


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


def test_dependency_missing(
    make: Callable[..., Made], monkeypatch: pytest.MonkeyPatch
) -> None:
    # onnx present but protobuf, which it imports, missing: the message names protobuf
    _, _, path = make()

    def broken(name: str, *args: object, **kwargs: object) -> object:
        raise ModuleNotFoundError("No module named 'google.protobuf'", name='google')

    monkeypatch.setattr('importlib.import_module', broken)
    with pytest.raises(ExportError, match=r"needs onnx.*no module named 'google'"):
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
