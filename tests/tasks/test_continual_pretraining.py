# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.cli import main as cli_main
from torchgeo_gfm.models.checkpoint import GFMCheckpointError, load_backbone
from torchgeo_gfm.models.pretraining import simmim_mask
from torchgeo_gfm.tasks import ContinualPretraining
from torchgeo_gfm.tasks.export import export_checkpoint

# tiny Swins: 4 stages, so the paper's stage-3 distillation and stride 32 are kept
STUDENT = {
    'embed_dim': 8,
    'depths': (1, 1, 2, 1),
    'num_heads': (1, 1, 2, 2),
    'window_size': 2,
}
TEACHER = {
    'embed_dim': 12,
    'depths': (1, 1, 1, 1),
    'num_heads': (1, 1, 1, 1),
    'window_size': 2,
}
SIZE = 64


def make_task(**kwargs: Any) -> ContinualPretraining:
    args: dict[str, Any] = {
        'model_kwargs': STUDENT,
        'teacher': 'swin_tiny_patch4_window7_224',
        'teacher_weights': None,
        'teacher_kwargs': TEACHER,
        'teacher_size': 32,
        'warmup_epochs': 1,
        'plot_every_n_steps': 0,
    }
    args.update(kwargs)
    return ContinualPretraining(**args)


class RandomImages(Dataset[dict[str, Tensor]]):
    def __init__(self, n: int = 8, chans: int = 3, size: int = SIZE) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, chans, size, size, generator=gen)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {'image': self.images[i]}


class RandomDataModule(LightningDataModule):
    def __init__(self, batch_size: int = 2, chans: int = 3, size: int = SIZE) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.chans = chans
        self.size = size

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        data = RandomImages(chans=self.chans, size=self.size)
        return DataLoader(data, batch_size=self.batch_size, drop_last=True)


def trainer(tmp_path: Path, **kwargs: Any) -> Trainer:
    args: dict[str, Any] = {
        'accelerator': 'cpu',
        'default_root_dir': tmp_path,
        'logger': False,
        'enable_progress_bar': False,
        'enable_model_summary': False,
        'max_steps': 2,
    }
    args.update(kwargs)
    return Trainer(**args)


def reference_loss(
    task: ContinualPretraining, images: Tensor, mask: Tensor
) -> dict[str, Tensor]:
    """The paper's loss through timm's own forward code, not the task's stage loop."""
    student = copy.deepcopy(task.model.student)
    token = task.model.mask_token.view(1, 1, 1, -1)

    def put_mask_token(module: Any, inputs: Any, out: Tensor) -> Tensor:
        w = mask.unsqueeze(-1)
        return out * (1 - w) + token * w

    student.patch_embed.register_forward_hook(put_mask_token)
    last = student.forward_features(images).permute(0, 3, 1, 2)
    stage2 = student.forward_intermediates(
        images, indices=[2], intermediates_only=True
    )[0]
    f_s = student.layers[3].downsample(stage2.permute(0, 2, 3, 1)).mean((1, 2))
    # a complete teacher with the task's weights (unused stages random)
    teacher = timm.create_model(
        'swin_tiny_patch4_window7_224', num_classes=0, img_size=32, **TEACHER
    ).eval()
    teacher.load_state_dict(task.model.teacher.state_dict(), strict=False)
    small = F.interpolate(images, (32, 32), mode='bilinear', align_corners=True)
    t2 = teacher.forward_intermediates(small, indices=[2], intermediates_only=True)[0]
    f_t = teacher.layers[3].downsample(t2.permute(0, 2, 3, 1)).mean((1, 2))
    # L1 over masked pixels, per channel
    rec = task.model.decoder(last)
    hidden = mask.bool().repeat_interleave(4, 1).repeat_interleave(4, 2)
    hidden = hidden.unsqueeze(1).expand_as(images)
    loss_mim = (images - rec).abs()[hidden].mean()
    cos = F.cosine_similarity(task.model.projector(f_s), f_t, dim=1)
    return {'loss_mim': loss_mim, 'loss_distill': -cos.mean()}


# mask blocks as large as the decoder cells (32) and smaller (16)
@pytest.mark.parametrize('mask_patch_size', [32, 16])
def test_compute_loss_matches_reference(mask_patch_size: int) -> None:
    torch.manual_seed(0)
    task = make_task(mask_patch_size=mask_patch_size).eval()
    images = torch.randn(3, 3, SIZE, SIZE)
    mask = task.draw_mask(images)
    out = task.compute_loss(images, mask)
    ref = reference_loss(task, images, mask)
    for key in ('loss_mim', 'loss_distill'):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out['loss'], out['loss_mim'] + out['loss_distill'])
    out['loss'].backward()
    assert task.model.mask_token.grad is not None
    assert task.model.projector.weight.grad is not None
    assert all(p.grad is None for p in task.model.teacher.parameters())


def test_alpha_and_last_stage() -> None:
    torch.manual_seed(0)
    task = make_task(alpha=0.5, distill_stage=4)
    assert task.model.projector.in_features == task.model.student.num_features
    images = torch.randn(2, 3, SIZE, SIZE)
    out = task.compute_loss(images, task.draw_mask(images))
    torch.testing.assert_close(out['loss'], out['loss_mim'] + 0.5 * out['loss_distill'])


def test_teacher_is_cut_after_distilled_stage() -> None:
    task = make_task()
    assert len(task.model.teacher.layers) == 4
    assert len(task.model.teacher.layers[3].blocks) == 0
    assert isinstance(task.model.teacher.norm, torch.nn.Identity)
    assert task.model.projector.in_features == 8 * 8
    assert task.model.projector.out_features == 12 * 8
    assert not task.model.teacher.training
    assert not any(p.requires_grad for p in task.model.teacher.parameters())
    task.train()
    assert task.model.student.training
    assert not task.model.teacher.training


def test_last_stage_teacher_keeps_all_blocks() -> None:
    task = make_task(distill_stage=4)
    assert len(task.model.teacher.layers[3].blocks) == 1
    assert isinstance(task.model.teacher.norm, torch.nn.Identity)


def test_simmim_mask() -> None:
    mask = simmim_mask(5, (6, 6), 0.6, 8, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (5, 48, 48)
    # exactly ceil(36 * 0.6) = 22 blocks of 8x8 patches per sample, as the authors
    assert (mask.sum((1, 2)) == 22 * 64).all()
    blocks = mask[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2)
    assert torch.equal(blocks, mask)
    assert not torch.equal(mask[0], mask[1])


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'in_channels': 4}, 'teacher_kwargs'),
        ({'distill_stage': 5}, 'distill_stage=5'),
        ({'distill_stage': 0}, 'distill_stage=0'),
        ({'mask_patch_size': 6}, 'multiple of the student patch size'),
        ({'mask_ratio': 1.0}, 'mask_ratio'),
        ({'model': 'resnet18', 'model_kwargs': None}, 'not a timm Swin'),
        (
            {'teacher': 'test_resnet', 'teacher_kwargs': None, 'teacher_stage': 5},
            'teacher_stage=5',
        ),
        ({'teacher_input': 'rgb'}, 'teacher_input'),
        ({'teacher_stage': True}, 'teacher_stage'),
        ({'weights': 'missing.safetensors'}, 'does not exist'),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError, FileNotFoundError), match=match):
        make_task(**kwargs)


def test_multispectral_teacher_adapted() -> None:
    task = make_task(in_channels=4, teacher_kwargs={**TEACHER, 'in_chans': 4})
    images = torch.randn(2, 4, SIZE, SIZE)
    out = task.compute_loss(images, task.draw_mask(images))
    assert torch.isfinite(out['loss'])


def test_bad_image_size() -> None:
    task = make_task()
    with pytest.raises(ValueError, match='multiple of 32'):
        task.draw_mask(torch.randn(1, 3, 48, 48))


def test_bad_data_at_setup(tmp_path: Path) -> None:
    task = make_task()
    with pytest.raises(ValueError, match='multiple of 32'):
        trainer(tmp_path).fit(task, RandomDataModule(size=80))


def test_bad_channels_in_batch(tmp_path: Path) -> None:
    task = make_task()
    dm = RandomDataModule(chans=4)
    with pytest.raises(ValueError, match='4-channel images'):
        trainer(tmp_path).fit(task, dm)


def test_optimizer_groups_and_lr_scaling(tmp_path: Path) -> None:
    task = make_task(lr=2e-4, warmup_lr=1e-6, min_lr=1e-5, warmup_epochs=1)
    dm = RandomDataModule(batch_size=2)
    t = trainer(tmp_path, max_epochs=3, max_steps=-1, accumulate_grad_batches=2)
    t.fit(task, dm)
    optimizer = t.optimizers[0]
    no_decay, decay = optimizer.param_groups
    names = {id(p): n for n, p in task.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay['params']}
    assert 'model.mask_token' in no_decay_names
    assert any('relative_position_bias_table' in n for n in no_decay_names)
    assert all(names[id(p)].endswith('weight') for p in decay['params'])
    assert 'model.projector.weight' in {names[id(p)] for p in decay['params']}
    assert no_decay['weight_decay'] == 0
    assert decay['weight_decay'] == 0.05
    assert not any(
        n.startswith('model.teacher.') for n in names.values() if n in no_decay_names
    )
    scheduler = t.lr_scheduler_configs[0].scheduler
    scale = 2 * 1 * 2 / 512  # batch x devices x accumulation / 512
    assert math.isclose(scheduler.base_values[0], 2e-4 * scale)
    assert math.isclose(scheduler.warmup_lr_init, 1e-6 * scale)
    assert math.isclose(scheduler.lr_min, 1e-5 * scale)
    # 4 batches / 2 accumulation = 2 steps per epoch; 1 warmup epoch; 6 steps in all
    assert scheduler.warmup_t == 2
    assert scheduler.t_initial == 6
    assert t.global_step == 6
    # stepped as the authors' loop: after step k the lr of step k + 1 is lr(k)
    assert math.isclose(optimizer.param_groups[0]['lr'], scheduler._get_lr(5)[0])


class FigureLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[int] = []

    @property
    def name(self) -> str:
        return 'figures'

    @property
    def version(self) -> int:
        return 0

    @property
    def experiment(self) -> 'FigureLogger':
        return self

    def add_figure(self, tag: str, figure: Any, global_step: int) -> None:
        self.figures.append(global_step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics = {**getattr(self, 'metrics', {}), **metrics}

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def test_logs_and_figures(tmp_path: Path) -> None:
    task = make_task(plot_every_n_steps=2, plot_dir=str(tmp_path / 'png'))
    logger = FigureLogger()
    t = trainer(tmp_path, max_steps=3, logger=logger, log_every_n_steps=1)
    t.fit(task, RandomDataModule())
    assert logger.figures == [0, 2]
    assert sorted(p.name for p in (tmp_path / 'png').iterdir()) == [
        'reconstruction_0000000.png',
        'reconstruction_0000002.png',
    ]
    for key in (
        'train_loss',
        'train_loss_mim',
        'train_loss_distill',
        'lr',
        'images_per_sec',
    ):
        assert key in logger.metrics


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run; returns its checkpoint."""
    root = tmp_path_factory.mktemp('run')
    torch.manual_seed(0)
    t = trainer(root, max_steps=2, enable_checkpointing=True)
    t.fit(make_task(), RandomDataModule())
    ckpt = root / 'gfm.ckpt'
    t.save_checkpoint(ckpt)
    return ckpt


@pytest.mark.slow
def test_checkpoint_leaves_out_teacher_and_resumes(
    trained: Path, tmp_path: Path
) -> None:
    state = torch.load(trained, map_location='cpu', weights_only=True)
    assert state['state_dict']
    assert not any(k.startswith('model.teacher.') for k in state['state_dict'])
    task = make_task()
    t = trainer(tmp_path, max_steps=4)
    t.fit(task, RandomDataModule(), ckpt_path=trained)
    assert t.global_step == 4
    assert not task.model.teacher.training
    assert not any(p.requires_grad for p in task.model.teacher.parameters())
    # the schedule went on from step 2, it did not restart
    scheduler = t.lr_scheduler_configs[0].scheduler
    assert math.isclose(
        t.optimizers[0].param_groups[0]['lr'], scheduler._get_lr(3)[0], rel_tol=1e-9
    )
    loaded = ContinualPretraining.load_from_checkpoint(trained, teacher_weights=None)
    torch.testing.assert_close(
        loaded.model.mask_token,
        torch.as_tensor(state['state_dict']['model.mask_token']),
    )


def test_export(trained: Path, tmp_path: Path) -> None:
    out = export_checkpoint(trained, tmp_path / 'out' / 'backbone.safetensors')
    weights = load_backbone(out)
    state = torch.load(trained, map_location='cpu', weights_only=True)['state_dict']
    for key, value in weights.items():
        torch.testing.assert_close(value, state[f'model.student.{key}'])
    model = timm.create_model(
        'gfm_swin_base',
        pretrained=True,
        pretrained_cfg_overlay={'file': str(out)},
        **STUDENT,
    )
    torch.testing.assert_close(
        model.patch_embed.proj.weight, state['model.student.patch_embed.proj.weight']
    )
    from torchgeo_gfm.models import gfm_swin_b

    model = gfm_swin_b(weights=out, **STUDENT)
    torch.testing.assert_close(model.norm.weight, state['model.student.norm.weight'])
    task = make_task(weights=str(out))
    torch.testing.assert_close(
        task.model.student.layers[3].downsample.reduction.weight,
        state['model.student.layers.3.downsample.reduction.weight'],
    )


def test_export_cli(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'b.safetensors'
    assert cli_main(['export', str(trained), str(out)]) == 0
    assert 'sha256' in capsys.readouterr().out
    assert out.is_file()
    bad = tmp_path / 'bad.ckpt'
    bad.write_bytes(b'not a checkpoint')
    assert cli_main(['export', str(bad), str(out)]) == 2
    assert 'not a readable torch checkpoint' in capsys.readouterr().err
    assert cli_main(['export', str(tmp_path / 'nope.ckpt'), str(out)]) == 2
    torch.save({'state_dict': {'x': torch.zeros(1)}}, bad)
    with pytest.raises(GFMCheckpointError, match='no student'):
        export_checkpoint(bad, out)


@pytest.fixture(scope='module')
def upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Tensor]]:
    from tests.data.gfm.data import TINY, write_upstream_checkpoint

    path = tmp_path_factory.mktemp('upstream') / 'gfm.pth'
    return path, write_upstream_checkpoint(path, **TINY)


def upstream_task(**kwargs: Any) -> ContinualPretraining:
    from tests.data.gfm.data import TINY

    arch = {k: TINY[k] for k in ('embed_dim', 'depths', 'num_heads')}
    args: dict[str, Any] = {
        'model_kwargs': TINY,
        'teacher': 'swin_base_patch4_window7_224',
        'teacher_weights': None,
        'teacher_kwargs': arch,
    }
    args.update(kwargs)
    return ContinualPretraining(**args)


@pytest.mark.slow
def test_load_upstream_checkpoint(upstream: tuple[Path, dict[str, Tensor]]) -> None:
    path, model = upstream
    task = upstream_task()
    task.load_upstream_checkpoint(path)
    student = task.model.student.state_dict()
    # Microsoft's patch merging ends stage i, timm's starts stage i + 1
    torch.testing.assert_close(
        student['layers.3.downsample.reduction.weight'],
        model['encoder.layers.2.downsample.reduction.weight'],
    )
    torch.testing.assert_close(student['norm.weight'], model['encoder.norm.weight'])
    torch.testing.assert_close(task.model.mask_token, model['encoder.mask_token'])
    torch.testing.assert_close(task.model.decoder[0].weight, model['decoder.0.weight'])
    torch.testing.assert_close(task.model.projector.bias, model['projector.bias'])
    torch.testing.assert_close(
        task.model.teacher.layers[3].downsample.norm.weight,
        model['teacher.layers.2.downsample.norm.weight'],
    )
    torch.testing.assert_close(
        task.model.teacher.layers[2].blocks[1].attn.relative_position_bias_table,
        model['teacher.layers.2.blocks.1.attn.relative_position_bias_table'],
    )
    images = torch.randn(1, 3, 192, 192)
    out = task.compute_loss(images, task.draw_mask(images))
    assert torch.isfinite(out['loss'])


def test_upstream_checkpoint_argument(upstream: tuple[Path, dict[str, Tensor]]) -> None:
    path, model = upstream
    task = upstream_task(upstream_checkpoint=str(path))
    torch.testing.assert_close(task.model.projector.weight, model['projector.weight'])


def test_load_upstream_checkpoint_wrong_architecture(
    upstream: tuple[Path, dict[str, Tensor]],
) -> None:
    task = make_task()
    with pytest.raises(GFMCheckpointError, match='architecture'):
        task.load_upstream_checkpoint(upstream[0])


class ValDataModule(RandomDataModule):
    def val_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(RandomImages(n=4), batch_size=2)


def test_validation_is_deterministic(tmp_path: Path) -> None:
    task = make_task()
    t = trainer(tmp_path, max_steps=1)
    first = t.validate(task, ValDataModule(), verbose=False)[0]
    second = t.validate(task, ValDataModule(), verbose=False)[0]
    assert first == second
    assert set(first) == {'val_loss', 'val_loss_mim', 'val_loss_distill'}


def test_grad_checkpointing_same_loss_and_grads() -> None:
    torch.manual_seed(0)
    plain = make_task()
    ckpt = make_task(grad_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, SIZE, SIZE)
    mask = plain.draw_mask(images)
    for task in (plain, ckpt):
        task.compute_loss(images, mask)['loss'].backward()
    assert ckpt.model.student.layers[0].grad_checkpointing
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_bf16_autocast_losses_are_fp32() -> None:
    task = make_task()
    images = torch.randn(2, 3, SIZE, SIZE)
    mask = task.draw_mask(images)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = task.compute_loss(images, mask)
    ref = task.compute_loss(images, mask)
    assert all(v.dtype == torch.float32 for v in out.values())
    torch.testing.assert_close(out['loss_mim'], ref['loss_mim'], rtol=0.05, atol=0.05)


def authors_loss(
    model: dict[str, Tensor], images: Tensor, mask: Tensor, arch: dict[str, Any]
) -> Tensor:
    """The authors' SimMIM + teacher loss, on Microsoft-layout weights, without timm."""
    from tests.models.reference_swin import _block, _ln, _merge, ms_swin_forward

    def student(sd: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        x = F.conv2d(
            images, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'], stride=4
        )
        res = x.shape[-1]
        x = _ln(x.flatten(2).transpose(1, 2), sd, 'patch_embed.norm')
        w = mask.flatten(1).unsqueeze(-1).float()
        x = x * (1.0 - w) + sd['mask_token'] * w
        depths = arch['depths']
        for i, depth in enumerate(depths):
            for j in range(depth):
                x = _block(
                    x,
                    sd,
                    f'layers.{i}.blocks.{j}',
                    res,
                    arch['num_heads'][i],
                    arch['window_size'],
                )
            if i < len(depths) - 1:
                x = _merge(x, sd, f'layers.{i}.downsample', res)
                res //= 2
            if i == len(depths) - 2:
                pooled = x.mean(1)  # avgpool of layers[:-1]
        return _ln(x, sd, 'norm'), pooled

    enc = {k[8:]: v for k, v in model.items() if k.startswith('encoder.')}
    r, zs = student(enc)
    b, length, c = r.shape
    side = int(length**0.5)
    r = r.transpose(1, 2).reshape(b, c, side, side)
    x_rec = F.pixel_shuffle(
        F.conv2d(r, model['decoder.0.weight'], model['decoder.0.bias']), 32
    )
    zs = F.linear(zs, model['projector.weight'], model['projector.bias'])
    teacher = {k[8:]: v for k, v in model.items() if k.startswith('teacher.')}
    big = F.interpolate(images, (224, 224), mode='bilinear', align_corners=True)
    t_arch = {
        'depths': arch['depths'],
        'num_heads': arch['num_heads'],
        'window_size': 7,
    }
    zt = ms_swin_forward(teacher, big, **t_arch)['layers_except_last'].mean(1)
    pixels = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).float()
    loss = (F.l1_loss(images, x_rec, reduction='none') * pixels).sum()
    loss = loss / (pixels.sum() + 1e-5) / images.shape[1]
    return loss - F.cosine_similarity(zs, zt, dim=1).mean()


def test_compute_loss_matches_authors(upstream: tuple[Path, dict[str, Tensor]]) -> None:
    from tests.data.gfm.data import TINY

    path, model = upstream
    task = upstream_task()
    task.load_upstream_checkpoint(path)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 192, 192, generator=gen)
    # the authors' MaskGenerator gives int masks at patch resolution
    mask = simmim_mask(2, (6, 6), 0.6, 8, generator=gen).long()
    with torch.no_grad():
        ours = task.compute_loss(images, mask)['loss']
        theirs = authors_loss(model, images, mask, TINY)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=0)
