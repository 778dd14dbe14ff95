# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning import LightningModule, Trainer
from torch import Tensor, nn
from torchdata.stateful_dataloader import StatefulDataLoader

from torchgeo_gfm.datamodules import GeoPileDataModule
from torchgeo_gfm.datasets import GeoPile

ROOT = Path('tests', 'data', 'geopile')


class _Mean(LightningModule):
    """Smallest module that trains on GeoPile batches and checks their shape."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.shapes: list[tuple[int, ...]] = []

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.shapes.append(tuple(batch['image'].shape))
        return self.layer(batch['image'].mean(dim=(2, 3))).mean()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.shapes.append(tuple(batch['image'].shape))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _attach(dm: GeoPileDataModule, training: bool) -> None:
    dm.trainer = SimpleNamespace(training=training)  # type: ignore[assignment]


def test_train_batches_on_device_side() -> None:
    dm = GeoPileDataModule(ROOT, batch_size=4, size=32, load_size=40)
    dm.setup('fit')
    assert isinstance(dm.train_dataset, GeoPile)
    assert len(dm.train_dataset) == 30
    batch = next(iter(dm.train_dataloader()))
    assert batch['image'].dtype == torch.uint8  # workers ship uint8
    assert batch['image'].shape == (4, 3, 40, 40)
    _attach(dm, training=True)
    out = dm.on_after_batch_transfer(batch, 0)
    assert out['image'].dtype == torch.float32
    assert out['image'].shape == (4, 3, 32, 32)
    assert -3 < out['image'].mean() < 3  # ImageNet-normalised
    assert out['source'].shape == (4,)


def test_eval_transform_is_deterministic() -> None:
    dm = GeoPileDataModule(ROOT, batch_size=2, size=24, load_size=24, val_fraction=0.3)
    dm.setup('validate')
    assert dm.train_dataset is None
    batch = next(iter(dm.val_dataloader()))
    _attach(dm, training=False)
    a = dm.on_after_batch_transfer({'image': batch['image'].clone()}, 0)['image']
    b = dm.on_after_batch_transfer({'image': batch['image'].clone()}, 0)['image']
    assert torch.equal(a, b)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    assert torch.allclose(a, (batch['image'].float() - mean) / std, atol=1e-4)


def test_augmentation_arguments() -> None:
    dm = GeoPileDataModule(
        ROOT,
        batch_size=2,
        size=16,
        load_size=16,
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        flip=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(255.0, 255.0, 255.0),
        sources=['naip'],
    )
    dm.setup('fit')
    assert dm.train_dataset is not None
    batch = next(iter(dm.train_dataloader()))
    _attach(dm, training=True)
    out = dm.on_after_batch_transfer({'image': batch['image'].clone()}, 0)['image']
    # full-area crop + certain flip + [0, 1] scaling: exactly the flipped input
    assert torch.allclose(out, batch['image'].float().flip(-1) / 255, atol=1e-5)


def test_no_validation_by_default() -> None:
    dm = GeoPileDataModule(ROOT, batch_size=2)
    dm.setup('fit')
    assert dm.val_dataloader() == []


def test_test_and_predict_use_held_out_files() -> None:
    dm = GeoPileDataModule(ROOT, batch_size=2, val_fraction=0.3, load_size=192)
    dm.setup('test')
    assert dm.dataset is not None
    val = GeoPile(ROOT, split='val', val_fraction=0.3)
    assert len(dm.test_dataloader().dataset) == len(val)  # type: ignore[arg-type]


def test_load_size_smaller_than_size() -> None:
    with pytest.raises(ValueError, match='load_size'):
        GeoPileDataModule(ROOT, size=192, load_size=128)


def test_size_exposed() -> None:
    """The GFM task checks the image size against its mask blocks before training."""
    assert GeoPileDataModule(ROOT, size=64, load_size=96).size == 64


@pytest.mark.parametrize(
    ('kwargs', 'error', 'match'),
    [
        ({'size': 0}, ValueError, 'size must be >= 1, got 0'),
        ({'size': 19.5}, TypeError, 'size must be an int >= 1, got 19.5'),
        ({'batch_size': 0}, ValueError, 'batch_size must be >= 1, got 0'),
        ({'batch_size': True}, TypeError, 'batch_size must be an int'),
        ({'num_workers': -1}, ValueError, 'num_workers must be >= 0, got -1'),
        ({'val_fraction': 1.0}, ValueError, r'val_fraction must be in \[0, 1\)'),
    ],
)
def test_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        GeoPileDataModule(ROOT, **kwargs)


def test_batch_larger_than_train_split() -> None:
    dm = GeoPileDataModule(ROOT, batch_size=31)
    with pytest.raises(ValueError, match='has 30 images, fewer than batch_size 31'):
        dm.setup('fit')
    dm = GeoPileDataModule(ROOT, batch_size=20)
    dm.trainer = SimpleNamespace(world_size=2)  # type: ignore[assignment]
    with pytest.raises(
        ValueError, match='30 images \\(15 per device on 2\\), fewer than batch_size 20'
    ):
        dm.setup('fit')


def test_train_loader_is_stateful() -> None:
    """Lightning saves the loader's position in checkpoints (mid-epoch resume)."""
    dm = GeoPileDataModule(ROOT, batch_size=4, size=16, load_size=16)
    dm.setup('fit')
    loader = dm.train_dataloader()
    assert isinstance(loader, StatefulDataLoader)
    it = iter(loader)
    next(it)
    assert loader.state_dict()['_num_yielded'] == 1


def test_fit_with_lightning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / 'geopile'
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns('*.py'))
    train = GeoPile(root, sources=['naip'], split='train', val_fraction=0.2)
    bad = Path(train.file(0))
    bad.write_bytes(b'corrupt')
    dm = GeoPileDataModule(
        root, batch_size=1, size=32, load_size=48, val_fraction=0.2, sources=['naip']
    )
    model = _Mean()
    trainer = Trainer(
        max_epochs=1,
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with (
        caplog.at_level(logging.WARNING, 'torchgeo_gfm'),
        pytest.warns(UserWarning, match=bad.name),
    ):
        trainer.fit(model, datamodule=dm)
    assert model.shapes
    assert set(model.shapes) == {(1, 3, 32, 32)}  # every training image drawn
    assert dm.num_skipped == 1
    assert '1 unreadable file(s) skipped' in caplog.text


def test_num_skipped_before_setup() -> None:
    assert GeoPileDataModule(ROOT).num_skipped == 0


def test_plot_without_dataset() -> None:
    dm: Any = GeoPileDataModule(ROOT)
    assert dm.plot() is None


def test_loader_arguments_and_dataset_kwargs() -> None:
    seen: list[int] = []

    def record(sample: dict[str, Tensor]) -> dict[str, Tensor]:
        seen.append(int(sample['source']))
        return sample

    dm = GeoPileDataModule(
        ROOT,
        batch_size=3,
        pin_memory=False,
        val_fraction=0.3,
        seed=5,
        transforms=record,
    )
    dm.setup('fit')
    loader = dm.train_dataloader()
    assert not loader.pin_memory
    assert loader.drop_last
    next(iter(loader))
    assert len(seen) == 3  # GeoPile kwargs reach the dataset
    other = GeoPileDataModule(ROOT, val_fraction=0.3, seed=6)
    other.setup('validate')
    assert dm.val_dataset is not None
    assert other.val_dataset is not None
    assert dm.val_dataset.files != other.val_dataset.files  # type: ignore[attr-defined]
