# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Bad arguments, bad teacher files and non-finite losses stop the GFM task clearly."""

import json
import math
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch.cli import LightningCLI

from tests.tasks.test_continual_pretraining import (
    STUDENT,
    TEACHER,
    RandomDataModule,
    make_task,
    trainer,
)
from torchgeo_gfm import demo
from torchgeo_gfm.models.checkpoint import GFMCheckpointError
from torchgeo_gfm.tasks import ContinualPretraining
from torchgeo_gfm.tasks.pretraining_weights import _weights_arg

TEACHER_NAME = 'swin_tiny_patch4_window7_224'


def teacher_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = timm.create_model(TEACHER_NAME, num_classes=0, **TEACHER)
    return {k: v.clone() for k, v in model.state_dict().items()}


class TestTeacherFile:
    def test_loads_every_weight_torch_and_safetensors(self, tmp_path: Path) -> None:
        state = teacher_state(seed=1)
        for path in (tmp_path / 't.pth', tmp_path / 't.safetensors'):
            if path.suffix == '.pth':
                torch.save(state, path)
            else:
                safetensors.torch.save_file(state, path)
            task = make_task(teacher_weights=str(path))
            kept = task.model.teacher.state_dict()
            assert kept
            for key, value in kept.items():
                torch.testing.assert_close(value, state[key], rtol=0, atol=0)

    def test_stage_after_the_distilled_one_may_be_absent(self, tmp_path: Path) -> None:
        state = {k: v for k, v in teacher_state().items() if 'layers.3.blocks' not in k}
        torch.save(state, tmp_path / 't.pth')
        make_task(teacher_weights=str(tmp_path / 't.pth'))  # stage 3 is fully there

    def test_other_architecture_refused(self, tmp_path: Path) -> None:
        path = tmp_path / 'resnet18.pth'
        torch.save(timm.create_model('resnet18', num_classes=0).state_dict(), path)
        with pytest.raises(GFMCheckpointError, match=r'resnet18\.pth') as info:
            make_task(teacher_weights=str(path))
        assert 'patch_embed.proj.weight' in str(info.value)

    def test_missing_distilled_stage_refused(self, tmp_path: Path) -> None:
        state = {k: v for k, v in teacher_state().items() if 'layers.2.' not in k}
        torch.save(state, tmp_path / 't.pth')
        with pytest.raises(GFMCheckpointError, match=r'layers\.2\.'):
            make_task(teacher_weights=str(tmp_path / 't.pth'))

    def test_missing_merging_that_ends_stage_refused(self, tmp_path: Path) -> None:
        # MS stage 3 ends with timm's layers[3].downsample
        state = {k: v for k, v in teacher_state().items() if 'layers.3.down' not in k}
        torch.save(state, tmp_path / 't.pth')
        with pytest.raises(GFMCheckpointError, match=r'layers\.3\.downsample'):
            make_task(teacher_weights=str(tmp_path / 't.pth'))

    def test_wrong_width_refused(self, tmp_path: Path) -> None:
        model = timm.create_model(
            TEACHER_NAME, num_classes=0, **{**TEACHER, 'embed_dim': 16}
        )
        torch.save(model.state_dict(), tmp_path / 't.pth')
        with pytest.raises(GFMCheckpointError, match='does not fit the teacher'):
            make_task(teacher_weights=str(tmp_path / 't.pth'))

    @pytest.mark.parametrize('bad', [math.nan, math.inf])
    def test_non_finite_refused(self, tmp_path: Path, bad: float) -> None:
        state = teacher_state()
        state['layers.1.blocks.0.mlp.fc1.weight'][0, 0] = bad
        torch.save(state, tmp_path / 't.pth')
        with pytest.raises(GFMCheckpointError, match=r't\.pth'):
            make_task(teacher_weights=str(tmp_path / 't.pth'))

    @pytest.mark.parametrize('content', [b'', b'\x80\x04garbage', b'PK\x03\x04trunc'])
    def test_unreadable_refused(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / 'teacher.pth'
        path.write_bytes(content)
        with pytest.raises(GFMCheckpointError, match=r'teacher\.pth'):
            make_task(teacher_weights=str(path))

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match=r'nope\.pth'):
            make_task(teacher_weights=str(tmp_path / 'nope.pth'))

    def test_cnn_teacher_is_resized_not_built_for_a_size(self) -> None:
        task = make_task(teacher='test_resnet', teacher_kwargs=None, teacher_size=64)
        assert task.model.teacher_size == 64
        images = torch.randn(2, 3, 64, 64)
        assert torch.isfinite(task.compute_loss(images, task.draw_mask(images))['loss'])

    def test_teacher_arguments_it_does_not_take(self) -> None:
        with pytest.raises(ValueError, match="'test_resnet' does not take"):
            make_task(teacher='test_resnet', teacher_size=64)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'lr_batch_ref': 0}, 'lr_batch_ref=0'),
        ({'mask_patch_size': 0}, 'mask_patch_size=0'),
        ({'mask_patch_size': -32}, 'mask_patch_size=-32'),
        ({'mask_ratio': 0.0}, 'mask_ratio=0.0'),
        ({'mask_ratio': math.nan}, 'mask_ratio=nan'),
        ({'lr': -1.0}, 'lr=-1.0'),
        ({'lr': 0}, 'lr=0'),
        ({'min_lr': -1e-5}, 'min_lr'),
        ({'alpha': math.inf}, 'alpha=inf'),
        ({'warmup_epochs': -1}, 'warmup_epochs=-1'),
        ({'betas': (1.0, 0.999)}, 'betas'),
        ({'betas': (0.9,)}, 'betas'),
        ({'teacher_size': 0}, 'teacher_size=0'),
        ({'in_channels': 0}, 'in_channels=0'),
        ({'plot_every_n_steps': -1}, 'plot_every_n_steps=-1'),
        ({'std': (0.2, 0.0, 0.2)}, 'std'),
    ],
)
def test_bad_hparams(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_task(**kwargs)


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        ('true', True),
        ('True', True),
        ('false', False),
        ('None', None),
        ('x.pth', 'x.pth'),
    ],
)
def test_weights_words_mean_literals(value: str, expected: object) -> None:
    assert _weights_arg(value) == expected


def test_task_takes_weights_words() -> None:
    assert make_task(teacher_weights='False', weights='null').teacher_weights is False


def test_command_line_false_is_a_bool(tmp_path: Path) -> None:
    cli = LightningCLI(
        ContinualPretraining,
        RandomDataModule,
        run=False,
        args=[
            f'--model.model_kwargs={json.dumps(STUDENT)}',
            f'--model.teacher={TEACHER_NAME}',
            f'--model.teacher_kwargs={json.dumps(TEACHER)}',
            '--model.teacher_size=32',
            '--model.teacher_weights',
            'false',
            f'--trainer.default_root_dir={tmp_path}',
        ],
    )
    assert cli.model.teacher_weights is False


class TestTraining:
    def test_non_finite_loss_stops_training(self, tmp_path: Path) -> None:
        task = make_task()
        with torch.no_grad():
            task.model.projector.weight.fill_(math.nan)
        t = trainer(tmp_path, max_steps=3)
        with pytest.raises(FloatingPointError, match='Non-finite GFM loss at step 0'):
            t.fit(task, RandomDataModule())
        assert not list(tmp_path.rglob('*.ckpt'))

    def test_batch_larger_than_dataset(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match='no full batch of 16'):
            trainer(tmp_path, max_epochs=1, max_steps=-1).fit(
                make_task(), RandomDataModule(batch_size=16)
            )

    @pytest.mark.parametrize('precision', ['bf16-mixed', '32'])
    def test_gradient_clipping_in_every_precision(
        self, tmp_path: Path, precision: str
    ) -> None:
        # the paper's recipe: clipping 5.0 under mixed precision (crashed with fused AdamW)
        t = trainer(tmp_path, max_steps=2, precision=precision, gradient_clip_val=5.0)
        t.fit(make_task(), RandomDataModule())
        assert t.global_step == 2


class FakeTrainer:
    """The attributes of a Lightning Trainer that the optimiser setup reads."""

    def __init__(self, batches: int, epochs: int, world: int, accumulate: int) -> None:
        self.num_training_batches = batches
        self.max_epochs = epochs
        self.world_size = world
        self.accumulate_grad_batches = accumulate
        self.estimated_stepping_batches = epochs * -(-batches // accumulate)
        self.precision = 'bf16-mixed'
        self.gradient_clip_val = 5.0
        self.datamodule = None


@pytest.fixture(scope='module')
def task() -> ContinualPretraining:
    return make_task(lr=2e-4, warmup_lr=1e-6, min_lr=1e-5)


def expected_lr(
    t: int, total: int, warmup: int, peak: float, start: float, end: float
) -> float:
    """The authors' schedule (timm CosineLRScheduler, warmup not a prefix), by hand."""
    if t < warmup:
        return start + t * (peak - start) / warmup
    return end + 0.5 * (peak - end) * (1 + math.cos(math.pi * t / total))


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 256),
    world=st.integers(1, 64),
    accumulate=st.integers(1, 8),
    batches=st.integers(1, 400),
    epochs=st.integers(1, 20),
    warmup_epochs=st.floats(0, 5),
)
def test_lr_schedule(
    task: ContinualPretraining,
    batch: int,
    world: int,
    accumulate: int,
    batches: int,
    epochs: int,
    warmup_epochs: float,
) -> None:
    fake = FakeTrainer(batches, epochs, world, accumulate)
    task.hparams['warmup_epochs'] = warmup_epochs
    task._trainer = fake  # type: ignore[assignment]
    try:
        task.global_batch_size = lambda: batch * world * accumulate  # type: ignore[method-assign]
        config: Any = task.configure_optimizers()
    finally:
        task._trainer = None
        del task.global_batch_size
    optimizer, scheduler = config['optimizer'], config['lr_scheduler']['scheduler']
    scale = batch * world * accumulate / 512
    total = fake.estimated_stepping_batches
    per_epoch = -(-batches // accumulate)
    warmup = int(warmup_epochs * per_epoch)
    peak, start, end = 2e-4 * scale, 1e-6 * scale, 1e-5 * scale
    assert not optimizer.defaults['fused']  # clipping under mixed precision
    steps = {0, 1, warmup - 1, warmup, total // 2, total - 1, total}
    for t in sorted(t for t in steps if 0 <= t <= total):
        scheduler.step_update(num_updates=t)
        for group in optimizer.param_groups:
            want = expected_lr(t, total, warmup, peak, start, end)
            assert math.isclose(group['lr'], want, rel_tol=1e-9, abs_tol=1e-15)
            assert min(start, end) - 1e-15 <= group['lr'] <= peak + 1e-15


def test_demo_passes_arguments_after_separator() -> None:
    args, extra = demo.parse_args(['--output', 'o', '--', '--trainer.max_epochs', '1'])
    assert extra == ['--trainer.max_epochs', '1']
    assert args.output == Path('o')


def test_demo_missing_teacher_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = demo.main(
        [f'--output={tmp_path}', f'--teacher-weights={tmp_path / "t.pth"}']
    )
    assert code == 1
    assert 't.pth' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
