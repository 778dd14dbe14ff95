# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""torchgeo-gfm config: the shipped configs are the repository's configs/ folder."""

import os
import stat
from pathlib import Path

import pytest
import yaml

from torchgeo_gfm.cli import main
from torchgeo_gfm.cli.config import config_names, read_config

CONFIGS = Path(__file__).parents[2] / 'configs'


def test_shipped_configs_are_the_repository_configs() -> None:
    names = sorted(
        p.relative_to(CONFIGS).with_suffix('').as_posix()
        for p in CONFIGS.rglob('*.yaml')
    )
    assert config_names() == names
    assert {'gfm', 'gfm_demo', 'finetune/dsifn'} <= set(names)
    for name in names:
        assert read_config(name) == (CONFIGS / f'{name}.yaml').read_text()


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['config', '--list']) == 0
    assert capsys.readouterr().out.split() == config_names()


@pytest.mark.parametrize('name', ['gfm_demo', 'finetune/dsifn', 'gfm.yaml'])
def test_write(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'x.yaml'
    assert main(['config', name, '-o', str(out)]) == 0
    assert (
        out.read_text()
        == (CONFIGS / name.removesuffix('.yaml')).with_suffix('.yaml').read_text()
    )
    assert yaml.safe_load(out.read_text())['model']['class_path']
    assert str(out) in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ['x.yaml']  # no temporary left


def test_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['config', 'gfm']) == 0
    assert capsys.readouterr().out == (CONFIGS / 'gfm.yaml').read_text()


def test_existing_file_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'x.yaml'
    out.write_text('mine')
    assert main(['config', 'gfm', '-o', str(out)]) == 2
    assert '--force' in capsys.readouterr().err
    assert out.read_text() == 'mine'
    assert main(['config', 'gfm', '-o', str(out), '--force']) == 0
    assert out.read_text() == (CONFIGS / 'gfm.yaml').read_text()


def test_unknown_name_lists_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['config', 'nope', '-o', str(tmp_path / 'x.yaml')]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err
    assert all(name in err for name in config_names())
    assert not (tmp_path / 'x.yaml').exists()
    with pytest.raises(KeyError, match='gfm_demo'):
        read_config('finetune')


@pytest.mark.parametrize(
    ('args', 'message'),
    [([], 'name a config'), (['gfm', '-o', '.'], 'is a folder; give a file name')],
)
def test_bad_arguments(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(['config', *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['config', 'gfm', '-o', str(tmp_path / 'no' / 'x.yaml')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm config: error:')
    assert 'missing' in err


@pytest.mark.parametrize('device', ['/dev/null', '/dev/stdout'])
def test_device_is_refused_even_with_force(
    device: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['config', 'gfm', '-o', device, '--force']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'torchgeo-gfm config: error: {device}: is a device')
    assert err.count('\n') == 1  # one line, no traceback


def test_fifo_is_refused_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    assert main(['config', 'gfm', '-o', str(fifo), '--force']) == 2
    assert 'not a regular file' in capsys.readouterr().err
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize('umask', [0o022, 0o077, 0o002])
def test_written_with_the_umask(umask: int, tmp_path: Path) -> None:
    out = tmp_path / 'x.yaml'
    old = os.umask(umask)
    try:
        assert main(['config', 'gfm', '-o', str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(
    'out', ['a\0b', 's3://bucket/gfm.yaml', 'S3:gfm.yaml', 'x' * 300]
)
def test_malformed_output_is_one_line(
    out: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(['config', 'gfm_demo', '-o', out]) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm config: error: ')
    assert err.count('\n') == 1
    assert list(tmp_path.iterdir()) == []
