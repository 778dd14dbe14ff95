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
from timm.data import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    resolve_model_data_config,
)
from timm.optim import param_groups_weight_decay
from torch import Tensor
from torchgeo.tasks import BaseTask
from torchvision.transforms.functional import normalize

from .._utils import require
from ..models.pretraining import (
    GFMPretrainingModel,
    distill_loss,
    mim_loss,
    simmim_mask,
)
from ..sensors import Sensor, get_sensor
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
    'TEACHER_INPUTS',
    'ContinualPretraining',
    'check_hparams',
    'load_teacher_file',
    'plot_reconstruction',
)


#: what a teacher sees with a sensor: the true colour (the paper's RGB teacher) or the bands
TEACHER_INPUTS = ('true_colour', 'bands')


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

    for name in ('distill_stage', 'mask_patch_size', 'lr_batch_ref'):
        integer(name, 1)
    integer('plot_every_n_steps', 0)
    for name in ('teacher_size', 'in_channels'):
        if hp.get(name) is not None:
            integer(name, 1)
    stage = hp.get('teacher_stage')
    require(
        stage is None or (isinstance(stage, int) and not isinstance(stage, bool)),
        'teacher_stage',
        stage,
        'null or an integer (a Microsoft stage of a Swin, a timm feature_info index)',
    )
    require(
        hp.get('teacher_input', 'true_colour') in TEACHER_INPUTS,
        'teacher_input',
        hp.get('teacher_input'),
        ' or '.join(repr(t) for t in TEACHER_INPUTS),
    )
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

    **Multispectral** (``sensor``): the batch holds the sensor's stored values (e.g.
    Sentinel-2 DN), augmented but not normalised. The student (C = ``sensor.num_bands``
    inputs; RGB weights fitted by the band rule, ``rgb_indices = sensor.rgb``) sees
    ``sensor.normalize(x)`` and reconstructs all C bands of it; the teacher sees
    ``normalize(sensor.true_colour(x))`` with its own (ImageNet) statistics, or the
    normalised bands (``teacher_input='bands'``). Without a sensor the datamodule
    normalises and both see its images, as in the paper.

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
        in_channels: int | None = None,
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
        sensor: str | dict[str, Any] | None = None,
        teacher_input: str = 'true_colour',
        teacher_stage: int | None = None,
    ) -> None:
        """Initialize a new ContinualPretraining task.

        Args:
            model: timm name of the student (a Swin; random init unless *weights*).
            weights: student init: None (random, as the paper), True (timm's pretrained
                weights of *model*) or a path (authors' ``gfm.pth``, exported backbone or
                any file timm can load for *model*; RGB weights are fitted to the
                sensor's bands, multispectral ones must have its band count).
            in_channels: bands of the images; None = 3, or the sensor's band count.
            model_kwargs: extra arguments of ``timm.create_model`` for the student.
            teacher: timm name of the teacher (a Swin as in the paper, or any timm model)
                or a TorchGeo weights name (``'ResNet50_Weights.SENTINEL2_ALL_MOCO'``).
            teacher_weights: True (pretrained weights, downloaded from the Hub), a path
                to a weights file (timm or Microsoft key names; timm teachers only), or
                None/False for a random teacher (only useful for demos and tests).
            teacher_kwargs: extra arguments of the teacher's builder (``timm.create_model``
                or TorchGeo's).
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
            sensor: the sensor of un-normalised multispectral batches: a shipped name
                (``'s2'``), a YAML file or its dict (see :func:`~torchgeo_gfm.sensors.get_sensor`);
                None = RGB batches normalised by the datamodule. Recorded in checkpoints
                as ``sensor.to_dict()``.
            teacher_input: with a sensor, what the teacher sees: ``'true_colour'`` (3
                bands, normalised with the teacher's statistics) or ``'bands'`` (the
                student's normalised bands, unmasked).
            teacher_stage: the teacher's distilled stage: Microsoft numbering for a Swin
                (default *distill_stage*), else an index of its timm ``feature_info``
                (default -1, the last); its output is average pooled.

        .. versionchanged:: 0.2
           *sensor*, *teacher_input* and *teacher_stage*; any timm or TorchGeo teacher.
        """
        self.weights = _weights_arg(weights)
        self.teacher_weights = _weights_arg(teacher_weights)
        super().__init__()
        self._last_step_time: float | None = None
        self._last_plot_step = -1
        self._values_checked = False

    # ----------------------------------------------------------------- models
    def configure_models(self) -> None:
        """Build the student and the frozen teacher with their weights."""
        hp = self.hparams
        check_hparams(hp)
        self.sensor = self._resolve_sensor()
        # SimMIM/GFM pretraining uses no stochastic depth (timm's Swin default is 0.1)
        student_kwargs = {
            'in_chans': hp['in_channels'],
            'drop_path_rate': 0.0,
            **(hp['model_kwargs'] or {}),
        }
        if self.sensor is not None and hp['model'] == 'gfm_swin_base':
            student_kwargs.setdefault('rgb_indices', self.sensor.rgb)  # the band rule
        student = _create(hp['model'], self.weights, student_kwargs, 'student')
        bands, given = hp['in_channels'], 'in_channels'
        if self.sensor is not None and hp['teacher_input'] == 'true_colour':
            bands, given = 3, f'the true colour of sensor {self.sensor.name}'
        elif self.sensor is not None:
            given = f"teacher_input='bands' of sensor {self.sensor.name}"
        teacher = create_teacher(
            hp['teacher'],
            self.teacher_weights,
            hp['teacher_kwargs'],
            hp['teacher_size'],
            hp['distill_stage'],
            bands,
            given,
        )
        config = resolve_model_data_config(teacher)
        #: the statistics the teacher was trained with (true colour is normalised so)
        self.teacher_mean, self.teacher_std = config['mean'], config['std']
        size = hp['teacher_size'] or _input_size(teacher, config)
        self.model = GFMPretrainingModel(
            student, teacher, hp['distill_stage'], size, hp['teacher_stage']
        )
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

    def _resolve_sensor(self) -> Sensor | None:
        """The sensor; records it (as a dict) and its band count in the hparams."""
        hp = self.hparams
        if hp['sensor'] is None:
            hp['in_channels'] = hp['in_channels'] or 3
            return None
        sensor = get_sensor(hp['sensor'])
        if hp['in_channels'] not in (None, sensor.num_bands):
            raise ValueError(
                f'in_channels={hp["in_channels"]} but sensor {sensor.name} has '
                f'{sensor.num_bands} bands: leave in_channels out (null) or set '
                f'{sensor.num_bands}.'
            )
        hp['in_channels'] = sensor.num_bands
        hp['sensor'] = sensor.to_dict()  # checkpoints and exports carry the sensor
        return sensor

    def model_inputs(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """What the student and the teacher see of a batch's images.

        Args:
            images: the batch's ``[B, C, H, W]``: normalised by the datamodule without a
                sensor, the sensor's stored values with one.

        Returns:
            The student's normalised images (reconstructed by MIM) and the teacher's.

        .. versionadded:: 0.2
        """
        if self.sensor is None:
            return images, images
        student = self.sensor.normalize(images)
        if self.hparams['teacher_input'] == 'bands':
            return student, student
        colour = self.sensor.true_colour(images)
        return student, normalize(colour, self.teacher_mean, self.teacher_std)

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
            images: the batch's float ``[B, C, H, W]`` (see :meth:`model_inputs`).
            mask: ``[B, H/p, W/p]`` at the student's patch resolution ``p``, 1 = masked.

        Returns:
            ``loss``, ``loss_mim`` and ``loss_distill`` (scalars);
            ``loss = loss_mim + alpha * loss_distill``.
        """
        return self._losses(images, mask)[0]

    def _losses(
        self, images: Tensor, mask: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The losses, the reconstruction and the normalised images it reconstructs."""
        student_images, teacher_images = self.model_inputs(images)
        reconstruction, feature, target = self.model(
            student_images, mask, teacher_images
        )
        loss_mim = mim_loss(student_images, reconstruction, mask)
        loss_distill = distill_loss(feature, target)
        loss = loss_mim + self.hparams['alpha'] * loss_distill
        out = {'loss': loss, 'loss_mim': loss_mim, 'loss_distill': loss_distill}
        return out, reconstruction, student_images

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
        if getattr(datamodule, 'sensor', None) is not None:
            self._check_datamodule_sensor(datamodule)

    def _check_datamodule_sensor(self, datamodule: Any) -> None:
        """A datamodule of un-normalised sensor values needs the task's sensor to match."""
        theirs = get_sensor(datamodule.sensor)
        name = type(datamodule).__name__
        if self.sensor is None:
            raise ValueError(
                f'{name} yields un-normalised values of sensor {theirs.name} but the '
                f'task has no sensor: pass sensor={theirs.name!r} to the task '
                '(model.init_args.sensor).'
            )
        if theirs.bands != self.sensor.bands:
            raise ValueError(
                f'{name} yields sensor {theirs.name} ({theirs.num_bands} bands: '
                f'{", ".join(theirs.bands)}) but the task has sensor {self.sensor.name} '
                f'({self.sensor.num_bands}: {", ".join(self.sensor.bands)}): give both '
                'the same sensor.'
            )

    def _check_batch(self, images: Tensor) -> None:
        """Band count of every batch; the value range of the first (uint16 without a sensor)."""
        datamodule = (
            getattr(self._trainer, 'datamodule', None) if self._trainer else None
        )
        where = (
            f'The batch of {type(datamodule).__name__}' if datamodule else 'The batch'
        )
        if self.sensor is not None:
            self.sensor.check_bands(images.shape[1], where)
        else:
            self._check_channels(images.shape[1], where)
        if self._values_checked:
            return
        self._values_checked = True
        if self.sensor is None and bool(images.amax() > 255):
            raise ValueError(
                f'{where} has values up to {images.amax().item():.6g}: un-normalised '
                'data such as uint16 reflectance. Pass sensor= (e.g. sensor: s2) so that '
                'the task normalises it and renders true colour for the teacher, or '
                'normalise it in the datamodule.'
            )

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
        self._check_batch(images)
        mask = self.draw_mask(images)
        losses, reconstruction, normalised = self._losses(images, mask)
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
                self._plot(normalised, mask, reconstruction.detach().float())
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
        self._check_batch(images)
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
        """Log a reconstruction figure (true colour with a sensor) and save it as PNG."""
        mean, std = self.hparams['mean'], self.hparams['std']
        if self.sensor is not None:  # normalised red, green, blue -> true colour
            s, rgb = self.sensor, list(self.sensor.rgb)
            images, x_rec = images[:, rgb], x_rec[:, rgb]
            mean = [(s.mean[i] * s.scale + s.offset) / s.white for i in rgb]
            std = [s.std[i] * s.scale / s.white for i in rgb]
        fig = plot_reconstruction(images, mask, x_rec, mean, std)
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


def _input_size(teacher: Any, config: dict[str, Any]) -> int:
    """The side of the teacher's input: a Swin's built size, else its pretrained config's."""
    patch_embed = getattr(teacher, 'patch_embed', None)
    img_size = getattr(patch_embed, 'img_size', None)
    return int(img_size[-1]) if img_size else int(config['input_size'][-1])
