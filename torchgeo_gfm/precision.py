# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""bf16 where the hardware computes it natively, fp32 where it would be emulated.

A CPU with AVX512-BF16 or AMX runs a bf16-autocast GFM step about 3x faster than fp32; a CPU
without them emulates bf16 and is slower than fp32. :func:`native_bf16` tells which;
:class:`NativeMixedPrecision` is the Lightning precision plugin that the configs use, so that
``torchgeo fit`` picks bf16 autocast or fp32 for the machine it runs on and says which.
Inference (``predict``, ``embed``) takes a :data:`Mode` instead, fp32 by default, so that
the outputs users keep do not depend on the CPU unless they ask (:func:`autocast`).

Only the plugin needs Lightning: it is imported on first use, so inference (the scene
engine, an exported model) imports this module without Lightning installed.

.. versionadded:: 0.1
"""

import contextlib
import functools
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from ._precision_plugin import NativeMixedPrecision

__all__ = (
    'MODES',
    'NativeMixedPrecision',
    'autocast',
    'cpu_flags',
    'describe',
    'native_bf16',
    'resolve',
)

#: CPU flags (``/proc/cpuinfo``) of native bf16 matrix instructions
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Flags of this machine's CPU (empty where ``/proc/cpuinfo`` does not exist).

    Returns:
        The flags of the first processor.

    .. versionadded:: 0.1
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: str | torch.device = 'cpu') -> bool:
    """Whether *device* computes bf16 matrix products natively.

    Args:
        device: ``'cpu'``, ``'cuda'`` or a :class:`torch.device`.

    Returns:
        True for CUDA devices that support bf16 and CPUs with AVX512-BF16 or AMX.

    .. versionadded:: 0.1
    """
    kind = torch.device(device).type
    if kind == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return kind == 'cpu' and any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


#: ``--precision`` of inference: fp32 (the same output on every machine), bf16, or auto
Mode = Literal['fp32', 'bf16', 'auto']
MODES: tuple[Mode, ...] = ('fp32', 'bf16', 'auto')


def resolve(mode: str, device: str | torch.device) -> Literal['fp32', 'bf16']:
    """The precision a *mode* means on *device*.

    Args:
        mode: ``'fp32'``, ``'bf16'`` (forced) or ``'auto'`` (bf16 where native).
        device: where the model runs.

    Returns:
        ``'fp32'`` or ``'bf16'``.

    Raises:
        ValueError: if *mode* is not one of :data:`MODES`.

    .. versionadded:: 0.1
    """
    if mode not in MODES:
        raise ValueError(f'precision {mode!r}: expected one of {", ".join(MODES)}')
    if mode == 'auto':
        return 'bf16' if native_bf16(device) else 'fp32'
    return 'bf16' if mode == 'bf16' else 'fp32'


def describe(mode: str, device: str | torch.device) -> str:
    """What *mode* picks on *device*, and why, for the log.

    Args:
        mode: as for :func:`resolve`.
        device: where the model runs.

    Returns:
        E.g. ``'bf16 autocast on cpu (native bf16 on this CPU: amx_bf16)'``.

    .. versionadded:: 0.1
    """
    kind = torch.device(device).type
    picked = 'bf16 autocast' if resolve(mode, kind) == 'bf16' else 'fp32'
    reason = f'--precision {mode}' if mode != 'auto' else _reason(kind)
    return f'{picked} on {kind} ({reason})'


def autocast(
    device: str | torch.device, mode: str
) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on *device* if *mode* resolves to bf16 there, else nothing (fp32).

    For inference and checks outside Lightning (scene prediction, export checks). *mode*
    has no default: whether results may change with the CPU is the caller's decision
    (the scene engine's default is fp32, the same output everywhere).

    Args:
        device: where the model runs.
        mode: ``'fp32'``, ``'bf16'`` or ``'auto'`` (bf16 where native), see :func:`resolve`.

    Returns:
        A context manager.

    .. versionadded:: 0.1
    """
    kind = torch.device(device).type
    if resolve(mode, kind) == 'bf16':
        return torch.autocast(kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _reason(device: str) -> str:
    """Why ``auto`` picks what it picks on *device*."""
    if device == 'cuda':
        return 'bf16 supported' if native_bf16(device) else 'no bf16 on this GPU'
    if native_bf16(device):
        found = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
        return f'native bf16 on this CPU: {", ".join(found)}'
    return 'this CPU has no AVX512-BF16/AMX: bf16 would be emulated and slower'


def __getattr__(name: str) -> Any:
    # the Lightning plugin is imported on first use: inference (the scene engine, an
    # exported model) uses the functions above and runs without Lightning
    if name == 'NativeMixedPrecision':
        from ._precision_plugin import NativeMixedPrecision

        return NativeMixedPrecision
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
