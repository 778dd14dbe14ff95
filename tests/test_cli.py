# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import hashlib
from pathlib import Path

import pytest
import torch

from tests.data.gfm.data import TINY, write_upstream_checkpoint
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
    assert main(['convert', str(gfm_file), str(out)]) == 1
    assert 'exists' in capsys.readouterr().err
    assert main(['convert', str(gfm_file), str(out), '--force']) == 0


def test_convert_refuses_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / 'resnet50.pth'
    torch.save({'model': {'conv1.weight': torch.zeros(1)}, 'config': {}}, other)
    out = tmp_path / 'out.safetensors'
    assert main(['convert', str(other), str(out)]) == 1
    err = capsys.readouterr().err
    assert 'resnet50.pth' in err
    assert "expected the authors' GFM checkpoint" in err
    assert not out.exists()
    assert main(['convert', str(tmp_path / 'missing.pth'), str(out)]) == 1
    assert 'missing.pth' in capsys.readouterr().err
