# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM continual pretraining: SimMIM masked image modelling + feature distillation.

.. versionadded:: 0.1
"""

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.optim import param_groups_weight_decay
from torch import Tensor
from torchgeo.tasks import BaseTask

from .._utils import require
from ..models.pretraining import (
    GFMPretrainingModel,
    distill_loss,
    mim_loss,
    simmim_mask,
)
from .pretraining_weights import (
    DEFAULT_TEACHER,
    _create,
    _weights_arg,
    create_teacher,
    load_teacher_file,
)
from .schedule import AuthorsSchedule, adamw
from .utils import log_figure, plot_reconstruction

# public names that lived here before 0.2 (and the deprecated tasks.gfm forwards here)
__all__ = (
    'DEFAULT_TEACHER',
    'ContinualPretraining',
    'check_hparams',
    'load_teacher_file',
    'plot_reconstruction',
)


def check_hparams(hp: Any) -> None:
    """Refuse task arguments that would fail (or mislead) only later in training.

    Args:
        hp: the task's hyperparameters.

    Raises:
        ValueError: naming the first bad argument and what it should be.

    .. versionadded:: 0.1
    """

    def number(name: str, low: float, expected: str, strict: bool = False) -> None:
        value = hp[name]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (value > low if strict else value >= low)
        require(ok, name, value, expected)

    def integer(name: str, low: int) -> None:
        value = hp[name]
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        require(ok, name, value, f'an integer >= {low}')

    for name in ('in_channels', 'distill_stage', 'mask_patch_size', 'lr_batch_ref'):
        integer(name, 1)
    integer('plot_every_n_steps', 0)
    if hp['teacher_size'] is not None:
        integer('teacher_size', 1)
    number('mask_ratio', 0, 'a fraction in (0, 1), 0.6 in the paper', strict=True)
    require(
        hp['mask_ratio'] < 1, 'mask_ratio', hp['mask_ratio'], 'a fraction in (0, 1)'
    )
    number('lr', 0, 'a positive learning rate', strict=True)
    for name in ('warmup_lr', 'min_lr', 'weight_decay', 'warmup_epochs', 'alpha'):
        number(name, 0, 'a finite number >= 0')
    betas = list(hp['betas'])
    require(
        len(betas) == 2 and all(0 <= b < 1 for b in betas),
        'betas',
        hp['betas'],
        'two AdamW coefficients in [0, 1), e.g. (0.9, 0.999)',
    )
    std = list(hp['std'])
    require(
        len(std) == len(hp['mean']) and all(s > 0 for s in std),
        'std',
        hp['std'],
        'positive values, one per entry of mean',
    )


class ContinualPretraining(AuthorsSchedule, BaseTask):
    """GFM: continual pretraining with masked image modelling and distillation.

    A student Swin (random init, as in the paper) sees the SimMIM-masked image (a learned
    mask token replaces masked patch embeddings) and reconstructs it with a linear decoder
    from its last stage; at the same time, its pooled output of stage ``distill_stage``
    (Microsoft's numbering: the stage *and* its trailing patch merging) is projected and
    pulled towards the same feature of a frozen teacher that sees the unmasked image::

        L = L_mim + alpha * L_distill
        L_mim = sum(|x - x_rec| * M) / (sum(M) + 1e-5) / C
        L_distill = -mean(cos(P(f_student), stopgrad(f_teacher)))

    Optimisation follows the paper: AdamW without decay on 1-D parameters, biases, mask
    token and relative position tables; ``lr``, ``warmup_lr`` and ``min_lr`` scaled by the
    global batch (batch x devices x nodes x accumulation) / ``lr_batch_ref``; linear warmup
    for ``warmup_epochs`` then cosine, updated every optimizer step.

    Checkpoints leave out the frozen teacher: it is rebuilt from its source.

    If you use this task in your research, please cite:

    * https://arxiv.org/abs/2302.04476

    .. versionadded:: 0.1
    """

    ignore = ('weights', 'teacher_weights')

    #: The student, a timm Swin (NHWC stages).
    student: Any
    #: The frozen teacher, cut after ``distill_stage``.
    teacher: Any

    def __init__(
        self,
        model: str = 'gfm_swin_base',
        weights: bool | str | None = None,
        in_channels: int = 3,
        model_kwargs: dict[str, Any] | None = None,
        teacher: str = DEFAULT_TEACHER,
        teacher_weights: bool | str | None = True,
        teacher_kwargs: dict[str, Any] | None = None,
        teacher_size: int | None = None,
        distill_stage: int = 3,
        alpha: float = 1.0,
        mask_patch_size: int = 32,
        mask_ratio: float = 0.6,
        lr: float = 2e-4,
        warmup_lr: float = 1e-6,
        min_lr: float = 1e-5,
        weight_decay: float = 0.05,
        betas: Sequence[float] = (0.9, 0.999),
        warmup_epochs: float = 10,
        lr_batch_ref: int = 512,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
        grad_checkpointing: bool = False,
        compile: bool = False,
        plot_every_n_steps: int = 500,
        plot_dir: str | None = None,
        upstream_checkpoint: str | None = None,
    ) -> None:
        """Initialize a new ContinualPretraining task.

        Args:
            model: timm name of the student (a Swin; random init unless *weights*).
            weights: student init: None (random, as the paper), True (timm's pretrained
                weights of *model*) or a path (authors' ``gfm.pth``, exported backbone or
                any file timm can load for *model*).
            in_channels: channels of the images; student and teacher must take them.
            model_kwargs: extra arguments of ``timm.create_model`` for the student.
            teacher: timm name of the teacher (a Swin).
            teacher_weights: True (timm's pretrained weights, downloaded from the Hub),
                a path to a weights file (timm or Microsoft key names), or None/False for a
                random teacher (only useful for demos and tests).
            teacher_kwargs: extra arguments of ``timm.create_model`` for the teacher.
            teacher_size: input size of the teacher; None = its pretrained config's.
            distill_stage: stage whose pooled output is distilled, Microsoft numbering
                (1-based, including the patch merging that ends it); 3 as in the paper.
            alpha: weight of the distillation loss.
            mask_patch_size: side of the square masked blocks, in pixels.
            mask_ratio: fraction of blocks masked in each image.
            lr: base learning rate at a global batch of *lr_batch_ref*.
            warmup_lr: learning rate at the first step, scaled the same way.
            min_lr: final learning rate of the cosine, scaled the same way.
            weight_decay: AdamW weight decay.
            betas: AdamW betas.
            warmup_epochs: epochs of linear warmup (fractions allowed).
            lr_batch_ref: reference global batch of the linear lr scaling rule.
            mean: per-channel mean of the normalised images (figures only).
            std: per-channel std of the normalised images (figures only).
            grad_checkpointing: activation checkpointing of the student's stages.
            compile: ``torch.compile`` the model's forward (student and teacher).
            plot_every_n_steps: steps between reconstruction figures (0 = never).
            plot_dir: where figure PNGs go; default ``<log_dir>/reconstructions``.
            upstream_checkpoint: the authors' ``gfm.pth`` to continue pretraining from
                (see :meth:`load_upstream_checkpoint`); usable from a config file.
        """
        self.weights = _weights_arg(weights)
        self.teacher_weights = _weights_arg(teacher_weights)
        super().__init__()
        self._last_step_time: float | None = None
        self._last_plot_step = -1

    # ----------------------------------------------------------------- models
    def configure_models(self) -> None:
        """Build the student and the frozen teacher with their weights."""
        hp = self.hparams
        check_hparams(hp)
        # SimMIM/GFM pretraining uses no stochastic depth (timm's Swin default is 0.1)
        student_kwargs = {
            'in_chans': hp['in_channels'],
            'drop_path_rate': 0.0,
            **(hp['model_kwargs'] or {}),
        }
        student = _create(hp['model'], self.weights, student_kwargs, 'student')
        teacher = create_teacher(
            hp['teacher'],
            self.teacher_weights,
            hp['teacher_kwargs'],
            hp['teacher_size'],
            hp['distill_stage'],
            hp['in_channels'],
        )
        size = hp['teacher_size'] or int(teacher.patch_embed.img_size[-1])
        self.model = GFMPretrainingModel(student, teacher, hp['distill_stage'], size)
        self.patch_size = int(student.patch_embed.patch_size[0])
        if hp['mask_patch_size'] % self.patch_size:
            raise ValueError(
                f'mask_patch_size={hp["mask_patch_size"]} must be a multiple of the '
                f'student patch size {self.patch_size}.'
            )
        if hp['upstream_checkpoint']:
            self.load_upstream_checkpoint(hp['upstream_checkpoint'])
        if hp['grad_checkpointing']:
            student.set_grad_checkpointing(True)
        if hp['compile']:
            # the whole forward, static shapes: compiling stage by stage recompiles for
            # every stage size and fails in inductor (measured on an H200, torch 2.11)
            self.model.compile(dynamic=False)

    # ---------------------------------------------------------------- forward
    def forward(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction, projected student feature and teacher target.

        Args:
            images: normalised ``[B, C, H, W]``.
            mask: ``[B, H/p, W/p]`` at the student's patch resolution, 1 = masked.

        Returns:
            See :meth:`torchgeo_gfm.models.GFMPretrainingModel.forward`.
        """
        out: tuple[Tensor, Tensor, Tensor] = self.model(images, mask)
        return out

    def compute_loss(self, images: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Compute the GFM loss exactly as the paper (and the authors' code) defines it.

        Args:
            images: normalised float ``[B, C, H, W]``.
            mask: ``[B, H/p, W/p]`` at the student's patch resolution ``p``, 1 = masked.

        Returns:
            ``loss``, ``loss_mim`` and ``loss_distill`` (scalars);
            ``loss = loss_mim + alpha * loss_distill``.
        """
        return self._losses(images, mask)[0]

    def _losses(self, images: Tensor, mask: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The losses and the reconstruction."""
        reconstruction, feature, target = self(images, mask)
        loss_mim = mim_loss(images, reconstruction, mask)
        loss_distill = distill_loss(feature, target)
        loss = loss_mim + self.hparams['alpha'] * loss_distill
        out = {'loss': loss, 'loss_mim': loss_mim, 'loss_distill': loss_distill}
        return out, reconstruction

    def draw_mask(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw SimMIM masks for a batch, on its device.

        Args:
            images: ``[B, C, H, W]``.
            generator: optional random generator (reproducible masks).

        Returns:
            ``[B, H/p, W/p]`` float mask, 1 = masked.
        """
        self.check_size(images.shape[-2:])
        block = self.hparams['mask_patch_size']
        grid = (images.shape[-2] // block, images.shape[-1] // block)
        return simmim_mask(
            images.shape[0],
            grid,
            self.hparams['mask_ratio'],
            block // self.patch_size,
            images.device,
            generator,
        )

    def check_size(self, size: Sequence[int]) -> None:
        """Check that masking and the student can take images of *size*.

        Args:
            size: (height, width).

        Raises:
            ValueError: if not.
        """
        block, stride = self.hparams['mask_patch_size'], self.model.stride
        multiple = block * stride // math.gcd(block, stride)
        if any(int(s) % multiple for s in size):
            raise ValueError(
                f'Image size {tuple(int(s) for s in size)} cannot be masked in '
                f'{block}-pixel blocks and reconstructed at the student stride '
                f'{stride}: use a multiple of {multiple} (the paper uses 192).'
            )

    # --------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        """Check the datamodule's image size and channels before training starts.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        datamodule = (
            getattr(self.trainer, 'datamodule', None) if self._trainer else None
        )
        size = getattr(datamodule, 'size', None)
        if isinstance(size, int):
            self.check_size((size, size))
        elif isinstance(size, Sequence) and len(size) == 2:
            self.check_size(size)
        for attr in ('in_channels', 'num_channels', 'channels'):
            chans = getattr(datamodule, attr, None)
            if isinstance(chans, int):
                self._check_channels(chans, f'the datamodule ({attr})')

    def _check_channels(self, chans: int, source: str) -> None:
        if chans != self.hparams['in_channels']:
            raise ValueError(
                f'{source} gives {chans}-channel images but the task has in_channels='
                f'{self.hparams["in_channels"]}: set model.init_args.in_channels (and the '
                'teacher) to match the data.'
            )

    def training_step(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Mask, compute and log the losses.

        Args:
            batch: a dict with ``image``, normalised float ``[B, C, H, W]``.
            batch_idx: index of the batch.
            dataloader_idx: index of the dataloader.

        Returns:
            The loss.
        """
        images = batch['image']
        self._check_channels(images.shape[1], 'The batch')
        mask = self.draw_mask(images)
        losses, reconstruction = self._losses(images, mask)
        self._check_finite(losses)
        batch_size = images.shape[0]
        for key, value in losses.items():
            self.log(
                f'train_{key}', value, batch_size=batch_size, prog_bar=key == 'loss'
            )
        self._log_speed(batch_size)
        every = self.hparams['plot_every_n_steps']
        step = self.global_step
        if every and step % every == 0 and step != self._last_plot_step:
            self._last_plot_step = step  # once per step under gradient accumulation
            if self.trainer.is_global_zero:
                self._plot(images, mask, reconstruction.detach().float())
        return losses['loss']

    def _check_finite(self, losses: dict[str, Tensor]) -> None:
        """Stop training on a non-finite loss (on every rank at once, so DDP exits)."""
        finite = bool(torch.isfinite(losses['loss']).item())
        if self._trainer is not None:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            values = ', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())
            raise FloatingPointError(
                f'Non-finite GFM loss at step {self.global_step} ({values} on this rank). '
                'Training stopped so that no NaN weights are saved. Check the teacher and '
                'student weights and the input data; lower lr or use bf16 instead of fp16 '
                'if it happens after many steps. Resume from the last good checkpoint '
                'with --ckpt_path.'
            )

    def validation_step(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Log the losses with masks fixed by *batch_idx* (comparable across epochs).

        Args:
            batch: a dict with ``image``, normalised float ``[B, C, H, W]``.
            batch_idx: index of the batch (seeds its masks).
            dataloader_idx: index of the dataloader.
        """
        images = batch['image']
        self._check_channels(images.shape[1], 'The batch')
        gen = torch.Generator(images.device).manual_seed(batch_idx)
        mask = self.draw_mask(images, gen)
        losses = self.compute_loss(images, mask)
        for key, value in losses.items():
            self.log(f'val_{key}', value, batch_size=images.shape[0])

    def _log_speed(self, batch_size: int) -> None:
        """Log the learning rate and global images per second."""
        now = time.perf_counter()
        if self._last_step_time is not None:
            images = batch_size * self.trainer.world_size
            self.log('images_per_sec', images / (now - self._last_step_time))
        self._last_step_time = now
        optimizer = self.optimizers()
        if isinstance(optimizer, list):
            optimizer = optimizer[0]
        self.log('lr', optimizer.param_groups[0]['lr'], prog_bar=True)

    def on_train_epoch_start(self) -> None:
        """Do not count the data-loader restart into images per second."""
        self._last_step_time = None

    # -------------------------------------------------------------- figures
    def _plot(self, images: Tensor, mask: Tensor, x_rec: Tensor) -> None:
        """Log a reconstruction figure and save it as PNG."""
        fig = plot_reconstruction(
            images, mask, x_rec, self.hparams['mean'], self.hparams['std']
        )
        directory = self.hparams['plot_dir'] or self._default_plot_dir()
        log_figure(self.logger, 'reconstruction', fig, self.global_step, directory)

    def _default_plot_dir(self) -> str:
        # the logger's folder, not trainer.log_dir: that broadcasts, and only rank 0
        # plots, so a multi-process run would wait forever at its first figure
        log_dir = getattr(self.logger, 'log_dir', None) or self.trainer.default_root_dir
        return os.path.join(log_dir, 'reconstructions')

    # ------------------------------------------------------------- optimiser
    def build_optimizer(
        self, lr_scale: float = 1.0, fused: bool | None = None
    ) -> torch.optim.AdamW:
        """AdamW over the trainable parameters, in the paper's two weight-decay groups.

        Args:
            lr_scale: factor of ``lr`` (global batch / ``lr_batch_ref`` in training).
            fused: use the fused AdamW kernel; None = where available (CPU, CUDA): one
                kernel per step instead of a dozen per parameter (4x faster on CPU).

        Returns:
            The optimizer.

        .. versionadded:: 0.1
        """
        hp = self.hparams
        student = self.model.student
        skip = ['model.mask_token']
        skip += [f'model.student.{name}' for name in student.no_weight_decay()]
        # the authors' groups: no decay on 1-D parameters, biases and the names in skip
        groups = param_groups_weight_decay(
            self, hp['weight_decay'], no_weight_decay_list=skip
        )
        if fused is None:
            fused = self.model.mask_token.device.type in ('cpu', 'cuda')
        return adamw(groups, hp, lr_scale, fused)

    # ----------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the frozen teacher out of checkpoints.

        Args:
            checkpoint: the checkpoint being saved.
        """
        state = checkpoint['state_dict']
        for key in [k for k in state if k.startswith('model.teacher.')]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the rebuilt teacher's weights back so that loading stays strict.

        Args:
            checkpoint: the checkpoint being loaded.
        """
        state = checkpoint['state_dict']
        for key, value in self.model.teacher.state_dict().items():
            state.setdefault(f'model.teacher.{key}', value)

    def load_upstream_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load the authors' full pretraining checkpoint to continue pretraining.

        Loads the student, mask token, decoder and projector, and the teacher when the file
        has one (``teacher.*``).

        Args:
            path: the authors' ``gfm.pth`` (or a file in the same format).

        Raises:
            ValueError: if the file does not fit this task's architecture.
        """
        from .authors_checkpoint import load_into

        load_into(self, path)

    def export_backbone(self, path: str | os.PathLike[str]) -> Path:
        """Save the student as backbone weights (safetensors, timm names).

        Args:
            path: output file.

        Returns:
            The written path.
        """
        from ..models.checkpoint import save_backbone

        student = self.model.student.state_dict()
        state = {k: v.detach().cpu() for k, v in student.items()}
        save_backbone(state, path)
        return Path(path)
