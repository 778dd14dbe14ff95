# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""bf16 where native: the choice, and that bf16 training tracks fp32."""

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback

from tests.tasks.test_gfm import RandomDataModule, make_task
from torchgeo_gfm import precision
from torchgeo_gfm.precision import NativeMixedPrecision, native_bf16


@pytest.fixture
def flags(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_flags(*names: str) -> None:
        monkeypatch.setattr(precision, 'cpu_flags', lambda: frozenset(names))

    return set_flags


class TestChoice:
    @pytest.mark.parametrize('flag', ['avx512_bf16', 'amx_bf16'])
    def test_native_cpu(self, flags: Any, flag: str) -> None:
        flags('avx2', flag)
        assert native_bf16('cpu')
        assert NativeMixedPrecision(device='cpu').enabled

    def test_emulated_cpu(self, flags: Any, caplog: pytest.LogCaptureFixture) -> None:
        flags('avx2', 'avx512f')
        assert not native_bf16('cpu')
        with caplog.at_level(logging.INFO):
            plugin = NativeMixedPrecision(device='cpu')
        assert not plugin.enabled
        assert 'Precision: fp32 on cpu' in caplog.text
        assert 'emulated' in caplog.text
        with plugin.forward_context():
            assert not torch.is_autocast_enabled('cpu')

    @pytest.mark.parametrize(('mode', 'enabled'), [('bf16', True), ('fp32', False)])
    def test_forced(self, flags: Any, mode: str, enabled: bool) -> None:
        flags('avx512_bf16')
        plugin = NativeMixedPrecision(mode=mode, device='cpu')  # type: ignore[arg-type]
        assert plugin.enabled == enabled
        assert plugin.precision == ('bf16-mixed' if enabled else '32-true')
        with plugin.forward_context():
            assert torch.is_autocast_enabled('cpu') == enabled
            if enabled:
                assert torch.get_autocast_dtype('cpu') == torch.bfloat16

    def test_autocast_helper(self, flags: Any) -> None:
        flags()
        with precision.autocast('cpu'):
            assert not torch.is_autocast_enabled('cpu')
        flags('amx_bf16')
        with precision.autocast('cpu'):
            assert torch.is_autocast_enabled('cpu')

    def test_cpu_flags_read_from_this_machine(self) -> None:
        precision.cpu_flags.cache_clear()
        assert isinstance(precision.cpu_flags(), frozenset)


def test_compute_loss_bf16_tracks_fp32() -> None:
    # bf16 keeps 8 mantissa bits (relative rounding 2^-9 per value); through a few
    # layers and fp32 reductions the losses stay within a few percent of fp32
    torch.manual_seed(0)
    task = make_task()
    images = torch.randn(4, 3, 64, 64)
    mask = task.draw_mask(images)
    fp32 = task.compute_loss(images, mask)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bf16 = task.compute_loss(images, mask)
    assert all(v.dtype == torch.float32 for v in bf16.values())  # reduced in fp32
    torch.testing.assert_close(bf16['loss_mim'], fp32['loss_mim'], rtol=0.03, atol=0)
    torch.testing.assert_close(
        bf16['loss_distill'], fp32['loss_distill'], rtol=0, atol=0.02
    )


class Losses(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self.values.append(float(trainer.callback_metrics['train_loss']))


def fit(
    task: Any, data: Any, tmp_path: Path, mode: str, steps: int, **kwargs: Any
) -> tuple[Trainer, list[float]]:
    """A short CPU fit under NativeMixedPrecision(mode); the trainer and its losses."""
    record = Losses()
    trainer = Trainer(
        accelerator='cpu',
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        plugins=[NativeMixedPrecision(mode=mode, device='cpu')],  # type: ignore[arg-type]
        callbacks=[record],
        default_root_dir=tmp_path,
        **kwargs,
    )
    trainer.fit(task, data)
    return trainer, record.values


def losses(tmp_path: Path, mode: str) -> list[float]:
    torch.manual_seed(0)
    task = make_task(lr=1e-3, warmup_lr=1e-3, min_lr=1e-3)
    data = RandomDataModule(batch_size=2)
    trainer, values = fit(task, data, tmp_path, mode, 6, gradient_clip_val=5.0)
    # fp32 is what Lightning sees (its summary, its rules): fused AdamW, clipped
    assert str(trainer.precision) == ('32-true' if mode == 'fp32' else 'bf16-mixed')
    assert bool(trainer.optimizers[0].defaults['fused']) is (mode == 'fp32')
    return values


def test_pretraining_run_bf16_tracks_fp32(tmp_path: Path) -> None:
    fp32, bf16 = losses(tmp_path, 'fp32'), losses(tmp_path, 'bf16')
    assert len(fp32) == len(bf16) == 6
    torch.testing.assert_close(
        torch.tensor(bf16), torch.tensor(fp32), rtol=0.05, atol=0.02
    )


class Labelled(RandomDataModule):
    def train_dataloader(self) -> Any:
        gen = torch.Generator().manual_seed(0)
        images = torch.randn(8, 3, 32, 32, generator=gen)
        labels = torch.randint(0, 4, (8,), generator=gen)
        data = [{'image': i, 'label': y} for i, y in zip(images, labels, strict=True)]
        return torch.utils.data.DataLoader(data, batch_size=2)

    def val_dataloader(self) -> Any:
        return self.train_dataloader()


def finetune_losses(tmp_path: Path, mode: str) -> list[float]:
    from torchgeo.tasks import Classification

    torch.manual_seed(0)
    task = Classification(model='test_resnet', num_classes=4, lr=1e-3)
    return fit(task, Labelled(), tmp_path, mode, 4)[1]


def test_finetuning_run_bf16_tracks_fp32(tmp_path: Path) -> None:
    fp32, bf16 = finetune_losses(tmp_path, 'fp32'), finetune_losses(tmp_path, 'bf16')
    assert len(fp32) == len(bf16) == 4
    torch.testing.assert_close(
        torch.tensor(bf16), torch.tensor(fp32), rtol=0.05, atol=0.02
    )
