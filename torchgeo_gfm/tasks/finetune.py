# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fine-tuning as the GFM authors did: layer-wise lr decay, per-step schedule, mixup.

TorchGeo's tasks build one AdamW group with a per-epoch scheduler and pass no model
arguments. The tasks here are TorchGeo's (and this package's) tasks with three additions,
by subclassing: ``model_kwargs`` reach ``timm.create_model`` (window size, drop path, image
size), the optimiser is the authors' ``build_finetune_optimizer`` (AdamW, layer-wise lr decay
over Swin's blocks, no weight decay on 1-D parameters, biases and position tables) under
their per-step warmup + cosine schedule, and classification trains with mixup/cutmix and
label smoothing.

.. versionadded:: 0.1
"""

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import timm
import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy
from timm.optim import param_groups_layer_decay, param_groups_weight_decay
from torch import Tensor, nn
from torchgeo.datasets.utils import Sample
from torchgeo.tasks import SemanticSegmentation

from .change import ChangeDetectionWithFigures
from .inference import InferenceMetadataMixin
from .multilabel import MultiLabelClassification
from .schedule import AuthorsSchedule, adamw
from .super_resolution import SuperResolution

#: Names without weight decay besides 1-D parameters and biases (Swin's
#: ``no_weight_decay`` and ``no_weight_decay_keywords``, SimMIM's mask token)
NO_WEIGHT_DECAY_KEYWORDS = (
    'relative_position_bias_table',
    'absolute_pos_embed',
    'mask_token',
)

# timm's stage names, and those of its feature extractor (smp ``tu-``: layers_0)
_BLOCK = re.compile(r'^layers[._](\d+)\.blocks\.(\d+)\.')
_DOWNSAMPLE = re.compile(r'^layers[._](\d+)\.downsample\.')


def swin_layer_id(name: str, depths: Sequence[int]) -> int:
    """The authors' layer id of a timm Swin parameter, for layer-wise lr decay.

    The authors' rule (``get_swin_layer`` in their ``optimizer.py``, Microsoft names), with
    ``n = sum(depths)`` and ids ``0 .. n + 1``:

    * ``patch_embed.*`` and ``mask_token``: 0;
    * block ``j`` of stage ``i`` (``layers.{i}.blocks.{j}``): ``sum(depths[:i]) + j + 1``;
    * stage ``i``'s patch merging (``layers.{i}.downsample``, at the *end* of stage ``i``
      in Microsoft's Swin): ``sum(depths[:i + 1])``, the id of that stage's last block;
    * everything else (final norm, head, ``absolute_pos_embed``): ``n + 1``.

    timm puts patch merging at the *start* of the next stage: timm's
    ``layers.{i}.downsample`` is Microsoft's ``layers.{i - 1}.downsample``, so its id is
    ``sum(depths[:i])``. A timm Swin's ``group_matcher`` gives it an id of its own
    instead (and so ``n + 5`` ids), which is why this function exists: it is the matcher
    :func:`layer_decay_param_groups` gives timm's ``param_groups_layer_decay``.

    Args:
        name: parameter name relative to the Swin (``layers.{i}`` or ``layers_{i}``).
        depths: blocks per stage.

    Returns:
        The layer id; its lr multiplier is ``decay ** (n + 1 - id)``.

    .. versionadded:: 0.1
    """
    if name.startswith('patch_embed') or name == 'mask_token':
        return 0
    if m := _BLOCK.match(name):
        stage, block = int(m[1]), int(m[2])
        return sum(depths[:stage]) + block + 1
    if m := _DOWNSAMPLE.match(name):
        return sum(depths[: int(m[1])])
    return sum(depths) + 1


def find_swins(module: nn.Module) -> dict[str, list[int]]:
    """Swin backbones inside *module*: their name prefixes and depths.

    A Swin is a module with a ``patch_embed`` child and stages ``layers.{i}`` (timm's
    ``SwinTransformer``) or ``layers_{i}`` (its feature extractor, as in smp ``tu-``).

    Args:
        module: a task or model.

    Returns:
        ``{prefix: depths}``, prefix ending in ``.`` (``''`` for *module* itself).

    .. versionadded:: 0.1
    """
    found: dict[str, list[int]] = {}
    for prefix, sub in module.named_modules():
        children = dict(sub.named_children())
        if 'patch_embed' not in children:
            continue
        layers = children.get('layers')
        stages = list(layers) if isinstance(layers, nn.Sequential) else []
        stages = stages or [v for k, v in children.items() if k.startswith('layers_')]
        blocks = [getattr(s, 'blocks', None) for s in stages]
        depths = [len(b) for b in blocks if isinstance(b, nn.Sequential)]
        if depths:
            found[f'{prefix}.' if prefix else ''] = depths
    return found


def layer_decay_param_groups(
    module: nn.Module, lr: float, weight_decay: float, layer_decay: float
) -> list[dict[str, Any]]:
    """The authors' fine-tuning parameter groups (``get_finetune_param_groups``).

    timm's :func:`~timm.optim.param_groups_layer_decay` with the authors' layer ids as
    the group matcher: one group per (layer id, decay or not), with
    ``lr_scale = layer_decay ** (n + 1 - id)`` (see :func:`swin_layer_id`; parameters
    outside the Swin, e.g. a decoder, get id ``n + 1``, scale 1) and, as in the authors'
    code, ``lr = lr * lr_scale``. No weight decay on 1-D parameters, biases and
    :data:`NO_WEIGHT_DECAY_KEYWORDS`. Frozen parameters are left out. With
    ``layer_decay == 1``, timm's :func:`~timm.optim.param_groups_weight_decay` (any model).

    Args:
        module: the model (one Swin backbone inside, or none if ``layer_decay == 1``).
        lr: base learning rate.
        weight_decay: AdamW weight decay.
        layer_decay: lr decay per layer id (1 = none).

    Returns:
        Parameter groups for :class:`torch.optim.AdamW`.

    Raises:
        ValueError: if *module* has no Swin or several, and ``layer_decay != 1``.

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       Built by timm; groups no longer carry a ``group_name``.
    """
    if layer_decay == 1:
        groups = param_groups_weight_decay(
            module, weight_decay, no_weight_decay_list=_no_decay_names(module)
        )
    else:
        swins = find_swins(module)
        if len(swins) != 1:
            raise ValueError(
                f'layer_decay={layer_decay} needs one Swin backbone in the model, found '
                f'{len(swins)} ({sorted(swins)}): use a Swin backbone or layer_decay=1.'
            )
        [(prefix, depths)] = swins.items()
        grouped = _AuthorsLayerIds(module, prefix, depths)
        grouped.check_every_id()
        groups = param_groups_layer_decay(
            grouped, weight_decay, _no_decay_names(grouped), layer_decay=layer_decay
        )
    for group in groups:
        group.setdefault('lr_scale', 1.0)
        group['lr'] = lr * group['lr_scale']
    return groups


def _no_decay_names(module: nn.Module) -> list[str]:
    """Biases and :data:`NO_WEIGHT_DECAY_KEYWORDS` (timm excludes 1-D parameters itself).

    Whole names, not patterns: timm < 1.0.16 compares names to the list exactly.
    """
    return [
        name
        for name, _ in module.named_parameters()
        if name.endswith('.bias') or any(k in name for k in NO_WEIGHT_DECAY_KEYWORDS)
    ]


class _AuthorsLayerIds(nn.Module):
    """*module* for timm's ``param_groups_layer_decay``, grouped by :func:`swin_layer_id`.

    timm takes the layer ids from ``model.group_matcher()``; a timm Swin's own matcher
    gives patch merging an id of its own (``n + 5`` ids), the authors' rule does not.
    timm numbers the ids that occur in order; every id ``0 .. n + 1`` occurs in a Swin
    with a head, decoder or final norm, so its numbers are the authors' ids.
    """

    def __init__(self, module: nn.Module, prefix: str, depths: Sequence[int]) -> None:
        super().__init__()
        self.module = module
        self.prefix = f'module.{prefix}'
        self.depths = list(depths)

    def group_matcher(self, coarse: bool = False) -> Callable[[str], int]:
        """The authors' layer id of each parameter name (timm's matcher interface)."""
        return self.layer_id

    def check_every_id(self) -> None:
        """Refuse a model where an id is missing: timm would shift the scales down.

        Raises:
            ValueError: if no parameter takes one of the ids ``0 .. n + 1``.
        """
        found = {self.layer_id(name) for name, _ in self.named_parameters()}
        missing = sorted(set(range(sum(self.depths) + 2)) - found)
        if missing:
            raise ValueError(
                f'layer_decay: no parameter has the layer id(s) {missing} of the Swin '
                f'(depths {self.depths}): give the model a head or decoder after the '
                'Swin, or use layer_decay=1.'
            )

    def layer_id(self, name: str) -> int:
        """:func:`swin_layer_id` inside the Swin, ``n + 1`` (scale 1) outside it."""
        if name.startswith(self.prefix):
            return swin_layer_id(name[len(self.prefix) :], self.depths)
        return sum(self.depths) + 1


@contextmanager
def timm_model_kwargs(kwargs: Mapping[str, Any] | None) -> Iterator[None]:
    """Inside, every ``timm.create_model`` call also gets *kwargs*.

    TorchGeo's tasks (and smp's ``tu-`` encoders as TorchGeo builds them) call
    ``timm.create_model`` without model arguments; this passes them without copying the
    tasks' ``configure_models``. Keys of *kwargs* win over the caller's.

    Args:
        kwargs: e.g. ``{'window_size': 8, 'img_size': 256, 'drop_path_rate': 0.1}``.

    Yields:
        Nothing; the patch is undone on exit.

    .. versionadded:: 0.1
    """
    if not kwargs:
        yield
        return
    original = timm.create_model
    extra = dict(kwargs)

    def create_model(*args: Any, **given: Any) -> Any:
        return original(*args, **{**given, **extra})

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = original


class LayerDecayMixin(AuthorsSchedule):
    """The authors' fine-tuning optimiser and schedule, for any TorchGeo task with a Swin.

    AdamW (``betas``, eps 1e-8) over :func:`layer_decay_param_groups`; ``lr``,
    ``warmup_lr`` and ``min_lr`` scaled by the global batch / ``lr_batch_ref`` (the
    authors' linear rule, batch x devices x accumulation); timm's ``CosineLRScheduler``
    with their arguments (``warmup_epochs`` of linear warmup from ``warmup_lr``, cosine to
    ``min_lr``), stepped after every optimizer step with the count of *previous* steps, as
    their loop does (``step_update(epoch * num_steps + idx)`` after step ``idx``).

    As in the authors' code each group holds ``lr * scale`` *and* ``lr_scale = scale``;
    timm >= 0.6 multiplies scheduled values by ``lr_scale``, so a group's peak is
    ``lr * scale ** 2`` and its warmup start and floor are ``scale`` times ``warmup_lr``
    and ``min_lr``. Their environment had timm >= 0.5 (``str_to_pil_interp``) and
    torchmetrics >= 0.10 (``AveragePrecision(task=...)``, October 2022, when timm was
    0.6.x), so this is what they ran; with timm 0.5 the peak would be ``lr * scale``.

    The schedule is :class:`~torchgeo_gfm.tasks.schedule.AuthorsSchedule`, as in pretraining.
    ``model_kwargs`` go to ``timm.create_model`` (see :func:`timm_model_kwargs`).

    .. versionadded:: 0.1
    """

    model: nn.Module

    def __init__(
        self,
        *,
        model_kwargs: dict[str, Any] | None = None,
        layer_decay: float = 0.9,
        weight_decay: float = 0.05,
        warmup_lr: float = 1e-7,
        min_lr: float = 1e-5,
        warmup_epochs: float = 20,
        lr_batch_ref: int = 512,
        betas: Sequence[float] = (0.9, 0.999),
        **kwargs: Any,
    ) -> None:
        """Initialize the task with the authors' fine-tuning optimiser.

        Args:
            model_kwargs: extra arguments of ``timm.create_model`` (e.g. ``window_size``,
                ``img_size``, ``drop_path_rate``).
            layer_decay: lr decay per Swin layer id (0.9 in the paper; 1 = none).
            weight_decay: AdamW weight decay.
            warmup_lr: lr at the first step, at a global batch of *lr_batch_ref*.
            min_lr: final lr of the cosine, at a global batch of *lr_batch_ref*.
            warmup_epochs: epochs of linear warmup (fractions allowed).
            lr_batch_ref: reference global batch of the linear lr scaling rule (the
                task's ``lr`` is the lr at this batch).
            betas: AdamW betas.
            **kwargs: arguments of the TorchGeo task.
        """
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Build the task's model with ``model_kwargs`` passed to timm."""
        with timm_model_kwargs(self.hparams['model_kwargs']):
            super().configure_models()  # type: ignore[misc]

    def build_optimizer(
        self, lr_scale: float = 1.0, fused: bool | None = None
    ) -> torch.optim.AdamW:
        """AdamW over the authors' layer-decay groups.

        Args:
            lr_scale: factor of ``lr`` (global batch / ``lr_batch_ref`` in training).
            fused: use the fused AdamW kernel; None = where available (CPU, CUDA).

        Returns:
            The optimizer.
        """
        hp = self.hparams
        groups = layer_decay_param_groups(
            self.model, hp['lr'] * lr_scale, hp['weight_decay'], hp['layer_decay']
        )
        if fused is None:
            device = next(self.model.parameters()).device
            fused = device.type in ('cpu', 'cuda')
        return adamw(groups, hp, lr_scale, fused)


class FinetuneClassification(LayerDecayMixin, MultiLabelClassification):
    """TorchGeo's classification (with mAP for multi-label) fine-tuned as GFM's authors did.

    Adds to :class:`LayerDecayMixin`: mixup/cutmix with label smoothing in the training
    step (timm's :class:`~timm.data.Mixup`, the authors' configuration defaults: mixup
    0.8, cutmix 1.0, switch 0.5, per batch, smoothing 0.1). Multi-class training uses
    soft-target cross-entropy; multi-label keeps the task's loss (``bce``, equal to the
    authors' ``MultiLabelSoftMarginLoss``) on mixed multi-hot targets smoothed as their
    code does (``y * (1 - s) + s / C``). Validation and test losses are TorchGeo's.
    Training metrics compare predictions on mixed images with the original labels.

    An odd batch (the authors' loader drops incomplete batches and timm's mixup needs an
    even one) mixes all but its last image, whose target is only smoothed.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        mixup: float = 0.8,
        cutmix: float = 1.0,
        mixup_prob: float = 1.0,
        mixup_switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        **kwargs: Any,
    ) -> None:
        """Initialize a new FinetuneClassification task.

        Args:
            mixup: mixup alpha (0 = off).
            cutmix: cutmix alpha (0 = off).
            mixup_prob: probability of mixing a batch.
            mixup_switch_prob: probability of cutmix instead of mixup when both are on.
            label_smoothing: label smoothing of the training targets.
            **kwargs: arguments of :class:`LayerDecayMixin` and
                :class:`torchgeo.tasks.Classification`.
        """
        super().__init__(**kwargs)

    def configure_losses(self) -> None:
        """Initialize TorchGeo's loss and, with mixing, the mixup and training loss."""
        super().configure_losses()
        hp = self.hparams
        self.mixup_fn: Mixup | None = None
        self.train_criterion: nn.Module = self.criterion
        if hp['mixup'] <= 0 and hp['cutmix'] <= 0:
            return
        if hp['task'] == 'binary':
            raise ValueError(
                "mixup and cutmix need task='multiclass' or 'multilabel': set "
                'mixup=0 and cutmix=0 for a binary task.'
            )
        multilabel = hp['task'] == 'multilabel'
        self.mixup_fn = Mixup(
            mixup_alpha=hp['mixup'],
            cutmix_alpha=hp['cutmix'],
            prob=hp['mixup_prob'],
            switch_prob=hp['mixup_switch_prob'],
            mode='batch',
            # timm smooths multi-hot labels towards 0.5; the authors towards s / C
            label_smoothing=0.0 if multilabel else hp['label_smoothing'],
            num_classes=hp['num_labels'] if multilabel else hp['num_classes'],
            multi_label=multilabel,
        )
        if not multilabel:
            self.train_criterion = SoftTargetCrossEntropy()

    def mix(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a training batch and smooth its targets as the authors did.

        Args:
            x: images ``[B, C, H, W]`` (modified in place).
            y: class indices ``[B]`` or multi-hot labels ``[B, L]``.

        Returns:
            Mixed images and soft targets ``[B, classes]``.
        """
        fn = self.mixup_fn
        assert fn is not None
        even = x.shape[0] - x.shape[0] % 2
        parts = []
        if even:
            x[:even], target = fn(x[:even], y[:even])
            parts.append(target)
        if even < x.shape[0]:  # the odd one out: lambda 1, smoothed only
            smoothing = 0.0 if fn.multi_label else fn.label_smoothing
            parts.append(
                mixup_target(y[even:], fn.num_classes, 1.0, smoothing, fn.multi_label)
            )
        target = torch.cat(parts)
        if fn.multi_label:
            s = self.hparams['label_smoothing']
            target = target * (1 - s) + s / target.shape[1]
        return x, target

    def training_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the training loss on mixed images, and the training metrics.

        Args:
            batch: the output of your DataLoader.
            batch_idx: index of this batch.
            dataloader_idx: index of the current dataloader.

        Returns:
            The loss.
        """
        if self.mixup_fn is None:
            loss: Tensor = super().training_step(batch, batch_idx, dataloader_idx)
            return loss
        x, y = batch['image'], batch['label']
        x, target = self.mix(x.clone(), y)
        y_hat = self(x)
        self.train_metrics(y_hat, y)
        loss = self.train_criterion(y_hat, target)
        self.log('train_loss', loss, batch_size=x.shape[0])
        return loss


class FinetuneSemanticSegmentation(
    LayerDecayMixin, InferenceMetadataMixin, SemanticSegmentation
):
    """TorchGeo's semantic segmentation with the authors' fine-tuning optimiser.

    See :class:`LayerDecayMixin` (the decoder and head get the last layer id, scale 1).
    The authors released no segmentation recipe; this is their classification optimiser.

    .. versionadded:: 0.1
    """


class FinetuneChangeDetection(LayerDecayMixin, ChangeDetectionWithFigures):
    """Change detection (TorchGeo's, working figures) with the authors' optimiser.

    See :class:`LayerDecayMixin`; the shared Siamese encoder is the one Swin. The authors
    released no change-detection recipe; this is their classification optimiser.

    .. versionadded:: 0.1
    """


class FinetuneSuperResolution(LayerDecayMixin, SuperResolution):
    """Super-resolution with the authors' fine-tuning optimiser.

    See :class:`LayerDecayMixin` (the upsampling head gets the last layer id, scale 1).
    The authors released no super-resolution recipe; this is their classification
    optimiser.

    .. versionadded:: 0.1
    """
