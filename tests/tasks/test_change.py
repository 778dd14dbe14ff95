# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger
from matplotlib.figure import Figure

from torchgeo_gfm.datamodules import DSIFNDataModule, OSCDTiledDataModule
from torchgeo_gfm.tasks import ChangeDetectionWithFigures

DATA = Path(__file__).parents[1] / 'data'


class FigureLogger(Logger):
    """A logger that keeps the figures it is given, like TensorBoard's."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, Figure]] = []

    @property
    def experiment(self) -> 'FigureLogger':
        return self

    def add_figure(self, tag: str, figure: Figure, global_step: int = 0) -> None:
        self.figures.append((tag, figure))

    @property
    def name(self) -> str:
        return 'figures'

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def _task() -> ChangeDetectionWithFigures:
    return ChangeDetectionWithFigures(
        model='fcsiamdiff', backbone='tu-test_resnet', in_channels=3
    )


def test_validation_figures_on_kornia_0_8(tmp_path: Path) -> None:
    logger = FigureLogger()
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    dm = DSIFNDataModule(root=DATA / 'dsifn', batch_size=2, patch_size=32)
    trainer.fit(_task(), datamodule=dm)
    assert [tag for tag, _ in logger.figures] == ['image/0']
    assert len(logger.figures[0][1].axes) == 4  # image 1, image 2, mask, prediction
    assert 'val_loss' in trainer.callback_metrics
    assert 'val_OverallF1Score' in trainer.callback_metrics


def test_fast_dev_run_oscd(tmp_path: Path) -> None:
    # fast_dev_run's dummy logger "draws" figures: TorchGeo's task crashes there
    dm = OSCDTiledDataModule(
        root=DATA / 'oscd', bands=['B04', 'B03', 'B02'], batch_size=2, patch_size=32
    )
    trainer = Trainer(
        fast_dev_run=1, default_root_dir=tmp_path, enable_progress_bar=False
    )
    trainer.fit(_task(), datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics['val_loss'])
