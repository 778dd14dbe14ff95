# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The Lightning precision plugin of the configs, :class:`torchgeo_gfm.precision.NativeMixedPrecision`.

Apart from :mod:`torchgeo_gfm.precision` so that inference imports no Lightning; that
module exposes the class (its public home: configs name it
``torchgeo_gfm.precision.NativeMixedPrecision``).

.. versionadded:: 0.2
"""

import contextlib
from collections.abc import Generator
from typing import Literal

import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.enums import GradClipAlgorithmType
from torch.optim import Optimizer

from .precision import _reason, native_bf16


class NativeMixedPrecision(MixedPrecision):
    """Lightning's bf16 mixed precision where it is native, fp32 where it is not.

    Weights, gradients, optimizer and losses stay fp32 (as Lightning's ``bf16-mixed``);
    only the forward runs under bf16 autocast, and only on hardware with native bf16. The
    choice is logged once. Use it in a config instead of ``precision``::

        trainer:
          plugins:
            - class_path: torchgeo_gfm.precision.NativeMixedPrecision

    Force either with ``--trainer.plugins.init_args.mode bf16`` or ``fp32``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        mode: Literal['auto', 'bf16', 'fp32'] = 'auto',
        device: Literal['auto', 'cpu', 'cuda'] = 'auto',
    ) -> None:
        """Initialize a new NativeMixedPrecision plugin.

        Args:
            mode: ``'auto'`` (bf16 where native), ``'bf16'`` or ``'fp32'`` (forced).
            device: where training runs; ``'auto'``: CUDA if available, else CPU.
        """
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        super().__init__('bf16-mixed', device)
        self.mode = mode
        self.enabled = mode == 'bf16' or (mode == 'auto' and native_bf16(device))
        if not self.enabled:  # what the run is: Lightning's summary, fused AdamW's rule
            self.precision = '32-true'
        reason = 'forced' if mode != 'auto' else _reason(device)
        picked = 'bf16 autocast' if self.enabled else 'fp32'
        rank_zero_info(f'Precision: {picked} on {device} ({reason})')

    def clip_gradients(
        self,
        optimizer: Optimizer,
        clip_val: float = 0.0,
        gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM,
    ) -> None:
        """Clip as Lightning does; in fp32 a fused optimizer may be clipped too.

        Lightning's mixed precision refuses to clip for an optimizer that unscales
        gradients itself (fused AdamW); in fp32 there is nothing to unscale.

        Args:
            optimizer: the optimizer whose gradients are clipped.
            clip_val: the clipping value (0: none).
            gradient_clip_algorithm: 'norm' or 'value'.
        """
        if self.enabled:
            super().clip_gradients(optimizer, clip_val, gradient_clip_algorithm)
        else:
            Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)

    @contextlib.contextmanager
    def forward_context(self) -> Generator[None, None, None]:
        """bf16 autocast if enabled, else nothing."""
        if self.enabled:
            with self.autocast_context_manager():
                yield
        else:
            yield


# its public name, in configs (class_path), saved configs and the docs
NativeMixedPrecision.__module__ = 'torchgeo_gfm.precision'
