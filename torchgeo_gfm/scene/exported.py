# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""What ``predict`` and ``embed`` do differently for an exported model (``.onnx``, ``.pt2``).

An exported file is run as a checkpoint is, by the same engine (tiles, blending, nodata,
COG and GeoParquet outputs), with what the file fixed at export:

* its tile (chip) size: the graph takes that size only, so it is the default and any
  other is refused; a scene smaller than the tile is padded, never a smaller tile;
* its normalisation, inside the graph: ``--mean/--std/--normalize/--sensor`` are
  refused (export again to change it); the sensor it records checks the bands;
* fp32: ``--precision bf16`` is refused, ``auto`` runs fp32.

``--device auto`` falls back to the CPU where the runtime cannot use the GPU that
PyTorch sees (onnxruntime without its CUDA provider). The outputs record the file
(:func:`provenance`).

.. versionadded:: 0.2
"""

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal, TypeGuard

import torch

from .._utils import sha256sum
from ..export.checks import check_expect
from ..export.metadata import ExportError
from ..export.runtime import ExportedModel, is_exported, load_exported

logger = logging.getLogger(__name__)

__all__ = (
    'check_options',
    'exported_precision',
    'is_exported_model',
    'load_model',
    'provenance',
)


def is_exported_model(
    model: object,
) -> TypeGuard[str | os.PathLike[str] | ExportedModel]:
    """Whether *model* is an exported file (by its suffix) or a loaded one.

    Args:
        model: a path, a loaded model, or anything else.

    Returns:
        True for ``.onnx``/``.pt2`` paths and :class:`ExportedModel` objects.

    .. versionadded:: 0.2
    """
    return isinstance(model, ExportedModel) or is_exported(model)


def check_options(
    where: str,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: str | None = None,
    sensor: object = None,
) -> None:
    """Refuse normalisation options for an exported file: its graph normalises.

    Args:
        where: the file, for the message.
        mean: ``--mean``.
        std: ``--std``.
        normalize: ``--normalize``.
        sensor: ``--sensor``.

    Raises:
        ExportError: naming the first option given.

    .. versionadded:: 0.2
    """
    given = {'--mean': mean, '--std': std, '--normalize': normalize, '--sensor': sensor}
    for option, value in given.items():
        if value is not None:
            raise ExportError(
                f'{option}: {where} normalises its inputs inside its graph (fixed at '
                f'export); drop {option}. To normalise otherwise, export the checkpoint '
                'again (torchgeo-gfm export, with --sensor for weights that record none)'
            )


def exported_precision(mode: str, where: str) -> Literal['fp32']:
    """The precision an exported graph runs in: fp32; ``bf16`` is refused.

    Args:
        mode: a checked ``--precision`` ('fp32', 'bf16' or 'auto').
        where: the file, for the message.

    Returns:
        'fp32'.

    Raises:
        ExportError: for 'bf16'.

    .. versionadded:: 0.2
    """
    if mode == 'bf16':
        raise ExportError(
            f'--precision bf16: {where} is an fp32 graph (bf16 autocast applies to '
            'PyTorch modules, not to an exported file); drop --precision (or pass fp32)'
        )
    if mode == 'auto':
        logger.info('Precision: fp32 (%s is an fp32 graph)', where)
    return 'fp32'


def load_model(
    model: str | os.PathLike[str] | ExportedModel,
    expect: Literal['task', 'backbone'],
    device: str | torch.device,
    target: torch.device,
) -> ExportedModel:
    """The exported model on *target*, checked to be a task or a backbone.

    Args:
        model: the file, or a model already loaded (moved to *target*).
        expect: 'task' (``predict``) or 'backbone' (``embed``).
        device: the ``--device`` given; with 'auto', the CPU where the runtime cannot
            use *target*.
        target: the device it resolved to (:func:`~.engine.check_device`).

    Returns:
        The model.

    Raises:
        ExportError: for a file :func:`~torchgeo_gfm.export.load_exported` refuses, a
            model of the other kind, or a device the runtime cannot use.

    .. versionadded:: 0.2
    """
    if isinstance(model, ExportedModel):
        check_expect(model.meta, expect, model.path)
    try:
        return _place(model, expect, target)
    except ExportError as error:
        if device != 'auto' or target.type == 'cpu':
            raise
        logger.warning(
            '--device auto: running on the CPU (%s)', str(error).splitlines()[0]
        )
        return _place(model, expect, torch.device('cpu'))


def _place(
    model: str | os.PathLike[str] | ExportedModel, expect: str, target: torch.device
) -> ExportedModel:
    if isinstance(model, ExportedModel):
        return model.to(target)
    return load_exported(model, expect=expect, device=target)  # type: ignore[arg-type]


def provenance(model: ExportedModel) -> dict[str, Any]:
    """What the outputs record of an exported model.

    Args:
        model: the model.

    Returns:
        ``path``, ``backend`` ('onnxruntime' or 'torch.export'), ``sha256`` of the
        file, and ``source``/``source_sha256``: the checkpoint it was exported from.

    .. versionadded:: 0.2
    """
    return {
        'path': model.path,
        'backend': model.backend,
        'sha256': sha256sum(model.path),
        'source': model.meta.source,
        'source_sha256': model.meta.source_sha256,
    }
