# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Load the authors' full GFM pretraining checkpoint into a :class:`~torchgeo_gfm.tasks.ContinualPretraining`.

.. versionadded:: 0.1
"""

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..models.checkpoint import GFMCheckpointError, load_upstream_checkpoint
from ..models.swin_state import (
    student_state_dict,
    teacher_state_dict,
    upstream_mask_token,
)
from .pretraining_weights import load_fitting


def _load_strict(
    module: nn.Module, state: Mapping[str, Tensor], what: str, path: str
) -> None:
    """Load *state* into *module*, every key of the module required."""
    where = "(the checkpoint's, e.g. model='gfm_swin_base')"
    missing = load_fitting(module, state, f'{path}: the {what} does not fit', where)
    if missing:
        raise GFMCheckpointError(
            f'{path}: the {what} lacks {len(missing)} weights of this task '
            f"(e.g. {missing[:3]}); build the task with the checkpoint's architecture."
        )


def _subset(model: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in model.items() if k.startswith(prefix)}


def load_into(task: Any, path: str | os.PathLike[str]) -> None:
    """Load student, mask token, decoder, projector and (if present) teacher.

    Args:
        task: a :class:`~torchgeo_gfm.tasks.ContinualPretraining`.
        path: the authors' ``gfm.pth`` (or a file in its format).

    Raises:
        GFMCheckpointError: if the file or its parts do not fit the task.

    .. versionadded:: 0.1
    """
    name = os.fspath(path)
    upstream = load_upstream_checkpoint(name)
    net = (
        task.model
    )  # GFMPretrainingModel: student, mask token, decoder, projector, teacher
    model = upstream['model']
    student = student_state_dict(upstream)
    unexpected = set(student) - set(net.student.state_dict())
    if unexpected:
        raise GFMCheckpointError(
            f'{name}: the student has weights this task lacks (e.g. '
            f'{sorted(unexpected)[:3]}); build the task with its architecture.'
        )
    _load_strict(net.student, student, 'student (encoder.*)', name)
    if 'encoder.mask_token' not in model:
        raise GFMCheckpointError(
            f"{name}: no 'encoder.mask_token'; expected the authors' GFM pretraining "
            'checkpoint (SimMIM student with its mask token).'
        )
    token = upstream_mask_token(upstream)
    if token.numel() != net.mask_token.numel():
        raise GFMCheckpointError(
            f'{name}: mask token of {token.numel()} values, this task has '
            f'{net.mask_token.numel()}.'
        )
    with torch.no_grad():
        net.mask_token.copy_(token.reshape(net.mask_token.shape))
    _load_strict(net.decoder, _subset(model, 'decoder.'), 'decoder', name)
    _load_strict(net.projector, _subset(model, 'projector.'), 'projector', name)
    teacher = teacher_state_dict(upstream)
    if teacher:
        _load_strict(net.teacher, teacher, 'teacher (teacher.*)', name)
