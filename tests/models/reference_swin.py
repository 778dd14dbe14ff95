# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reference forward of a Microsoft-layout Swin, straight from its state dict.

Written from the Swin paper / Microsoft's layout, independently of timm: patch merging at the
end of a stage, the ``relative_position_index`` and ``attn_mask`` buffers taken from the
checkpoint itself. Used to prove that the converted timm model computes the same features.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def _ln(x: Tensor, sd: Mapping[str, Tensor], p: str) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[p + '.weight'], sd[p + '.bias'], eps=1e-5)


def _windows(x: Tensor, w: int) -> Tensor:
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(x: Tensor, w: int, b: int, h: int, wd: int) -> Tensor:
    x = x.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, -1)


def _attention(
    x: Tensor, sd: Mapping[str, Tensor], p: str, heads: int, mask: Tensor | None
) -> Tensor:
    bw, n, c = x.shape
    qkv = F.linear(x, sd[p + '.qkv.weight'], sd[p + '.qkv.bias'])
    q, k, v = qkv.view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
    index = sd[p + '.relative_position_index'].view(-1)
    bias = sd[p + '.relative_position_bias_table'][index].view(n, n, heads)
    attn = attn + bias.permute(2, 0, 1)[None]
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(bw // nw, nw, heads, n, n) + mask[None, :, None]
        attn = attn.view(bw, heads, n, n)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c)
    return F.linear(out, sd[p + '.proj.weight'], sd[p + '.proj.bias'])


def _block(
    x: Tensor, sd: Mapping[str, Tensor], p: str, res: int, heads: int, window: int
) -> Tensor:
    b, _, c = x.shape
    w = min(window, res)
    mask = sd.get(p + '.attn_mask')
    shift = w // 2 if mask is not None else 0
    h = _ln(x, sd, p + '.norm1').view(b, res, res, c)
    if shift:
        h = torch.roll(h, (-shift, -shift), (1, 2))
    h = _attention(_windows(h, w), sd, p + '.attn', heads, mask)
    h = _unwindows(h, w, b, res, res)
    if shift:
        h = torch.roll(h, (shift, shift), (1, 2))
    x = x + h.reshape(b, res * res, c)
    h = F.gelu(
        F.linear(
            _ln(x, sd, p + '.norm2'), sd[p + '.mlp.fc1.weight'], sd[p + '.mlp.fc1.bias']
        )
    )
    return x + F.linear(h, sd[p + '.mlp.fc2.weight'], sd[p + '.mlp.fc2.bias'])


def _merge(x: Tensor, sd: Mapping[str, Tensor], p: str, res: int) -> Tensor:
    b, _, c = x.shape
    x = x.view(b, res, res, c)
    x = torch.cat(
        [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1
    )
    x = _ln(x.view(b, -1, 4 * c), sd, p + '.norm')
    return F.linear(x, sd[p + '.reduction.weight'])


@torch.no_grad()
def ms_swin_forward(
    sd: Mapping[str, Tensor],
    x: Tensor,
    *,
    depths: tuple[int, ...],
    num_heads: tuple[int, ...],
    window_size: int,
) -> dict[str, Tensor]:
    """Run a Microsoft Swin state dict (no prefix) on a square image.

    Returns ``stage{i}`` (tokens after stage i's blocks, before its patch merging, as
    ``[B, H, W, C]``), ``layers_except_last`` (the output of ``layers[:-1]``, i.e. after
    stage 2's merging: what GFM distils) and ``norm`` (final tokens after ``norm``).
    """
    x = F.conv2d(
        x, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'], stride=4
    )
    res = x.shape[-1]
    x = _ln(x.flatten(2).transpose(1, 2), sd, 'patch_embed.norm')
    out: dict[str, Tensor] = {}
    for i, depth in enumerate(depths):
        for j in range(depth):
            x = _block(x, sd, f'layers.{i}.blocks.{j}', res, num_heads[i], window_size)
        out[f'stage{i}'] = x.view(x.shape[0], res, res, -1)
        if i < len(depths) - 1:
            x = _merge(x, sd, f'layers.{i}.downsample', res)
            res //= 2
            if i == len(depths) - 2:
                out['layers_except_last'] = x
    out['norm'] = _ln(x, sd, 'norm')
    return out
