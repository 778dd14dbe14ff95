# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fine-tuning tasks against an independent rendering of the GFM authors' recipe.

The reference here follows the authors' ``optimizer.py`` (``get_swin_layer``,
``get_finetune_param_groups``), ``lr_scheduler.py`` and ``main_finetune.py`` training loop,
on MICROSOFT Swin names; our timm names are mapped to them by the one rule that differs
(timm ``layers.{i+1}.downsample`` == Microsoft ``layers.{i}.downsample``; ``head.fc`` ==
``head``).
"""

import re
from typing import Any

import numpy as np
import pytest
import timm
import torch
from lightning.pytorch import Callback, Trainer
from timm.optim import param_groups_layer_decay
from timm.scheduler import CosineLRScheduler
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.tasks import (
    FinetuneChangeDetection,
    FinetuneClassification,
    FinetuneSemanticSegmentation,
    FinetuneSuperResolution,
)
from torchgeo_gfm.tasks.finetune import (
    _AuthorsLayerIds,
    find_swins,
    layer_decay_param_groups,
    swin_layer_id,
    timm_model_kwargs,
)

DEPTHS = (2, 2, 6, 2)
#: a small Swin with Swin-B's layout (timm's swin_tiny builder, narrower)
SMALL: dict[str, Any] = {
    'embed_dim': 32,
    'depths': DEPTHS,
    'num_heads': (1, 2, 4, 8),
    'window_size': 8,
    'img_size': 256,
    'drop_path_rate': 0.1,
}
SMALL_MODEL = 'swin_tiny_patch4_window7_224'
DECAY, WD, LR = 0.9, 0.05, 1e-4


# ------------------------------------------------- the authors' rule (reference)
def authors_layer_id(ms_name: str, depths: tuple[int, ...]) -> int:
    """``get_swin_layer(name, num_layers=sum(depths) + 2, depths)`` on Microsoft names."""
    num_layers = sum(depths) + 2
    if ms_name == 'mask_token' or ms_name.startswith('patch_embed'):
        return 0
    if ms_name.startswith('layers'):
        parts = ms_name.split('.')
        stage = int(parts[1])
        if parts[3] in ('reduction', 'norm'):  # layers.{i}.downsample.{reduction,norm}
            return sum(depths[: stage + 1])
        return sum(depths[:stage]) + int(parts[3]) + 1
    return num_layers - 1


def authors_no_decay(ms_name: str, param: Tensor) -> bool:
    """1-D, bias, ``no_weight_decay()`` ({'absolute_pos_embed'}) or keyword match."""
    return (
        param.ndim == 1
        or ms_name.endswith('.bias')
        or ms_name in {'absolute_pos_embed'}
        or 'relative_position_bias_table' in ms_name
    )


def authors_scale(layer_id: int, depths: tuple[int, ...]) -> float:
    scales = [DECAY**i for i in reversed(range(sum(depths) + 2))]
    return scales[layer_id]


def microsoft_name(timm_name: str) -> str:
    """timm Swin name -> Microsoft Swin name (where patch merging ends a stage)."""
    m = re.match(r'^layers\.(\d+)\.downsample\.(.*)$', timm_name)
    if m:
        return f'layers.{int(m[1]) - 1}.downsample.{m[2]}'
    return re.sub(r'^head\.fc\.', 'head.', timm_name)


def authors_groups(
    model: nn.Module, lr: float, depths: tuple[int, ...]
) -> list[dict[str, Any]]:
    """``get_finetune_param_groups`` over *model* (timm), keyed by Microsoft names."""
    groups: dict[str, dict[str, Any]] = {}
    for name, param in model.named_parameters():
        ms = microsoft_name(name)
        no_decay = authors_no_decay(ms, param)
        layer = authors_layer_id(ms, depths)
        key = f'layer_{layer}_{"no_decay" if no_decay else "decay"}'
        scale = authors_scale(layer, depths)
        group = groups.setdefault(
            key,
            {
                'params': [],
                'weight_decay': 0.0 if no_decay else WD,
                'lr': lr * scale,
                'lr_scale': scale,
            },
        )
        group['params'].append(param)
    return list(groups.values())


def by_param(groups: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {id(p): g[key] for g in groups for p in g['params']}


# ----------------------------------------------------------------- fixtures
def small_task(**kwargs: Any) -> FinetuneClassification:
    args: dict[str, Any] = {
        'model': SMALL_MODEL,
        'num_classes': 21,
        'lr': LR,
        'model_kwargs': SMALL,
    }
    return FinetuneClassification(**{**args, **kwargs})


@pytest.fixture(scope='module')
def task() -> FinetuneClassification:
    return small_task()


# ------------------------------------------------------------ layer decay
class TestLayerDecay:
    def test_model_kwargs_reach_timm(self, task: FinetuneClassification) -> None:
        swin: Any = task.model
        assert swin.layers[0].blocks[0].attn.window_size == (8, 8)
        assert tuple(swin.patch_embed.img_size) == (256, 256)
        assert swin.embed_dim == 32
        drop = swin.layers[3].blocks[1].drop_path1
        assert drop.drop_prob == pytest.approx(0.1)  # the last block: the full rate

    def test_every_parameter_matches_the_authors(
        self, task: FinetuneClassification
    ) -> None:
        ours = task.build_optimizer(1.0, fused=False).param_groups
        theirs = authors_groups(task.model, LR, DEPTHS)
        scale_ours, scale_theirs = (
            by_param(ours, 'lr_scale'),
            by_param(theirs, 'lr_scale'),
        )
        wd_ours, wd_theirs = (
            by_param(ours, 'weight_decay'),
            by_param(theirs, 'weight_decay'),
        )
        lr_ours, lr_theirs = by_param(ours, 'lr'), by_param(theirs, 'lr')
        names = dict(task.model.named_parameters())
        assert len(scale_ours) == len(names) == len(scale_theirs) == 173
        for name, param in names.items():
            key = id(param)
            assert scale_ours[key] == pytest.approx(scale_theirs[key], rel=1e-12), name
            assert wd_ours[key] == wd_theirs[key], name
            assert lr_ours[key] == pytest.approx(lr_theirs[key], rel=1e-12), name
        assert len(ours) == len(theirs)

    def test_patch_merging_takes_the_previous_stage_id(self) -> None:
        # timm layers.{i}.downsample == Microsoft layers.{i-1}.downsample
        n = sum(DEPTHS)
        assert swin_layer_id('layers.1.downsample.reduction.weight', DEPTHS) == 2
        assert swin_layer_id('layers_3.downsample.norm.weight', DEPTHS) == 10
        assert swin_layer_id('layers.2.blocks.5.mlp.fc1.weight', DEPTHS) == 10
        assert swin_layer_id('layers.0.blocks.0.norm1.weight', DEPTHS) == 1
        assert swin_layer_id('patch_embed.proj.weight', DEPTHS) == 0
        assert swin_layer_id('mask_token', DEPTHS) == 0
        assert swin_layer_id('norm.weight', DEPTHS) == n + 1
        assert swin_layer_id('head.fc.weight', DEPTHS) == n + 1

    def test_timm_param_groups_layer_decay_differs(
        self, task: FinetuneClassification
    ) -> None:
        # why swin_layer_id exists: timm's group_matcher gives patch merging its own id
        groups = param_groups_layer_decay(task.model, WD, layer_decay=DECAY)
        timm_scale = by_param(groups, 'lr_scale')
        theirs = by_param(authors_groups(task.model, LR, DEPTHS), 'lr_scale')
        differs = [
            n
            for n, p in task.model.named_parameters()
            if abs(timm_scale[id(p)] - theirs[id(p)]) > 1e-12
        ]
        assert any('downsample' in n for n in differs)

    def test_timm_with_the_authors_ids_as_matcher(
        self, task: FinetuneClassification
    ) -> None:
        # layer_decay_param_groups is timm's, given swin_layer_id as the group matcher
        swin = task.model
        groups = param_groups_layer_decay(
            _AuthorsLayerIds(swin, '', DEPTHS), WD, layer_decay=DECAY
        )
        theirs = authors_groups(swin, LR, DEPTHS)
        assert by_param(groups, 'lr_scale') == pytest.approx(
            by_param(theirs, 'lr_scale'), rel=1e-12
        )

    def test_a_swin_without_head_is_refused(self) -> None:
        # timm numbers the ids that occur: without id n + 1 every scale would shift
        swin = timm.create_model(SMALL_MODEL, features_only=True, **SMALL)
        with pytest.raises(ValueError, match=r'layer id\(s\) \[13\]'):
            layer_decay_param_groups(swin, LR, WD, DECAY)

    def test_swin_b_group_count_on_meta(self) -> None:
        with torch.device('meta'):
            task = FinetuneClassification(
                model='gfm_swin_base',
                num_classes=21,
                model_kwargs={'img_size': 256, 'window_size': 8},
            )
        depths = (2, 2, 18, 2)
        groups = layer_decay_param_groups(task.model, LR, WD, DECAY)
        theirs = authors_groups(task.model, LR, depths)
        # 26 layer ids, each with weights (decay) and 1-D parameters (no decay)
        assert len(groups) == len(theirs) == 2 * (sum(depths) + 2)
        assert by_param(groups, 'lr_scale') == pytest.approx(
            by_param(theirs, 'lr_scale')
        )
        assert min(g['lr_scale'] for g in groups) == pytest.approx(DECAY**25)

    def test_without_swin(self) -> None:
        task = FinetuneClassification(model='resnet18', num_classes=2, layer_decay=0.9)
        with pytest.raises(ValueError, match='one Swin backbone'):
            task.build_optimizer(1.0, fused=False)
        task = FinetuneClassification(model='resnet18', num_classes=2, layer_decay=1)
        groups = task.build_optimizer(1.0, fused=False).param_groups
        assert {g['lr_scale'] for g in groups} == {1.0}

    def test_frozen_parameters_left_out(self) -> None:
        task = small_task(freeze_backbone=True, mixup=0, cutmix=0)
        params = [p for g in task.build_optimizer().param_groups for p in g['params']]
        model: Any = task.model
        assert {id(p) for p in params} == {
            id(p) for p in model.get_classifier().parameters()
        }


# ---------------------------------------------------------------- dense tasks
TINY = {
    'embed_dim': 16,
    'depths': (1, 1, 2, 1),
    'num_heads': (1, 1, 2, 2),
    'window_size': 4,
    'strict_img_size': False,
    'drop_path_rate': 0.3,
}


@pytest.mark.parametrize(
    ('cls', 'args', 'prefix'),
    [
        (
            FinetuneSemanticSegmentation,
            {'model': 'upernet', 'backbone': f'tu-{SMALL_MODEL}', 'num_classes': 3},
            'model.encoder.model.',
        ),
        (
            FinetuneChangeDetection,
            {
                'model': 'fcsiamdiff',
                'backbone': f'tu-{SMALL_MODEL}',
                'task': 'binary',
                'loss': 'bce',
            },
            'model.encoder.model.',
        ),
        (
            FinetuneSuperResolution,
            {'backbone': SMALL_MODEL, 'in_channels': 8, 'head_channels': 8},
            'model.backbone.',
        ),
    ],
)
def test_dense_tasks(cls: type, args: dict[str, Any], prefix: str) -> None:
    task = cls(model_kwargs=TINY, **args)
    swins = find_swins(task)
    assert swins == {prefix: [1, 1, 2, 1]}
    drops = [m.drop_prob for m in task.modules() if type(m).__name__ == 'DropPath']
    assert max(drops) == pytest.approx(0.3)  # model_kwargs reached the backbone
    groups = task.build_optimizer(1.0, fused=False).param_groups
    scale = by_param(groups, 'lr_scale')
    for name, param in task.named_parameters():
        if not name.startswith(prefix):
            assert scale[id(param)] == 1.0, name  # decoders and heads: the last id
    assert min(scale.values()) == pytest.approx(DECAY**6)


# ------------------------------------------------------------------ schedule
class RandomScenes(Dataset[dict[str, Tensor]]):
    def __init__(self, n: int, classes: int = 21) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 32, 32, generator=g)
        self.labels = torch.randint(0, classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {'image': self.images[i], 'label': self.labels[i]}


class RecordLR(Callback):
    def __init__(self) -> None:
        self.steps: list[dict[int, float]] = []

    def on_before_optimizer_step(self, trainer: Any, module: Any, opt: Any) -> None:
        self.steps.append(by_param(opt.param_groups, 'lr'))


@pytest.mark.slow
def test_lr_every_step_matches_the_authors_scheduler(tmp_path: Any) -> None:
    epochs, warmup, batch, n = 3, 1, 4, 16  # 4 steps per epoch, 12 in all
    small = {**SMALL, 'img_size': 32, 'window_size': 2}
    task = small_task(
        model_kwargs=small, warmup_epochs=warmup, lr=LR, warmup_lr=1e-7, min_lr=1e-5
    )
    record = RecordLR()
    trainer = Trainer(
        max_epochs=epochs,
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
        default_root_dir=tmp_path,
    )
    loader = DataLoader(RandomScenes(n), batch_size=batch, shuffle=True, drop_last=True)
    trainer.fit(task, loader)

    # the authors: every lr x batch x world / 512, their groups, timm's scheduler, their loop
    steps_per_epoch = n // batch
    factor = batch * 1 / 512
    reference = authors_groups(task.model, LR * factor, DEPTHS)
    optimizer = torch.optim.AdamW(reference, lr=LR * factor, weight_decay=WD)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=epochs * steps_per_epoch,
        lr_min=1e-5 * factor,
        warmup_lr_init=1e-7 * factor,
        warmup_t=warmup * steps_per_epoch,
        cycle_limit=1,
        t_in_epochs=False,
    )
    expected = []
    for epoch in range(epochs):
        for idx in range(steps_per_epoch):
            expected.append(by_param(optimizer.param_groups, 'lr'))
            scheduler.step_update(epoch * steps_per_epoch + idx)
    assert len(record.steps) == len(expected) == epochs * steps_per_epoch
    worst = max(
        abs(ours[k] - theirs[k]) / theirs[k]
        for ours, theirs in zip(record.steps, expected)
        for k in theirs
    )
    assert worst < 1e-12
    assert len(expected[0]) == 173
    # the schedule moved: warmup up, then cosine down
    model: Any = task.model
    head = id(model.head.fc.weight)
    lrs = [s[head] for s in record.steps]
    assert lrs[0] == lrs[1] < lrs[4]
    assert lrs[4] > lrs[-1]


# -------------------------------------------------------------------- mixup
def authors_mixup_target(
    y: Tensor, classes: int, lam: float, smoothing: float
) -> Tensor:
    """The authors' ``data/mixup.py`` ``mixup_target`` (one-hot or multi-hot)."""
    off = smoothing / classes
    on = 1.0 - smoothing + off
    if y.ndim > 1:
        y1 = y * (on - off) + off
        y2 = y.flip(0) * (on - off) + off
    else:
        y1 = torch.full((len(y), classes), off).scatter_(1, y.view(-1, 1), on)
        y2 = y1.flip(0)
    return y1 * lam + y2 * (1.0 - lam)


class TestMixup:
    def test_configuration_is_the_authors(self, task: FinetuneClassification) -> None:
        fn = task.mixup_fn
        assert fn is not None
        assert (fn.mixup_alpha, fn.cutmix_alpha, fn.cutmix_minmax) == (0.8, 1.0, None)
        assert (fn.mix_prob, fn.switch_prob, fn.mode) == (1.0, 0.5, 'batch')
        assert (fn.label_smoothing, fn.num_classes, fn.correct_lam) == (0.1, 21, True)
        assert type(task.train_criterion).__name__ == 'SoftTargetCrossEntropy'
        assert isinstance(task.criterion, nn.CrossEntropyLoss)  # validation, as theirs

    @pytest.mark.parametrize('multilabel', [False, True])
    def test_targets_are_the_authors(
        self, multilabel: bool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if multilabel:
            task = FinetuneClassification(
                model='resnet18', task='multilabel', num_labels=19, loss='bce'
            )
            y = (torch.rand(4, 19) > 0.5).long()
        else:
            task = FinetuneClassification(model='resnet18', num_classes=21)
            y = torch.tensor([3, 0, 20, 7])
        assert task.mixup_fn is not None
        monkeypatch.setattr(task.mixup_fn, '_params_per_batch', lambda: (0.7, False))
        x = torch.randn(4, 3, 8, 8)
        mixed, target = task.mix(x.clone(), y)
        classes = y.shape[1] if multilabel else 21
        expected = authors_mixup_target(
            y.float() if multilabel else y, classes, 0.7, 0.1
        )
        torch.testing.assert_close(target, expected)
        torch.testing.assert_close(mixed, x * 0.7 + x.flip(0) * 0.3)

    def test_odd_batch(self) -> None:
        task = FinetuneClassification(model='resnet18', num_classes=21)
        y = torch.tensor([3, 0, 5])
        np.random.seed(0)
        x = torch.randn(3, 3, 8, 8)
        mixed, target = task.mix(x.clone(), y)
        torch.testing.assert_close(mixed[2], x[2])  # the odd one out is not mixed
        torch.testing.assert_close(
            target[2], authors_mixup_target(y[2:], 21, 1.0, 0.1)[0]
        )
        assert target.sum(1).allclose(torch.ones(3))

    def test_multilabel_loss_is_multilabel_soft_margin(self) -> None:
        logits, target = torch.randn(6, 19), torch.rand(6, 19)
        ours = nn.BCEWithLogitsLoss()(logits, target)
        torch.testing.assert_close(ours, nn.MultiLabelSoftMarginLoss()(logits, target))

    def test_off_and_binary(self) -> None:
        task = FinetuneClassification(
            model='resnet18', num_classes=2, mixup=0, cutmix=0
        )
        assert task.mixup_fn is None
        assert task.train_criterion is task.criterion
        with pytest.raises(ValueError, match='binary'):
            FinetuneClassification(model='resnet18', task='binary', loss='bce')


def test_timm_model_kwargs_is_undone_on_error() -> None:
    original = timm.create_model

    def fail() -> None:
        with timm_model_kwargs({'drop_path_rate': 0.2}):
            assert timm.create_model is not original
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert timm.create_model is original
