# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fake GFM checkpoints, written once per session."""

from pathlib import Path
from typing import Any

import pytest

from tests.data.gfm.data import TINY, write_upstream_checkpoint


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
