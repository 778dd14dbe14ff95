# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Swin state dicts without a model at hand: the authors' checkpoint and what keys describe.

The authors' ``gfm.pth`` holds, under ``model``, their SimMIM model in Microsoft Swin names:
the student (``encoder.*``, with ``encoder.mask_token``), the frozen ImageNet-22k teacher
(``teacher.*``), the decoder and the projector. :func:`student_state_dict` and
:func:`teacher_state_dict` return the two Swins in timm names; :func:`describe_swin` reads
a Swin's architecture from its keys and shapes, and :func:`check_complete_student` refuses
weights that are not a whole student.

Loading into a model goes through :func:`torchgeo_gfm.models.checkpoint_filter_fn`
instead, which also fits windows and bands to that model.

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.models.gfm_swin`.
"""

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn
from torch import Tensor

from .checkpoint import GFMCheckpointError

#: Swin-B, as in the GFM paper (student and ImageNet-22k teacher); any input size
SWIN_B_ARGS: dict[str, Any] = {
    'patch_size': 4,
    'embed_dim': 128,
    'depths': (2, 2, 18, 2),
    'num_heads': (4, 8, 16, 32),
    'strict_img_size': False,
}

PATCH_EMBED = 'patch_embed.proj.weight'
# timm names, those of its feature extractor (layers_0) and Microsoft's
_BLOCK = re.compile(r'^layers[._](\d+)\.blocks\.(\d+)\.')


def unwrap_student(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The Swin in *checkpoint*, as stored: the authors' student, or the dict itself.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``), or Swin weights.

    Returns:
        The student less its mask token (teacher, decoder... dropped), in the key names of
        the file (Microsoft's for the authors' checkpoint).

    .. versionadded:: 0.2
    """
    state_dict = checkpoint.get('model', checkpoint)
    if not any(k.startswith('encoder.') for k in state_dict):
        return dict(state_dict)
    return {
        k.removeprefix('encoder.'): v
        for k, v in state_dict.items()
        if k.startswith('encoder.') and k != 'encoder.mask_token'
    }


def student_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The GFM student in timm ``gfm_swin_base`` key names, without a model at hand.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``), or timm-named weights.

    Returns:
        The student's state dict.

    .. versionadded:: 0.1
    """
    return _timm_names(unwrap_student(checkpoint))


def teacher_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The authors' frozen teacher (``teacher.*``, Swin-B, window 7) in timm key names.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``).

    Returns:
        The state dict for timm's ``swin_base_patch4_window7_224`` (``num_classes=0``:
        the teacher has no head); empty if the checkpoint has no teacher.

    .. versionadded:: 0.1
    """
    model = checkpoint.get('model', checkpoint)
    teacher = {
        k.removeprefix('teacher.'): v
        for k, v in model.items()
        if k.startswith('teacher.')
    }
    return _timm_names(teacher) if teacher else {}


def upstream_mask_token(checkpoint: Mapping[str, Any]) -> Tensor:
    """The student's learned SimMIM mask token, shape ``[1, 1, embed_dim]``.

    Args:
        checkpoint: the authors' checkpoint (or its ``model``).

    Returns:
        The mask token.

    .. versionadded:: 0.1
    """
    return checkpoint.get('model', checkpoint)['encoder.mask_token']


def _timm_names(swin: dict[str, Tensor]) -> dict[str, Tensor]:
    """Microsoft's Swin names to timm's (patch merging at the start of the next stage)."""
    if 'layers.0.downsample.reduction.weight' not in swin:  # already timm's layout
        return swin
    return checkpoint_filter_fn(swin, _reference(describe_swin(swin)))


def describe_swin(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Architecture of a Swin state dict (timm, feature-extractor or Microsoft names).

    Args:
        state_dict: the weights.

    Returns:
        ``embed_dim``, ``depths``, ``num_heads``, ``in_chans`` and ``window_size`` (of the
        first block) where present.

    .. versionadded:: 0.1
    """
    blocks: dict[int, set[int]] = {}
    heads: dict[int, int] = {}
    info: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.endswith(PATCH_EMBED):
            info['embed_dim'], info['in_chans'] = value.shape[0], value.shape[1]
        m = _BLOCK.match(key)
        if not m:
            continue
        stage, block = int(m[1]), int(m[2])
        blocks.setdefault(stage, set()).add(block)
        if key.endswith('relative_position_bias_table') and block == 0:
            heads[stage] = value.shape[1]
            if stage == 0:  # (2w - 1)^2 rows
                info['window_size'] = (math.isqrt(value.shape[0]) + 1) // 2
    info['depths'] = tuple(len(blocks[s]) for s in sorted(blocks))
    info['num_heads'] = tuple(heads[s] for s in sorted(heads))
    return info


def arch_text(info: Mapping[str, Any]) -> str:
    """``embed_dim=..., depths=..., num_heads=...`` of :func:`describe_swin`, for errors.

    Args:
        info: what :func:`describe_swin` returned.

    Returns:
        The text.
    """
    return ', '.join(f'{k}={info.get(k)}' for k in ('embed_dim', 'depths', 'num_heads'))


def _reference(info: Mapping[str, Any]) -> SwinTransformer:
    """A weightless timm Swin (meta device) of the architecture *info* describes."""
    window = info.get('window_size', 6)
    args = {**SWIN_B_ARGS, 'embed_dim': info['embed_dim'], 'depths': info['depths']}
    args.update(num_heads=info['num_heads'], in_chans=info['in_chans'])
    # every stage at least one window wide: no window is clipped, no table resized
    img_size = window * 4 * 2 ** (len(info['depths']) - 1)
    args.update(window_size=window, img_size=img_size, weight_init='skip')
    with torch.device('meta'):
        return SwinTransformer(**args)


def check_complete_student(state_dict: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights that are not a whole ``gfm_swin_base`` of the architecture they show.

    Every weight of the Swin the keys describe (:func:`describe_swin`) must be present with
    its shape; a classifier head may be absent. Relative-position tables may be of any
    window (they are resized at load).

    Args:
        state_dict: student weights in timm names.
        source: where they came from, for error messages.

    Raises:
        GFMCheckpointError: naming what is missing, extra or of the wrong shape.

    .. versionadded:: 0.1
    """
    info = describe_swin(state_dict)
    depths, heads = info['depths'], info['num_heads']
    if 'embed_dim' not in info or not depths or len(depths) != len(heads):
        raise GFMCheckpointError(
            f'{source}: not a complete Swin (found {len(state_dict)} tensors describing '
            f'{info}); expected a whole GFM Swin student (patch_embed.*, layers.*, norm.*).'
        )
    own = _reference(info).state_dict()
    missing = [k for k in own if k not in state_dict and not k.startswith('head.')]
    extra = [k for k in state_dict if k not in own]
    shapes = [
        f'{k} {tuple(v.shape)} != {tuple(own[k].shape)}'
        for k, v in state_dict.items()
        if k in own
        and v.shape != own[k].shape
        and not k.endswith('relative_position_bias_table')
    ]
    for what, keys in (('lacks', missing), ('has extra', extra), ('misshapes', shapes)):
        if keys:
            more = f' and {len(keys) - 5} more' if len(keys) > 5 else ''
            raise GFMCheckpointError(
                f'{source}: {what} {len(keys)} weights of a gfm_swin_base with '
                f'{arch_text(info)}: {keys[:5]}{more}. Expected a complete GFM Swin '
                'student; is the checkpoint incomplete or of another model?'
            )
