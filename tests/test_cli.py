# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from tests.data.gfm.data import TINY, write_upstream_checkpoint
from torchgeo_gfm import cli
from torchgeo_gfm.cli import main
from torchgeo_gfm.models import (
    load_backbone,
    load_upstream_checkpoint,
    student_state_dict,
)


@pytest.fixture(scope='module')
def gfm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('cli') / 'gfm.pth'
    write_upstream_checkpoint(path, teacher=False, **TINY)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_convert(
    gfm_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'gfm.safetensors'
    assert main(['convert', str(gfm_file), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f'{_sha(gfm_file)}  {gfm_file}' in printed
    assert f'{_sha(out)}  {out}' in printed
    student = student_state_dict(load_upstream_checkpoint(gfm_file))
    loaded = load_backbone(out)
    assert loaded.keys() == student.keys()
    assert all(torch.equal(loaded[k], v) for k, v in student.items())
    # refuses to overwrite, unless asked
    assert main(['convert', str(gfm_file), str(out)]) == 2
    assert 'exists' in capsys.readouterr().err
    assert main(['convert', str(gfm_file), str(out), '--force']) == 0


def test_convert_refuses_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / 'resnet50.pth'
    torch.save({'model': {'conv1.weight': torch.zeros(1)}, 'config': {}}, other)
    out = tmp_path / 'out.safetensors'
    assert main(['convert', str(other), str(out)]) == 2
    err = capsys.readouterr().err
    assert 'resnet50.pth' in err
    assert "expected the authors' GFM checkpoint" in err
    assert not out.exists()
    assert main(['convert', str(tmp_path / 'missing.pth'), str(out)]) == 2
    assert 'missing.pth' in capsys.readouterr().err


@pytest.fixture(scope='module')
def inputs(gfm_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid input of each command: the authors' file, a GFM training checkpoint.

    The checkpoint has the older layout ('student.*'; now 'model.student.*'): both export.
    """
    student = student_state_dict(load_upstream_checkpoint(gfm_file))
    ckpt = tmp_path_factory.mktemp('cli-export') / 'last.ckpt'
    state = {f'student.{k}': v for k, v in student.items()}
    hparams = {'model': 'gfm_swin_base', 'in_channels': 3}
    torch.save({'state_dict': state, 'hyper_parameters': hparams}, ckpt)
    return {'convert': gfm_file, 'export': ckpt}


COMMANDS = ('convert', 'export')


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], match: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'torchgeo-gfm {argv[0]}: error: ')
    assert err.count('\n') == 1
    assert match in err
    assert 'Traceback' not in err


@pytest.mark.parametrize('command', COMMANDS)
def test_output_path_refused(
    command: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = str(inputs[command])
    _fails([command, src, ''], capsys, 'output path is empty')
    _fails([command, src, str(tmp_path)], capsys, f'{tmp_path}: is a folder')
    (tmp_path / 'file').write_text('')
    _fails(
        [command, src, str(tmp_path / 'file' / 'o.safetensors')],
        capsys,
        'cannot create its folder',
    )
    assert os.listdir(tmp_path) == ['file']


@pytest.mark.parametrize('command', COMMANDS)
def test_never_overwrites_its_input(
    command: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / 'sub' / inputs[command].name
    src.parent.mkdir()
    shutil.copy(inputs[command], src)
    before = _sha(src)
    (tmp_path / 'link').symlink_to(src)
    os.link(src, tmp_path / 'hard')
    spellings = [src, tmp_path / 'sub' / '..' / 'sub' / src.name]
    for out in [*spellings, tmp_path / 'link', tmp_path / 'hard']:
        _fails([command, str(src), str(out), '--force'], capsys, 'is the input')
    assert _sha(src) == before


@pytest.mark.parametrize('command', COMMANDS)
def test_existing_output_needs_force(
    command: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / 'new' / 'folder' / 'b.safetensors'  # missing folders are created
    src = str(inputs[command])
    assert main([command, src, str(out)]) == 0
    first = load_backbone(out)
    out.unlink()  # not truncated in place: safetensors maps the file into `first`
    out.write_bytes(b'keep me')
    _fails([command, src, str(out)], capsys, 'exists; pass --force to replace it')
    assert out.read_bytes() == b'keep me'
    assert main([command, src, str(out), '-f']) == 0
    again = load_backbone(out)
    assert all(torch.equal(again[k], v) for k, v in first.items())
    assert os.listdir(out.parent) == ['b.safetensors']


@pytest.mark.parametrize('command', COMMANDS)
def test_interrupted_write_leaves_no_file(
    command: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(tensors: Any, path: str, metadata: Any = None) -> None:
        Path(path).write_bytes(b'half a file')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(safetensors.torch, 'save_file', disk_full)
    out = tmp_path / 'b.safetensors'
    out.write_bytes(b'previous export')
    _fails(
        [command, str(inputs[command]), str(out), '--force'],
        capsys,
        'No space left on device',
    )
    assert out.read_bytes() == b'previous export'
    assert os.listdir(tmp_path) == ['b.safetensors']


@pytest.mark.parametrize('command', COMMANDS)
def test_help_says_how_output_is_written(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'missing folders are created' in text
    assert '--force' in text


@pytest.mark.parametrize('command', COMMANDS)
def test_device_or_fifo_never_replaced(
    command: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    src = str(inputs[command])
    _fails([command, src, '/dev/null', '--force'], capsys, 'is a device')
    _fails([command, src, str(fifo), '--force'], capsys, 'not a regular file')
    assert os.listdir(tmp_path) == ['fifo']


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_output_mode_follows_the_umask(
    umask: int, inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / 'b.safetensors'
    old = os.umask(umask)
    try:
        assert main(['export', str(inputs['export']), str(out)]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize('command', COMMANDS)
@pytest.mark.parametrize(
    'out', ['s3://bucket/b.safetensors', 'S3:b.safetensors', 'a\0b']
)
def test_url_like_or_nul_output_is_refused(
    command: str,
    out: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Never written as a local folder named after the scheme (convert creates folders)."""
    monkeypatch.chdir(tmp_path)
    _fails([command, str(inputs[command]), out], capsys, '')
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('command', COMMANDS)
def test_a_device_or_fifo_input_is_named_as_such(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never read (a FIFO would wait forever, /dev/zero never end), never 'no such file'."""
    fifo = tmp_path / 'fifo.pth'
    os.mkfifo(fifo)
    out = str(tmp_path / 'out.safetensors')
    for source in ('/dev/zero', '/dev/null', str(fifo)):
        _fails([command, source, out], capsys, f'{source}: is not a regular file')
    (tmp_path / 'broken.pth').symlink_to(tmp_path / 'none')
    _fails([command, str(tmp_path / 'broken.pth'), out], capsys, 'a link to a missing')
    assert sorted(os.listdir(tmp_path)) == ['broken.pth', 'fifo.pth']


def test_ctrl_c_while_importing_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # most of a command's first seconds are `import torch`: a Ctrl-C there is no traceback
    def interrupted(name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, 'import_module', interrupted)
    assert main(['config', '--list']) == 130
    assert capsys.readouterr().err.strip() == 'torchgeo-gfm config: interrupted'
