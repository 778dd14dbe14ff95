# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fake GFM checkpoints, written once per session."""

import os
import shutil
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest

from tests.data.gfm.data import TINY, write_upstream_checkpoint
from torchgeo_gfm.models.checkpoint import sha256sum

HUB_COMMIT = 'c' * 40


@pytest.fixture(scope='session')
def tiny_arch() -> dict[str, Any]:
    """timm keyword arguments matching the tiny fake checkpoint."""
    return dict(TINY)


@pytest.fixture(scope='session')
def tiny_gfm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Swin GFM checkpoint in the authors' exact format."""
    path = tmp_path_factory.mktemp('gfm') / 'gfm.pth'
    write_upstream_checkpoint(path, **TINY)
    return path


@pytest.fixture(scope='session')
def full_gfm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake gfm.pth with the real Swin-B shapes (no teacher, to halve its ~700 MB)."""
    path = tmp_path_factory.mktemp('gfm-full') / 'gfm.pth'
    write_upstream_checkpoint(path, teacher=False)
    return path


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


@pytest.fixture(scope='session')
def published_gfm(full_gfm: Path) -> Path:
    """Put the full-size fake where a download would have: the Hugging Face Hub cache.

    Offline (as in every test), timm and ``GFM_Weights`` (both ``hf_hub_download``) find it.
    """
    repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / 'models--torchgeo--gfm'
    sha = sha256sum(full_gfm)
    _link(full_gfm, repo / 'blobs' / sha)
    snapshot = repo / 'snapshots' / HUB_COMMIT / 'gfm.pth'
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(Path('..', '..', 'blobs', sha))
    (repo / 'refs').mkdir(exist_ok=True)
    (repo / 'refs' / 'main').write_text(HUB_COMMIT)
    return full_gfm
