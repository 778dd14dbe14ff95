# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
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


WRITERS = ('convert', 'export')


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], match: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'torchgeo-gfm {argv[0]}: error: ')
    assert err.count('\n') == 1
    assert match in err
    assert 'Traceback' not in err


@pytest.mark.parametrize('command', WRITERS)
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


@pytest.mark.parametrize('command', WRITERS)
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


@pytest.mark.parametrize('command', WRITERS)
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


@pytest.mark.parametrize('command', WRITERS)
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


@pytest.mark.parametrize('command', WRITERS)
def test_help_says_how_output_is_written(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'missing folders are created' in text
    assert '--force' in text


@pytest.mark.parametrize('command', WRITERS)
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


@pytest.mark.parametrize('command', WRITERS)
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


@pytest.mark.parametrize('command', WRITERS)
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


# what a command's --help must not import (seconds each; torch alone is 2-5 s)
HEAVY = ('torch', 'timm', 'numpy', 'rasterio', 'lightning', 'torchgeo', 'matplotlib')
# one interpreter per case: this process has imported torch long ago
_ANSWER = """
import json, sys
from torchgeo_gfm.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
heavy = [m for m in %r if m in sys.modules]
print(json.dumps({'status': status, 'heavy': heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    'argv',
    [['--help'], ['config', '--list'], *([name, '--help'] for name in cli.COMMANDS)],
    ids=lambda argv: ' '.join(argv),
)
def test_answers_without_importing_torch(argv: list[str]) -> None:
    """``--help`` of every command and ``config --list`` answer at once (issue 20)."""
    proc = subprocess.run(
        [sys.executable, '-c', _ANSWER % (HEAVY,), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(proc.stderr.splitlines()[-1])
    assert result == {'status': 0, 'heavy': []}, proc.stderr
    assert proc.stdout.strip()
    if argv[-1] == '--help':
        assert proc.stdout.startswith('usage: torchgeo-gfm')


PACKAGE = Path(cli.__file__).parents[1]  # torchgeo_gfm/


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative ones resolved)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    package = list(parts[:-1])  # what '.' means, in a package's __init__ too
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add('.'.join([*base, *([node.module] if node.module else [])]))
    return names


@pytest.mark.parametrize(
    'path', sorted(PACKAGE.rglob('*.py')), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_library_never_imports_the_cli(path: Path) -> None:
    """The command line sits on top of the library, never under it."""
    if path.parent.name == 'cli':
        return
    reaching = {n for n in _imports(path) if n.startswith('torchgeo_gfm.cli')}
    assert not reaching, f'{path} imports {reaching}: move its CLI to torchgeo_gfm/cli'


def test_chip_formats_are_the_writers() -> None:
    from torchgeo_gfm.cli.naip_chips import IMAGE_FORMATS
    from torchgeo_gfm.datasets.naip_chips import FORMATS

    assert set(IMAGE_FORMATS) == set(FORMATS)


@pytest.mark.parametrize('name', ['add_arguments', 'run', 'main'])
def test_arp_command_line_moved(name: str) -> None:
    from torchgeo_gfm import arp
    from torchgeo_gfm.cli import arp as arp_cli

    with pytest.warns(DeprecationWarning, match=f'torchgeo_gfm.cli.arp.{name}'):
        old = getattr(arp, name)
    assert old is getattr(arp_cli, name)
    with warnings.catch_warnings():  # an unknown name is no deprecated one
        warnings.simplefilter('error')
        with pytest.raises(AttributeError):
            arp.no_such_name  # noqa: B018
