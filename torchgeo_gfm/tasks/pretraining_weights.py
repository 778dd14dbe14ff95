# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Where the pretraining task's student and teacher come from: timm names and weights files.

:class:`~torchgeo_gfm.tasks.ContinualPretraining` builds both networks here; a teacher
file must hold every weight the distilled feature depends on. The authors' full
checkpoint (student, decoder, projector, teacher at once) is read by
:mod:`.authors_checkpoint`.

.. versionadded:: 0.2
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import (
    checkpoint_filter_fn as swin_checkpoint_filter_fn,
)
from torch import Tensor, nn

from ..models.checkpoint import GFMCheckpointError, read_state_dict
from ..models.pretraining import check_swin

#: The teacher of the paper: Swin-B, ImageNet-22k supervised (timm / Hugging Face Hub).
DEFAULT_TEACHER = 'swin_base_patch4_window7_224.ms_in22k'


_BOOL_WORDS = {'true': True, 'false': False, 'none': None, 'null': None}


def _weights_arg(value: str | bool | None) -> str | bool | None:
    """``'true'``/``'false'``/``'null'`` typed on a command line mean the literal."""
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    return value


def _create(
    name: str, weights: str | bool | None, kwargs: dict[str, Any] | None, role: str
) -> Any:
    """Create a timm model; *weights* True = timm's own, a path = that file, else random."""
    args = dict(kwargs or {})
    args.setdefault('num_classes', 0)
    if isinstance(weights, str | os.PathLike):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f'Weights file {path} does not exist: pass an existing file, True for '
                "timm's pretrained weights, or None for random initialisation."
            )
        overlay = {'file': str(path)}
        return timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=overlay, **args
        )
    try:
        return timm.create_model(name, pretrained=bool(weights), **args)
    except TypeError as e:
        # e.g. img_size given to a non-Swin model: say what the model is instead
        with torch.device('meta'):
            model = timm.create_model(name, num_classes=0)
        check_swin(model, 1, role)
        raise ValueError(
            f'timm model {name!r} does not take {sorted(args)}: {e}'
        ) from e


def create_teacher(
    name: str,
    weights: str | bool | None,
    kwargs: dict[str, Any] | None,
    size: int | None,
    stage: int,
    in_channels: int,
) -> Any:
    """The frozen teacher's Swin with its weights, checked against the data's channels.

    Args:
        name: timm name of the teacher (a Swin).
        weights: True (timm's pretrained weights), a path (see :func:`load_teacher_file`)
            or None/False (random).
        kwargs: extra arguments of ``timm.create_model``.
        size: input size of the teacher; None = its pretrained config's.
        stage: the distilled stage, Microsoft numbering.
        in_channels: channels of the images.

    Returns:
        The (untruncated) teacher.

    Raises:
        ValueError: if it is not a Swin with *stage*, or takes other channels.
        GFMCheckpointError: if a weights file does not fit it.

    .. versionadded:: 0.2
    """
    args = dict(kwargs or {})
    if size:
        args.setdefault('img_size', size)
    file = weights if isinstance(weights, str | os.PathLike) else None
    teacher = _create(name, None if file else weights, args, 'teacher')
    check_swin(teacher, stage, 'teacher')
    if file is not None:
        load_teacher_file(teacher, file, stage)
    chans = int(teacher.patch_embed.proj.in_channels)
    if chans != in_channels:
        raise ValueError(
            f'The teacher {name} takes {chans} channels but in_channels='
            f'{in_channels}: pass teacher_kwargs={{"in_chans": {in_channels}}} to let '
            'timm adapt its first layer, or fix in_channels.'
        )
    return teacher


def load_teacher_file(
    teacher: nn.Module, path: str | os.PathLike[str], stage: int
) -> None:
    """Load a weights file into the teacher, requiring every weight distillation uses.

    timm and Microsoft Swin key names are accepted (timm's Swin filter converts them and
    fits relative-position tables to the window size). Everything the teacher computes up to
    and including MS stage *stage* must come from the file: a teacher left partly random
    would silently distil the wrong target.

    Args:
        teacher: the (untruncated) timm Swin teacher.
        path: the weights file (safetensors or a torch file, any format
            :func:`~torchgeo_gfm.models.checkpoint.read_state_dict` reads).
        stage: the distilled stage, Microsoft numbering.

    Raises:
        GFMCheckpointError: if the file lacks a weight the distillation uses or a shape
            does not fit.

    .. versionadded:: 0.1
    """
    expected = f'weights of the teacher {type(teacher).__name__} (timm or Microsoft Swin names)'
    state = read_state_dict(path, expected)
    if isinstance(teacher, SwinTransformer):
        state = swin_checkpoint_filter_fn(
            {k: v for k, v in state.items() if _in_model(teacher, k)}, teacher
        )
    missing = load_fitting(
        teacher,
        state,
        f'{path}: does not fit the teacher',
        '(teacher / teacher_kwargs)',
    )
    used = [k for k in missing if _distilled(k, stage)]
    if used:
        more = f' and {len(used) - 5} more' if len(used) > 5 else ''
        raise GFMCheckpointError(
            f'{path}: has no weights for {used[:5]}{more} of the teacher, which the '
            f'distillation of stage {stage} uses; found {len(state)} tensors matching '
            f'{len(teacher.state_dict()) - len(missing)} of the model. Is it a '
            f'checkpoint of another architecture? Pass weights of {expected}.'
        )


def _in_model(model: nn.Module, key: str) -> bool:
    """Whether the module owning *key* exists (timm's filter looks it up)."""
    try:
        model.get_submodule(key.rsplit('.', 1)[0])
    except AttributeError:
        return False
    return True


_STAGE = re.compile(r'^layers\.(\d+)\.(\w+)\.')


def _distilled(key: str, stage: int) -> bool:
    """Whether teacher weight *key* (timm names) feeds MS stage *stage*'s output."""
    if key.startswith('patch_embed.'):
        return True
    m = _STAGE.match(key)
    if not m:
        return False  # final norm and head: cut away
    index = int(m[1])
    return index < stage or (index == stage and m[2] == 'downsample')


def load_fitting(
    module: nn.Module, state: Mapping[str, Tensor], what: str, where: str
) -> list[str]:
    """Load *state* into *module* non-strictly; a shape that does not fit is an error.

    Args:
        module: the network.
        state: its weights (extra keys are ignored).
        what: the start of the error message (``'<file>: the decoder does not fit'``).
        where: where the architecture is chosen (``'(teacher / teacher_kwargs)'``).

    Returns:
        The keys of *module* that *state* lacks (the caller says which it needs).

    Raises:
        GFMCheckpointError: if a tensor's shape does not fit.

    .. versionadded:: 0.2
    """
    try:
        missing, _ = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # size mismatch
        raise GFMCheckpointError(
            f'{what} ({e}): build it with the architecture of these weights {where}.'
        ) from None
    return list(missing)
