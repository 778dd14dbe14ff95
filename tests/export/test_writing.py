# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Writing exported files: metadata, fixed batches, file rules, bad input, the CLI."""

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch

from tests.export.conftest import TILE
from tests.export.test_parity import read_metadata, run_file
from torchgeo_gfm import __version__
from torchgeo_gfm.cli import main
from torchgeo_gfm.export import writing
from torchgeo_gfm.export.metadata import ExportError, ExportMetadata
from torchgeo_gfm.export.writing import check_tile, describe, export_model
from torchgeo_gfm.outputs import OutputError
from torchgeo_gfm.scene.errors import SceneError
from torchgeo_gfm.scene.predictor import load_predictor
from torchgeo_gfm.tasks.export import export_checkpoint


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# What the file says about itself


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_metadata_round_trip(
    suffix: str, exported: Callable[[str, str], Path], source: Callable[[str], Path]
) -> None:
    ckpt = source('classification')
    meta = read_metadata(exported('classification', suffix))
    predictor = load_predictor(ckpt)
    assert (meta.kind, meta.mode) == ('classification', 'multiclass')
    assert (meta.inputs, meta.outputs) == (['image'], ['probabilities'])
    assert meta.in_channels == 3
    assert meta.mean == predictor.mean.tolist()
    assert meta.std == predictor.std.tolist()
    assert (meta.tile, meta.batch, meta.multiple) == (TILE, None, predictor.multiple)
    assert (meta.channels, meta.scale, meta.stride) == (5, 1, 1)
    assert meta.classes == predictor.classes
    assert meta.bands == predictor.bands
    assert meta.stage is None
    assert (meta.source, meta.source_sha256) == (ckpt.name, _sha(ckpt))
    assert meta.torchgeo_gfm == __version__
    assert 'per chip' in meta.meaning
    assert ExportMetadata.from_json(meta.to_json(), 'again') == meta


@pytest.mark.slow
def test_backbone_metadata(
    exported: Callable[[str, str], Path], source: Callable[[str], Path]
) -> None:
    meta = read_metadata(exported('backbone', '.pt2'))
    assert (meta.kind, meta.mode, meta.stage, meta.stride) == (
        'backbone',
        'embedding',
        3,
        16,
    )
    assert meta.outputs == ['features', 'embedding']
    assert meta.mean == load_predictor(source('classification')).mean.tolist()
    line = describe(meta)
    assert (
        f'features [N, {meta.channels}, 4, 4], embedding [N, {meta.channels}]' in line
    )
    student = read_metadata(exported('student', '.onnx'))
    assert (student.stage, student.stride, student.source) == (4, 32, 'last.ckpt')
    assert student.mean == pytest.approx([123.675, 116.28, 103.53])


# ---------------------------------------------------------------------------------------
# Batch and tile sizes


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_fixed_batch_takes_that_size_only(
    suffix: str, source: Callable[[str], Path], tmp_path: Path
) -> None:
    ckpt = source('fcn')
    path = export_model(ckpt, tmp_path / f'm{suffix}', tile=32, batch=2)
    meta = read_metadata(path)
    assert (meta.batch, meta.tile) == (2, 32)
    model, predictor = run_file(path, meta), load_predictor(ckpt)
    images = torch.rand(2, 3, 32, 32) * 255
    got = model(images)[0]
    assert (got - predictor(images[:, None])).abs().max() <= 1e-4
    error = onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument
    with pytest.raises(error if suffix == '.onnx' else (RuntimeError, AssertionError)):
        model(torch.rand(3, 3, 32, 32))


def test_check_tile() -> None:
    assert check_tile(512, 32) == 512
    assert check_tile(16, 1) == 16
    with pytest.raises(ExportError, match='multiples of 32 from 32: 480 or 512;'):
        check_tile(500, 32)
    with pytest.raises(ExportError, match='multiples of 32 from 32: 32;'):
        check_tile(8, 32)
    with pytest.raises(ExportError, match='multiples of 1 from 16: 16;'):
        check_tile(15, 1)
    with pytest.raises(ExportError, match='export once for each tile size'):
        check_tile(100, 64)


def test_tile_the_model_cannot_take(
    source: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / 'new' / 'model.onnx'
    with pytest.raises(
        ExportError, match=r'--tile 50: .* multiples of 32 from 32: 32 or 64'
    ):
        export_model(source('classification'), out, tile=50)
    assert os.listdir(tmp_path) == []  # not even the folder


# ---------------------------------------------------------------------------------------
# File rules


def test_creates_folders_and_replaces_only_with_force(
    source: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / 'a' / 'b' / 'model.pt2'
    assert export_model(source('fcn'), out, tile=32) == out
    first = out.read_bytes()
    out.write_bytes(b'keep me')
    with pytest.raises(OutputError, match='exists; pass --force to replace it'):
        export_model(source('fcn'), out, tile=32)
    assert out.read_bytes() == b'keep me'
    export_model(source('fcn'), out, tile=32, force=True)
    assert read_metadata(out).tile == 32
    assert len(out.read_bytes()) == len(first)
    assert os.listdir(out.parent) == ['model.pt2']


def test_a_file_that_differs_is_not_written(
    source: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before the rename: nothing replaced, no temporary file left."""
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'previous export')
    monkeypatch.setattr(writing, 'TOLERANCE', -1.0)  # any difference is too much
    with pytest.raises(ExportError, match='not written: the exported probabilities'):
        export_model(source('fcn'), out, tile=32, force=True)
    assert out.read_bytes() == b'previous export'
    assert os.listdir(tmp_path) == ['model.onnx']


def test_never_the_input(source: Callable[[str], Path], tmp_path: Path) -> None:
    ckpt = tmp_path / 'model.pt2'  # a checkpoint named like an export
    shutil.copy(source('fcn'), ckpt)
    os.link(ckpt, tmp_path / 'hard.onnx')
    before = _sha(ckpt)
    for out in (ckpt, tmp_path / 'hard.onnx'):
        with pytest.raises(OutputError, match='is the input'):
            export_model(ckpt, out, force=True)
    assert _sha(ckpt) == before
    assert sorted(os.listdir(tmp_path)) == ['hard.onnx', 'model.pt2']


def test_refused_outputs(source: Callable[[str], Path], tmp_path: Path) -> None:
    ckpt = source('fcn')
    with pytest.raises(ExportError, match=r'ONNX \(.onnx\) or torch.export \(.pt2\)'):
        export_model(ckpt, tmp_path / 'model.safetensors')
    (tmp_path / 'dir.onnx').mkdir()
    with pytest.raises(OutputError, match='is a folder'):
        export_model(ckpt, tmp_path / 'dir.onnx', force=True)
    with pytest.raises(OutputError, match='device or system file'):
        export_model(ckpt, '/dev/model.onnx', force=True)
    assert os.listdir(tmp_path) == ['dir.onnx']


# ---------------------------------------------------------------------------------------
# Bad input


def test_task_of_backbone_weights(training_checkpoint: Path, tmp_path: Path) -> None:
    weights = export_checkpoint(training_checkpoint, tmp_path / 'b.safetensors')
    for path in (training_checkpoint, weights):
        with pytest.raises(
            ExportError, match='holds a backbone, not a fine-tuned task'
        ):
            export_model(path, tmp_path / 'model.onnx', what='task')
    assert os.listdir(tmp_path) == ['b.safetensors']


@pytest.mark.parametrize(
    ('options', 'match'),
    [
        ({'what': 'both'}, "expected 'task' or 'backbone'"),
        ({'stage': 5}, 'expected a Swin stage, 1 to 4'),
        ({'batch': 0}, '--batch 0: expected a positive integer'),
        ({'tile': True}, '--tile True: expected a positive integer'),
    ],
)
def test_bad_options(
    options: dict[str, object],
    match: str,
    source: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    with pytest.raises(ExportError, match=match):
        export_model(source('fcn'), tmp_path / 'model.onnx', **options)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_normalisation_must_be_known(
    source: Callable[[str], Path], tmp_path: Path
) -> None:
    with pytest.raises(SceneError, match='--sensor'):
        export_model(source('binary13'), tmp_path / 'model.pt2')
    assert os.listdir(tmp_path) == []


def test_onnx_needs_the_extra(
    source: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        'find_spec',
        lambda name, *a: None if name == 'onnxruntime' else find(name, *a),
    )
    with pytest.raises(ExportError, match=r"pip install 'torchgeo-gfm\[export\]'"):
        export_model(source('fcn'), tmp_path / 'model.onnx')


# ---------------------------------------------------------------------------------------
# The command line


def test_cli_end_to_end(
    source: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'model.onnx'
    argv = ['export', str(source('fcn')), '-o', str(out), '--tile', '32']
    assert main([*argv, '--batch', '2']) == 0
    printed = capsys.readouterr().out
    assert f'wrote {out} (' in printed
    assert f'MiB, sha256 {_sha(out)})' in printed
    assert (
        'segmentation (multiclass): image [2, 3, 32, 32] raw values -> '
        'probabilities [2, 4, 32, 32]; per pixel' in printed
    )
    meta = read_metadata(out)
    assert (meta.batch, meta.tile, meta.source) == (2, 32, 'fcn.ckpt')
    # the same again: refused without --force, written with it (dynamic batch)
    assert main(argv) == 2
    assert 'exists; pass --force' in capsys.readouterr().err
    assert main([*argv, '--batch', 'dynamic', '--force']) == 0
    assert read_metadata(out).batch is None


@pytest.mark.parametrize(
    ('args', 'match'),
    [
        (['-o', 'm.onnx', '--tile', '8'], 'multiples of 1 from 16: 16'),
        (['b.safetensors', '--tile', '64'], '--tile: for portable models only'),
        (['m.onnx', '-o', 'n.onnx'], 'OUTPUT given twice'),
        ([], 'no OUTPUT'),
        (['m.bin'], 'name OUTPUT model.onnx or model.pt2'),
        (['m.pt2', '--what', 'backbone', '--stage', '2', '--tile', '40'], '32 or 64'),
    ],
)
def test_cli_errors(
    args: list[str],
    match: str,
    source: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    name = 'classification' if '--what' in args else 'fcn'
    assert main(['export', str(source(name)), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm export: error: ')
    assert err.count('\n') == 1
    assert match in err
    assert os.listdir(tmp_path) == []


def test_cli_help_names_the_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(['export', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    for option in ('-o OUTPUT', '--what', '--tile', '--batch N|dynamic', '--opset'):
        assert option in text
    assert '.onnx, .pt2' in text


def test_opset(source: Callable[[str], Path], tmp_path: Path) -> None:
    out = export_model(source('fcn'), tmp_path / 'm17.onnx', tile=32, opset=17)
    versions = {o.domain: o.version for o in onnx.load(str(out)).opset_import}
    assert versions[''] == 17
    meta = read_metadata(out)
    images = torch.rand(1, 3, 32, 32) * 255
    want = load_predictor(source('fcn'))(images[:, None])
    assert (run_file(out, meta)(images)[0] - want).abs().max() <= 1e-4
    with pytest.raises(ExportError, match='--opset 7: the exporter cannot convert'):
        export_model(source('fcn'), tmp_path / 'm7.onnx', tile=32, opset=7)
    assert os.listdir(tmp_path) == ['m17.onnx']
