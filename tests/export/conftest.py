# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Tiny sources to export (the scene engine's checkpoints, a GFM training checkpoint),
and each exported once per session."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import timm
import torch

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from tests.data.gfm.data import TINY
from tests.scene.conftest import checkpoints  # noqa: F401
from torchgeo_gfm.export.writing import export_model

#: the tile tiny models are exported at (a multiple of 32, quick)
TILE = 64

#: the options each source is exported with (besides tile)
OPTIONS: dict[str, dict[str, Any]] = {
    'binary13': {'sensor': 's2'},  # records no normalisation
    'backbone': {'what': 'backbone', 'stage': 3},  # of the 'classification' checkpoint
}


def tiny_student() -> torch.nn.Module:
    """A GFM Swin student of the tiny test architecture (random weights)."""
    torch.manual_seed(0)
    return timm.create_model('gfm_swin_base', num_classes=0, **TINY).eval()


@pytest.fixture(scope='session')
def training_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ContinualPretraining checkpoint of a tiny student (as Lightning saves it)."""
    state = {f'model.student.{k}': v for k, v in tiny_student().state_dict().items()}
    path = tmp_path_factory.mktemp('training') / 'last.ckpt'
    hparams = {'model': 'gfm_swin_base', 'in_channels': 3}
    torch.save({'state_dict': state, 'hyper_parameters': hparams}, path)
    return path


@pytest.fixture(scope='session')
def source(
    request: pytest.FixtureRequest, training_checkpoint: Path
) -> Callable[[str], Path]:
    """The file each name is exported from."""
    tiny = request.getfixturevalue('checkpoints')

    def get(name: str) -> Path:
        if name == 'student':
            return training_checkpoint
        return tiny('classification' if name == 'backbone' else name)

    return get


@pytest.fixture(scope='session')
def exported(
    source: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Path]:
    """``exported(name, '.onnx' or '.pt2')``: the file, written once per session."""
    root = tmp_path_factory.mktemp('exported')
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, suffix: str) -> Path:
        if (name, suffix) not in cache:
            out = root / f'{name}{suffix}'
            options = {'tile': TILE, **OPTIONS.get(name, {})}
            cache[name, suffix] = export_model(source(name), out, **options)
        return cache[name, suffix]

    return get
