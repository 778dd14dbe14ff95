# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The authors' optimisation, shared by pretraining and fine-tuning.

AdamW; ``lr``, ``warmup_lr`` and ``min_lr`` scaled by the global batch (batch x devices x
nodes x accumulation) / ``lr_batch_ref``; timm's ``CosineLRScheduler`` with linear warmup,
stepped after every optimizer step with the number of *previous* steps, as the authors' loop
does (``lr_scheduler.step_update(epoch * num_steps + idx)`` after step ``idx``).

.. versionadded:: 0.1
"""

import math
from collections.abc import Iterable
from typing import Any

import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from timm.scheduler import CosineLRScheduler


def adamw(
    params: Iterable[Any], hparams: Any, lr_scale: float, fused: bool
) -> torch.optim.AdamW:
    """AdamW with the task's ``lr`` x *lr_scale*, ``betas`` and eps 1e-8.

    Args:
        params: parameters or parameter groups.
        hparams: the task's hyperparameters (``lr``, ``betas``).
        lr_scale: factor of ``lr``.
        fused: use the fused kernel (one kernel per step instead of a dozen per parameter).

    Returns:
        The optimizer.

    .. versionadded:: 0.1
    """
    return torch.optim.AdamW(
        params,
        lr=hparams['lr'] * lr_scale,
        betas=tuple(hparams['betas']),
        eps=1e-8,
        fused=fused or None,
    )


class AuthorsSchedule:
    """Mixin for a LightningModule: the authors' optimiser setup and per-step schedule.

    The task provides ``build_optimizer(lr_scale, fused)`` (its parameter groups) and the
    hyperparameters ``lr``, ``warmup_lr``, ``min_lr``, ``warmup_epochs``, ``lr_batch_ref``.

    .. versionadded:: 0.1
    """

    hparams: Any
    trainer: Any
    global_step: int

    def build_optimizer(
        self, lr_scale: float = 1.0, fused: bool | None = None
    ) -> torch.optim.AdamW:
        """The task's AdamW (its parameter groups).

        Args:
            lr_scale: factor of ``lr``.
            fused: use the fused kernel; None = where available.

        Returns:
            The optimizer.
        """
        raise NotImplementedError

    def global_batch_size(self) -> int:
        """Global batch: batch x devices x nodes x gradient accumulation.

        Returns:
            The number of images per optimizer step.
        """
        trainer = self.trainer
        batch = getattr(getattr(trainer, 'datamodule', None), 'batch_size', None)
        if not isinstance(batch, int):
            loader = trainer.train_dataloader
            batch = getattr(loader, 'batch_size', None)
        if batch is None:
            raise ValueError(
                'Cannot find the batch size to scale the learning rate: give the '
                'datamodule a batch_size attribute or the DataLoader a batch_size.'
            )
        return int(batch) * trainer.world_size * trainer.accumulate_grad_batches

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """AdamW with the paper's groups and a per-step warmup + cosine schedule.

        Returns:
            Optimizer and learning rate scheduler.

        Raises:
            ValueError: if the run has no optimizer step (e.g. a batch larger than the
                training set with ``drop_last``).
        """
        trainer = self.trainer
        total = int(trainer.estimated_stepping_batches)
        if total < 1:
            raise ValueError(
                f'This run has {total} optimizer steps: the training set yields no full '
                f'batch of {self.global_batch_size() // trainer.world_size} images (per '
                'device, with gradient accumulation). Use a smaller batch_size or more data.'
            )
        per_epoch = max(1, total // max(1, trainer.max_epochs or 1))
        if math.isfinite(trainer.num_training_batches):
            # Lightning steps the optimizer on an epoch's last batch too: ceil
            batches = int(trainer.num_training_batches)
            per_epoch = max(1, -(-batches // trainer.accumulate_grad_batches))
        # Lightning refuses to clip gradients under mixed precision when the optimizer
        # unscales them itself, as fused AdamW does (even in bf16, which has no scaler)
        mixed = 'mixed' in str(trainer.precision)
        fused = False if mixed and trainer.gradient_clip_val else None
        scale = self.lr_scale()
        optimizer = self.build_optimizer(scale, fused=fused)
        scheduler = self.build_scheduler(optimizer, total, per_epoch, scale)
        config: Any = {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'},
        }
        return config

    def lr_scale(self) -> float:
        """The linear scaling rule: global batch / ``lr_batch_ref``.

        Returns:
            The factor of ``lr``, ``warmup_lr`` and ``min_lr``.
        """
        return self.global_batch_size() / self.hparams['lr_batch_ref']

    def build_scheduler(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        steps_per_epoch: int,
        lr_scale: float = 1.0,
    ) -> CosineLRScheduler:
        """The authors' schedule: linear warmup, then cosine to ``min_lr``, per step.

        Args:
            optimizer: the optimizer, at its peak lr.
            total_steps: optimizer steps of the whole run.
            steps_per_epoch: optimizer steps per epoch (for ``warmup_epochs``).
            lr_scale: factor of ``warmup_lr`` and ``min_lr`` (see :meth:`lr_scale`).

        Returns:
            timm's scheduler, stepped by :meth:`lr_scheduler_step`.

        .. versionadded:: 0.1
        """
        hp = self.hparams
        return CosineLRScheduler(
            optimizer,
            t_initial=total_steps,
            lr_min=hp['min_lr'] * lr_scale,
            warmup_lr_init=hp['warmup_lr'] * lr_scale,
            warmup_t=int(hp['warmup_epochs'] * steps_per_epoch),
            cycle_limit=1,
            t_in_epochs=False,
        )

    def lr_scheduler_step(self, scheduler: Any, metric: Any | None) -> None:
        """Step timm's scheduler by the previous step count, as the authors' loop.

        Args:
            scheduler: the :class:`timm.scheduler.CosineLRScheduler`.
            metric: unused.
        """
        scheduler.step_update(num_updates=self.global_step - 1)
