# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Building blocks of the GFM task: SimMIM masks, Swin surgery and blocks, parameter groups.

.. versionadded:: 0.1
"""

import math
from collections.abc import Iterable
from typing import Any, cast

import torch
from timm.models._manipulate import checkpoint_seq
from timm.models.swin_transformer import (
    SwinTransformerBlock,
    window_partition,
    window_reverse,
)
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


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


def run_blocks(stage: Any, x: Tensor, lean: bool = True) -> Tensor:
    """Run the blocks of a timm Swin stage, honouring its activation checkpointing flag.

    Args:
        stage: a timm ``SwinTransformerStage`` whose patch merging already ran.
        x: NHWC input.
        lean: run the blocks with :func:`run_block` (False: call ``stage.blocks``
            itself, e.g. when it is compiled).

    Returns:
        NHWC output.

    .. versionadded:: 0.1
    """
    checkpointing = (
        getattr(stage, 'grad_checkpointing', False) and torch.is_grad_enabled()
    )
    if not lean:
        out: Tensor = (
            checkpoint_seq(stage.blocks, x) if checkpointing else stage.blocks(x)
        )
        return out
    for block in stage.blocks:
        if checkpointing:
            x = checkpoint(run_block, block, x, use_reentrant=False)
        else:
            x = run_block(block, x)
    return x


def run_block(block: nn.Module, x: Tensor) -> Tensor:
    """Run a Swin block; a timm ``SwinTransformerBlock`` without its padding copy.

    timm pads each block's input to a multiple of the window with ``F.pad``, which copies
    the whole feature map even when there is nothing to pad (Microsoft's Swin, the
    authors' code, has no such copy). When the map divides into windows, this runs the
    block's own modules in the same order without that copy; other blocks, or maps that
    need padding, run the block itself.

    Args:
        block: a Swin block.
        x: NHWC input.

    Returns:
        NHWC output, equal to ``block(x)``.

    .. versionadded:: 0.1
    """
    swin = cast(SwinTransformerBlock, block)  # checked next: subclasses run themselves
    plain = type(block) is SwinTransformerBlock
    if (
        not plain
        or x.shape[1] % swin.window_size[0]
        or x.shape[2] % swin.window_size[1]
    ):
        out: Tensor = block(x)
        return out
    b, h, w, c = x.shape
    x = x + swin.drop_path1(_window_attention(swin, swin.norm1(x)))
    x = x.reshape(b, -1, c)
    x = x + swin.drop_path2(swin.mlp(swin.norm2(x)))
    return x.reshape(b, h, w, c)


def _window_attention(block: SwinTransformerBlock, x: Tensor) -> Tensor:
    """(Shifted) window attention of *block* on an NHWC map that divides into windows."""
    _, h, w, c = x.shape
    shift = (int(block.shift_size[0]), int(block.shift_size[1]))
    if any(shift):
        x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
    dynamic = getattr(block, 'dynamic_mask', False)
    mask = block.get_attn_mask(x) if dynamic else block.attn_mask
    windows = window_partition(x, block.window_size).view(-1, block.window_area, c)
    windows = block.attn(windows, mask=mask)
    windows = windows.view(-1, *block.window_size, c)
    x = window_reverse(windows, block.window_size, h, w)
    if any(shift):
        x = torch.roll(x, shift, (1, 2))
    return x


def set_fused_attention(model: nn.Module, fused: bool) -> None:
    """Choose between PyTorch's fused attention and explicit softmax attention in timm.

    Args:
        model: a timm model; its attention modules' ``fused_attn`` flag is set.
        fused: use ``F.scaled_dot_product_attention`` (True) or explicit attention.

    .. versionadded:: 0.1
    """
    for module in model.modules():
        if hasattr(module, 'fused_attn'):
            cast(Any, module).fused_attn = fused


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
