# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Mid-epoch resume of GeoPileDataModule is data-exact: the same samples, in order."""

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image
from torch import Tensor, nn

from torchgeo_gfm.datamodules import GeoPileDataModule

IMAGES = 12  # one per source folder: a batch's `source` names its images
BATCH = 2  # 6 steps per epoch
STEPS = 15  # 2.5 epochs
CKPT_EVERY = 8  # checkpoint in the middle of the second epoch


class _Killed(Exception):
    """Stands in for kill -9: the process ends, only the checkpoint on disk remains."""


class _Recorder(LightningModule):
    """Records the images of every training batch; can die at a given step."""

    def __init__(self, die_at: int | None = None) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.die_at = die_at
        self.seen: list[list[int]] = []

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self.global_step == self.die_at:
            raise _Killed
        self.seen.append(batch['source'].tolist())
        return self.layer(batch['image'].mean(dim=(2, 3))).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # as GFM's schedule: with max_epochs this builds the train loader before the
        # checkpoint is read, and Lightning then drops the loader state it saved
        assert self.trainer.estimated_stepping_batches == STEPS
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture(scope='module')
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('geopile')
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        folder = root / f'source{i:02d}' / 'scene'
        folder.mkdir(parents=True)
        array = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / 'image.png')
    return root


def _fit(
    root: Path,
    tmp_path: Path,
    num_workers: int,
    model: _Recorder,
    ckpt_path: str | None = None,
) -> Trainer:
    seed_everything(0)
    dm = GeoPileDataModule(
        root, batch_size=BATCH, num_workers=num_workers, size=8, load_size=8
    )
    trainer = Trainer(
        max_steps=STEPS,
        max_epochs=3,
        accelerator='cpu',
        logger=False,
        callbacks=[
            ModelCheckpoint(
                dirpath=tmp_path, every_n_train_steps=CKPT_EVERY, save_top_k=-1
            )
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return trainer


class TestResume:
    @pytest.mark.parametrize('num_workers', [0, 2])
    def test_mid_epoch_resume_sees_the_same_samples(
        self, root: Path, tmp_path: Path, num_workers: int
    ) -> None:
        whole = _Recorder()
        _fit(root, tmp_path / 'whole', num_workers, whole)
        assert len(whole.seen) == STEPS

        killed = _Recorder(die_at=CKPT_EVERY + 1)  # one step of work lost, as in a kill
        with pytest.raises(_Killed):
            _fit(root, tmp_path / 'killed', num_workers, killed)
        (ckpt,) = (tmp_path / 'killed').glob('*.ckpt')
        resumed = _Recorder()
        _fit(root, tmp_path / 'resumed', num_workers, resumed, ckpt_path=str(ckpt))

        assert killed.seen[:CKPT_EVERY] + resumed.seen == whole.seen
