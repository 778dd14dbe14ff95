#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fake GFM checkpoints in the authors' exact format (``gfm.pth``).

The authors save ``{'model', 'optimizer', 'lr_scheduler', 'max_accuracy', 'epoch', 'config',
'amp'}`` with ``torch.save``; ``model`` is the state dict of their ``SimMIM`` module:
``encoder.*`` (``SwinTransformerForSimMIM``: ``mask_token`` first, Microsoft Swin key names,
patch merging at the *end* of stages 0-2 as ``layers.{i}.downsample``, persistent
``relative_position_index`` and ``attn_mask`` buffers), ``teacher.*`` (``SwinTeacher``: the same
Swin at 224 px, window 7, no head), ``decoder.0.*`` (1x1 conv to 32 * 32 * 3 channels) and
``projector.*``; ``config`` is a real ``yacs.config.CfgNode``.

Run as a script to write ``gfm.pth`` (tiny Swin) next to this file.
"""

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from yacs.config import CfgNode

TINY: dict[str, Any] = {
    'embed_dim': 16,
    'depths': (2, 2, 2, 2),
    'num_heads': (1, 2, 2, 4),
    'window_size': 6,
}


def relative_position_index(window: int) -> Tensor:
    """Microsoft Swin's ``relative_position_index`` buffer for a square window."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    ).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def attn_mask(resolution: int, window: int, shift: int) -> Tensor:
    """Microsoft Swin's ``attn_mask`` buffer of a shifted block: ``[nW, N, N]``."""
    img = torch.zeros(resolution, resolution)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    count = 0
    for h in cuts:
        for w in cuts:
            img[h, w] = count
            count += 1
    n = resolution // window
    windows = (
        img.view(n, window, n, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    )
    diff = windows[:, None, :] - windows[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _stage_layout(
    img_size: int, patch_size: int, depths: Sequence[int], window_size: int
) -> list[tuple[int, int, list[int]]]:
    """Per stage: resolution, effective window and shift of each block (Microsoft's rule)."""
    layout = []
    for i, depth in enumerate(depths):
        res = img_size // patch_size // 2**i
        window = min(window_size, res)
        shifts = [
            0 if (j % 2 == 0 or res <= window_size) else window // 2
            for j in range(depth)
        ]
        layout.append((res, window, shifts))
    return layout


class _Init:
    """Seeded random tensors with scales that make every weight matter in a forward."""

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, *shape: int, std: float = 0.02, mean: float = 0.0) -> Tensor:
        return torch.randn(*shape, generator=self.gen) * std + mean


def ms_swin_state_dict(
    *,
    img_size: int,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: int,
    patch_size: int = 4,
    in_chans: int = 3,
    mlp_ratio: float = 4.0,
    mask_token: bool = False,
    seed: int = 0,
) -> dict[str, Tensor]:
    """State dict of a Microsoft Swin (``num_classes=0``) in its own key order."""
    r = _Init(seed)
    sd: dict[str, Tensor] = {}
    if mask_token:
        sd['mask_token'] = r(1, 1, embed_dim, std=0.5)
    sd['patch_embed.proj.weight'] = r(
        embed_dim, in_chans, patch_size, patch_size, std=0.1
    )
    sd['patch_embed.proj.bias'] = r(embed_dim)
    sd['patch_embed.norm.weight'] = r(embed_dim, std=0.1, mean=1.0)
    sd['patch_embed.norm.bias'] = r(embed_dim, std=0.1)
    layout = _stage_layout(img_size, patch_size, depths, window_size)
    for i, (res, window, shifts) in enumerate(layout):
        dim, heads = embed_dim * 2**i, num_heads[i]
        hidden = int(dim * mlp_ratio)
        for j, shift in enumerate(shifts):
            p = f'layers.{i}.blocks.{j}.'
            if shift:
                sd[p + 'attn_mask'] = attn_mask(res, window, shift)
            sd[p + 'norm1.weight'] = r(dim, std=0.1, mean=1.0)
            sd[p + 'norm1.bias'] = r(dim, std=0.1)
            sd[p + 'attn.relative_position_bias_table'] = r(
                (2 * window - 1) ** 2, heads, std=0.5
            )
            sd[p + 'attn.relative_position_index'] = relative_position_index(window)
            sd[p + 'attn.qkv.weight'] = r(3 * dim, dim, std=dim**-0.5)
            sd[p + 'attn.qkv.bias'] = r(3 * dim)
            sd[p + 'attn.proj.weight'] = r(dim, dim, std=dim**-0.5)
            sd[p + 'attn.proj.bias'] = r(dim)
            sd[p + 'norm2.weight'] = r(dim, std=0.1, mean=1.0)
            sd[p + 'norm2.bias'] = r(dim, std=0.1)
            sd[p + 'mlp.fc1.weight'] = r(hidden, dim, std=dim**-0.5)
            sd[p + 'mlp.fc1.bias'] = r(hidden)
            sd[p + 'mlp.fc2.weight'] = r(dim, hidden, std=hidden**-0.5)
            sd[p + 'mlp.fc2.bias'] = r(dim)
        if i < len(depths) - 1:
            p = f'layers.{i}.downsample.'
            sd[p + 'reduction.weight'] = r(2 * dim, 4 * dim, std=(4 * dim) ** -0.5)
            sd[p + 'norm.weight'] = r(4 * dim, std=0.1, mean=1.0)
            sd[p + 'norm.bias'] = r(4 * dim, std=0.1)
    num_features = embed_dim * 2 ** (len(depths) - 1)
    sd['norm.weight'] = r(num_features, std=0.1, mean=1.0)
    sd['norm.bias'] = r(num_features, std=0.1)
    return sd


def authors_config(
    *,
    img_size: int,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: int,
) -> CfgNode:
    """A frozen yacs config shaped like the authors' ``config.py`` after their YAML."""
    c = CfgNode()
    c.BASE = ['']
    c.DATA = CfgNode()
    c.DATA.BATCH_SIZE = 128
    c.DATA.DATA_PATH = '/data/GeoPileV0'
    c.DATA.DATASET = 'geopile'
    c.DATA.IMG_SIZE = img_size
    c.DATA.INTERPOLATION = 'bicubic'
    c.DATA.MASK_PATCH_SIZE = 32
    c.DATA.MASK_RATIO = 0.6
    c.MODEL = CfgNode()
    c.MODEL.TYPE = 'swin'
    c.MODEL.NAME = 'gfm'
    c.MODEL.NUM_CLASSES = 1000
    c.MODEL.DROP_RATE = 0.0
    c.MODEL.DROP_PATH_RATE = 0.0
    c.MODEL.SWIN = CfgNode()
    c.MODEL.SWIN.PATCH_SIZE = 4
    c.MODEL.SWIN.IN_CHANS = 3
    c.MODEL.SWIN.EMBED_DIM = embed_dim
    c.MODEL.SWIN.DEPTHS = list(depths)
    c.MODEL.SWIN.NUM_HEADS = list(num_heads)
    c.MODEL.SWIN.WINDOW_SIZE = window_size
    c.MODEL.SWIN.MLP_RATIO = 4.0
    c.MODEL.SWIN.QKV_BIAS = True
    c.MODEL.SWIN.QK_SCALE = None
    c.MODEL.SWIN.APE = False
    c.MODEL.SWIN.PATCH_NORM = True
    c.TRAIN = CfgNode()
    c.TRAIN.EPOCHS = 100
    c.TRAIN.WARMUP_EPOCHS = 10
    c.TRAIN.BASE_LR = 2e-4
    c.TRAIN.OPTIMIZER = CfgNode()
    c.TRAIN.OPTIMIZER.NAME = 'adamw'
    c.TRAIN.OPTIMIZER.BETAS = (0.9, 0.999)
    c.AMP_OPT_LEVEL = 'O1'
    c.PRETRAINED = 'swin_base_patch4_window7_224_22k.pth'
    c.ALPHA = 1.0
    c.freeze()
    return c


def write_upstream_checkpoint(
    path: str | os.PathLike[str],
    *,
    img_size: int = 192,
    embed_dim: int = 128,
    depths: Sequence[int] = (2, 2, 18, 2),
    num_heads: Sequence[int] = (4, 8, 16, 32),
    window_size: int = 6,
    teacher: bool = True,
    seed: int = 0,
    zipfile: bool = True,
) -> dict[str, Tensor]:
    """Write a fake ``gfm.pth``; the defaults are the real Swin-B shapes (~350 MB).

    Args:
        path: output file.
        img_size: the student's training size (the teacher is always 224, window 7).
        embed_dim: Swin embedding width.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: the student's window.
        teacher: include ``teacher.*`` (the real file has it).
        seed: random seed of the weights.
        zipfile: torch's zip format (torch >= 1.6); False writes the legacy format.

    Returns:
        The ``model`` state dict that was written.
    """
    arch = {'embed_dim': embed_dim, 'depths': depths, 'num_heads': num_heads}
    model = {
        f'encoder.{k}': v
        for k, v in ms_swin_state_dict(
            img_size=img_size,
            window_size=window_size,
            mask_token=True,
            seed=seed,
            **arch,
        ).items()
    }
    if teacher:
        t = ms_swin_state_dict(img_size=224, window_size=7, seed=seed + 1, **arch)
        model.update({f'teacher.{k}': v for k, v in t.items()})
    num_features = embed_dim * 2 ** (len(depths) - 1)
    r = _Init(seed + 2)
    model['decoder.0.weight'] = r(32 * 32 * 3, num_features, 1, 1)
    model['decoder.0.bias'] = r(32 * 32 * 3)
    model['projector.weight'] = r(
        num_features, num_features, std=1 / math.sqrt(num_features)
    )
    model['projector.bias'] = r(num_features)
    n_params = sum(1 for k in model if not k.endswith(('_index', 'attn_mask')))
    ckpt = {
        'model': model,
        'optimizer': {
            'state': {},
            'param_groups': [
                {
                    'lr': 4e-4,
                    'betas': (0.9, 0.999),
                    'eps': 1e-8,
                    'weight_decay': 0.05,
                    'amsgrad': False,
                    'params': list(range(n_params // 2)),
                },
                {
                    'lr': 4e-4,
                    'betas': (0.9, 0.999),
                    'eps': 1e-8,
                    'weight_decay': 0.0,
                    'amsgrad': False,
                    'params': list(range(n_params // 2, n_params)),
                },
            ],
        },
        'lr_scheduler': {
            't_initial': 100,
            'lr_min': 2e-5,
            'warmup_t': 10,
            'warmup_lr_init': 2e-6,
            't_in_epochs': False,
            'base_values': [4e-4, 4e-4],
        },
        'max_accuracy': 0.0,
        'epoch': 99,
        'config': authors_config(img_size=img_size, window_size=window_size, **arch),
        'amp': {'loss_scaler0': {'loss_scale': 65536.0, 'unskipped': 123}},
    }
    torch.save(ckpt, path, _use_new_zipfile_serialization=zipfile)
    return model


if __name__ == '__main__':
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'gfm.pth')
    write_upstream_checkpoint(out, **TINY)
    print(out)
