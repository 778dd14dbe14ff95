# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest
import torch
from lightning import LightningModule, Trainer
from torch import Tensor, nn

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules.multiband import MultibandFolderDataModule
from torchgeo_gfm.datasets.multiband import MultibandFolder
from torchgeo_gfm.sensors import SensorError

ROOT = Path('tests', 'data', 'multiband')


def test_train_batch_contract() -> None:
    dm = MultibandFolderDataModule(
        ROOT / 's2', 's2', batch_size=4, size=24, load_size=32
    )
    assert dm.sensor.name == 's2_l1c'
    dm.setup('fit')
    assert isinstance(dm.train_dataset, MultibandFolder)
    loaded = next(iter(dm.train_dataloader()))
    assert loaded['image'].dtype == torch.uint16  # 2 bytes a value to the device
    assert loaded['image'].shape == (4, 13, 32, 32)
    batch = device_batch(dm, 'train')
    assert set(batch) == {'image'}  # no label
    assert batch['image'].dtype == torch.float32
    assert batch['image'].shape == (4, 13, 24, 24)
    assert batch['image'].max() > 255  # stored values, not normalised


def test_validation_is_resized_stored_values() -> None:
    dm = MultibandFolderDataModule(
        ROOT / 's2', 's2', batch_size=1, size=32, load_size=32, val_fraction=0.5
    )
    dm.setup('fit')
    assert len(dm.train_dataset) + len(dm.val_dataset) == 4  # type: ignore[arg-type]
    loaded = next(iter(dm.val_dataloader()))
    dm.trainer = None
    out = dm.on_after_batch_transfer({'image': loaded['image'].clone()}, 0)
    assert torch.equal(out['image'], loaded['image'].float())  # size == load_size


def test_band_count_of_the_files_checked() -> None:
    dm = MultibandFolderDataModule(
        ROOT / 'naip', 's2', batch_size=1, size=16, load_size=16
    )
    with pytest.raises(SensorError, match=r'e\.tif has 4 bands, sensor s2_l1c has 13'):
        dm.setup('fit')


def test_load_size_below_size_refused() -> None:
    with pytest.raises(ValueError, match='load_size'):
        MultibandFolderDataModule(ROOT / 's2', size=64, load_size=32)


class _Mean(LightningModule):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layer = nn.Linear(channels, 1)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self.layer(batch['image'].mean(dim=(2, 3)) / 1e4).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fits_with_workers() -> None:
    dm = MultibandFolderDataModule(
        ROOT / 'naip', 'naip', batch_size=1, num_workers=1, size=16, load_size=16
    )
    trainer = Trainer(
        accelerator='cpu', max_steps=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(_Mean(4), dm)
    assert trainer.global_step == 1
    assert 'train_loader' in dm.state_dict()  # resumable
