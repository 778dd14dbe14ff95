# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Building blocks of the GFM task: SimMIM masks, Swin stage surgery, parameter groups.

.. versionadded:: 0.1
"""

import math
from collections.abc import Iterable
from typing import Any

import torch
from timm.models._manipulate import checkpoint_seq
from torch import Tensor, nn


def simmim_mask(
    batch: int,
    grid: tuple[int, int],
    ratio: float,
    scale: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw SimMIM block masks, one per sample, directly on *device*.

    Exactly ``ceil(ratio * cells)`` of the ``grid`` cells are masked in every sample, as in
    the authors' ``MaskGenerator``; each cell is then repeated ``scale`` times along both axes.

    Args:
        batch: number of masks.
        grid: mask cells along (height, width), i.e. image size // mask patch size.
        ratio: fraction of the cells to mask.
        scale: mask patch size // model patch size.
        device: where to draw the masks.
        generator: optional random generator (reproducible masks).

    Returns:
        ``[batch, grid_h * scale, grid_w * scale]`` float tensor, 1 = masked.

    .. versionadded:: 0.1
    """
    cells = grid[0] * grid[1]
    count = math.ceil(cells * ratio)
    noise = torch.rand(batch, cells, device=device, generator=generator)
    index = noise.argsort(dim=1)[:, :count]
    mask = torch.zeros(batch, cells, device=device).scatter_(1, index, 1.0)
    mask = mask.view(batch, *grid)
    return mask.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


def check_swin(model: nn.Module, stage: int, role: str) -> None:
    """Check that *model* is a timm Swin-like network that has MS stage *stage*.

    Args:
        model: a timm model.
        stage: stage of Microsoft's numbering (1-based, patch merging at the end).
        role: 'student' or 'teacher', used in the error message.

    Raises:
        ValueError: if the model is not Swin-like or lacks the stage.

    .. versionadded:: 0.1
    """
    layers = getattr(model, 'layers', None)
    if not hasattr(model, 'patch_embed') or not isinstance(layers, nn.Sequential):
        raise ValueError(
            f'The {role} {type(model).__name__} is not a Swin-like timm model (it needs '
            "'patch_embed' and 'layers' stages with 'downsample'); use a timm Swin "
            "(e.g. 'swin_base_patch4_window7_224' or 'gfm_swin_base')."
        )
    if not 1 <= stage <= len(layers):
        raise ValueError(
            f'distill_stage={stage} does not exist in the {role}, which has '
            f'{len(layers)} stages: choose 1..{len(layers)} (the paper distills stage 3).'
        )


def stage_dim(model: Any, stage: int) -> int:
    """Width of the output of MS stage *stage* (including its trailing patch merging).

    Args:
        model: a timm Swin-like model.
        stage: stage of Microsoft's numbering (1-based).

    Returns:
        The number of channels.

    .. versionadded:: 0.1
    """
    layers = model.layers
    if stage == len(layers):
        return int(model.num_features)
    down = layers[stage].downsample
    if hasattr(down, 'out_dim'):
        return int(down.out_dim)
    return int(down.reduction.out_features)


def truncate_swin(model: Any, stage: int) -> Any:
    """Cut a timm Swin after MS stage *stage*, dropping everything the distillation skips.

    timm puts patch merging at the *start* of the next stage, Microsoft's Swin at the end of
    the current one, so MS stage ``s`` ends with timm ``layers[s].downsample``. What remains
    is ``patch_embed -> layers[:s] -> layers[s].downsample``; norm and head become identity.

    Args:
        model: a timm Swin-like model (modified in place).
        stage: stage of Microsoft's numbering (1-based).

    Returns:
        The same model; ``model.forward_features(x)`` now gives the stage output (NHWC).

    .. versionadded:: 0.1
    """
    if stage < len(model.layers):
        model.layers = model.layers[: stage + 1]
        model.layers[stage].blocks = nn.Sequential()
    model.norm = nn.Identity()
    model.head = nn.Identity()
    return model


def run_blocks(stage: Any, x: Tensor) -> Tensor:
    """Run the blocks of a timm Swin stage, honouring its activation checkpointing flag.

    Args:
        stage: a timm ``SwinTransformerStage`` whose patch merging already ran.
        x: NHWC input.

    Returns:
        NHWC output.

    .. versionadded:: 0.1
    """
    if getattr(stage, 'grad_checkpointing', False) and torch.is_grad_enabled():
        out: Tensor = checkpoint_seq(stage.blocks, x)
        return out
    out = stage.blocks(x)
    return out


def param_groups(
    named: Iterable[tuple[str, nn.Parameter]], skip: set[str], weight_decay: float
) -> list[dict[str, object]]:
    """Split trainable parameters into decay / no-decay groups as the authors do.

    No weight decay on 1-D parameters, biases, names in *skip* (mask token, relative
    position bias tables) or names containing an entry of *skip*.

    Args:
        named: ``(name, parameter)`` pairs.
        skip: names (or name fragments) exempt from weight decay.
        weight_decay: decay of the first group.

    Returns:
        Two parameter groups for :class:`torch.optim.AdamW`.

    .. versionadded:: 0.1
    """
    decay, no_decay = [], []
    for name, param in named:
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name.endswith('.bias')
        if exempt or any(s in name for s in skip):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {'params': decay, 'weight_decay': weight_decay},
        {'params': no_decay, 'weight_decay': 0.0},
    ]
