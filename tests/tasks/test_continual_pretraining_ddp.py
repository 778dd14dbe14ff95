# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM with DDP: 2 CPU processes (gloo) train a few steps and must agree."""

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from tests.tasks.test_continual_pretraining import RandomDataModule, make_task


class Record(Callback):
    """Each rank saves what it ended with."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        scheduler: Any = trainer.lr_scheduler_configs[0].scheduler
        student = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        record = {
            'world_size': trainer.world_size,
            'global_step': trainer.global_step,
            'base_lr': scheduler.base_values[0],
            'params': student,
            'lr': trainer.optimizers[0].param_groups[0]['lr'],
        }
        torch.save(record, self.directory / f'rank{trainer.global_rank}.pt')


@pytest.mark.slow
def test_ddp_two_processes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = make_task(lr=2e-4)
    trainer = Trainer(
        accelerator='cpu',
        devices=2,
        strategy='ddp_spawn',
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[Record(tmp_path)],
    )
    trainer.fit(task, RandomDataModule(batch_size=2))
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in (0, 1)]
    for record in ranks:
        assert record['world_size'] == 2
        assert record['global_step'] == 2
        # global batch = 2 per process x 2 processes
        assert math.isclose(record['base_lr'], 2e-4 * 4 / 512)
    # DDP averaged the gradients: both ranks hold the same weights and lr
    torch.testing.assert_close(ranks[0]['params'], ranks[1]['params'])
    assert ranks[0]['lr'] == ranks[1]['lr']
