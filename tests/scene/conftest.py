# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Tiny fine-tuned checkpoints for the scene engine, built once per session."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule

from tests.models.fake_data import TINY_SWIN
from tests.scene.helpers import WHU_DATAMODULE, save_checkpoint


@pytest.fixture(scope='session')
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Tiny checkpoints by name, built once per session."""
    from torchgeo.tasks import ChangeDetection, Classification, SemanticSegmentation

    from torchgeo_gfm.tasks import SuperResolution

    root = tmp_path_factory.mktemp('checkpoints')
    cache: dict[str, Path] = {}
    builders: dict[str, Callable[[], tuple[LightningModule, dict[str, Any] | None]]] = {
        # 5 stacked 3x3 convs, no downsampling: receptive field radius 5
        'fcn': lambda: (
            SemanticSegmentation(
                model='fcn', in_channels=3, num_classes=4, num_filters=4
            ),
            WHU_DATAMODULE,
        ),
        'unet': lambda: (
            SemanticSegmentation(
                model='unet', backbone='tu-test_resnet', in_channels=3, num_classes=3
            ),
            WHU_DATAMODULE,
        ),
        'binary13': lambda: (
            SemanticSegmentation(
                model='fcn', in_channels=13, task='binary', num_filters=4, loss='bce'
            ),
            None,
        ),
        'change': lambda: (
            ChangeDetection(
                model='fcsiamdiff',
                backbone='tu-test_resnet',
                in_channels=3,
                task='binary',
                loss='bce',
            ),
            WHU_DATAMODULE,
        ),
        'classification': lambda: (
            Classification(model=TINY_SWIN, in_channels=3, num_classes=5),
            WHU_DATAMODULE,
        ),
        'multilabel': lambda: (
            Classification(
                model=TINY_SWIN,
                in_channels=3,
                task='multilabel',
                num_labels=4,
                loss='bce',
            ),
            WHU_DATAMODULE,
        ),
        'sr': lambda: (
            SuperResolution(
                backbone=TINY_SWIN,
                in_channels=3,
                out_channels=3,
                scale=2,
                head_channels=8,
            ),
            {'mean': [0.0], 'std': [255.0]},
        ),
    }

    def get(name: str) -> Path:
        if name not in cache:
            torch.manual_seed(0)
            task, datamodule = builders[name]()
            cache[name] = save_checkpoint(task, root / f'{name}.ckpt', datamodule)
        return cache[name]

    return get
