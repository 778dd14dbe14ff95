# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""timm's fused window attention equals its explicit path on the GFM Swin, in fp32.

timm's ``WindowAttention`` has two paths, chosen by its ``fused_attn`` attribute (on only
with ``TIMM_FUSED_ATTN=2``, "experimental"): the explicit ``softmax(q k^T * scale + bias +
shift mask) v`` that Microsoft's Swin and the authors use, and one
``F.scaled_dot_product_attention`` call with the relative-position bias and the shift mask
added into one additive ``attn_mask``. The same real numbers in a different order: the
kernel scales inside, and on a CPU accumulates the softmax blockwise (online softmax). Each
output is a sum of a few hundred fp32 products (head dim 32, 36 keys at window 6), so the
two differ by rounding only: tens of units of fp32 rounding (2**-24 ~ 6e-8) relative to
the values' scale per attention, growing with depth through residuals and LayerNorms.

Tolerances, relative to the largest magnitude of the reference (values or gradients):
``ATTENTION`` = 3e-6 (~50 roundings) for one attention, ``MODEL`` = 3e-5 for a whole Swin
(8 blocks; LayerNorm gradients divide by standard deviations). Measured on a CPU (torch
2.14): at most 3e-7 for one attention, 3e-6 for a whole model, so 10x margin. A wrong bias
or mask (a real bug) moves values by 1e-2 to 1: the attention test checks that leaving out
the shift mask fails by more than 100 times its tolerance, so the tolerances cannot hide one.

Whether the fused path is faster is measured, not assumed (``benchmarks/``); the package
keeps timm's default.
"""

from typing import Any

import pytest
import timm
import torch
from timm.models.swin_transformer import SwinTransformerBlock, WindowAttention
from torch import Tensor, nn

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from tests.data.gfm.data import TINY

ATTENTION = 3e-6
MODEL = 3e-5
#: the paper's head width (Swin-B: 128 / 4 = 32 per head) at small widths, window 6
NARROW = {
    'embed_dim': 32,
    'depths': (2, 2, 2, 2),
    'num_heads': (1, 2, 4, 8),
    'window_size': 6,
}


def set_fused(model: nn.Module, fused: bool) -> None:
    for module in model.modules():
        if isinstance(module, WindowAttention):
            module.fused_attn = fused  # type: ignore[misc]  # Final in timm


def relative_error(value: Tensor, reference: Tensor) -> float:
    return float((value - reference).abs().max() / reference.abs().max())


def outputs_and_grads(
    model: nn.Module, fused: bool, inputs: Tensor, features: bool = False, **kwargs: Any
) -> dict[str, Tensor]:
    """The output and every gradient (input's included) of a fixed projection of it."""
    set_fused(model, fused)
    model.zero_grad(set_to_none=True)
    x = inputs.clone().requires_grad_(True)
    forward: Any = model.forward_features if features else model
    out = forward(x, **kwargs)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weight).sum().backward()
    assert x.grad is not None
    grads = {'output': out.detach(), 'input': x.grad}
    for name, param in model.named_parameters():
        assert param.grad is not None, name  # the bias table learns on both paths
        grads[name] = param.grad.clone()
    return grads


def assert_close(fused: dict[str, Tensor], ref: dict[str, Tensor], tol: float) -> None:
    errors = {name: relative_error(fused[name], ref[name]) for name in ref}
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= tol, f'{worst}: {errors[worst]:.2e} > {tol:.0e}'


def block_mask(dim: int, window: int, size: tuple[int, int]) -> Tensor:
    """The shift mask (0 / -100) of a shifted Swin block on a *size* feature map."""
    block = SwinTransformerBlock(
        dim, size, num_heads=1, window_size=window, shift_size=window // 2
    )
    pad = [-s % window + s for s in size]
    mask = block.get_attn_mask(torch.zeros(1, *pad, dim))
    assert mask is not None
    return mask


@pytest.mark.parametrize(
    ('dim', 'heads', 'window', 'size'),
    [
        (16, 1, 6, (48, 48)),  # the tiny fake checkpoint's first stage at 192 px
        (128, 4, 6, (48, 48)),  # Swin-B's first stage at 192 px
        (1024, 32, 6, (16, 16)),  # Swin-B's last stage at 512 px: padded to 18
        (64, 2, 7, (9, 11)),  # odd window, padded, non-square
    ],
)
def test_window_attention(
    dim: int, heads: int, window: int, size: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    attn = WindowAttention(dim, heads, window_size=window)
    nn.init.normal_(attn.relative_position_bias_table, std=1.0)  # a bias that matters
    mask = block_mask(dim, window, size)
    x = torch.randn(2 * mask.shape[0], window * window, dim)
    ref = outputs_and_grads(attn, False, x, mask=mask)
    assert_close(outputs_and_grads(attn, True, x, mask=mask), ref, ATTENTION)
    unmasked = outputs_and_grads(attn, True, x)['output']
    assert relative_error(unmasked, ref['output']) > 100 * ATTENTION  # mask is seen


@pytest.mark.parametrize(
    ('arch', 'img_size', 'size'),
    [
        (TINY, 192, (192, 192)),  # the fake checkpoint's Swin at the paper's input
        (TINY, 192, (100, 72)),  # any multiple of 4: windows padded
        (NARROW, 192, (192, 192)),  # paper windows: 8, 4, 2, 1 per side, shifted
        (NARROW, 192, (512, 512)),  # built at 192, fed 512: padded, dynamic masks
        (NARROW, 512, (512, 512)),  # built at 512: every stage shifted and padded
    ],
)
def test_gfm_swin(arch: dict[str, Any], img_size: int, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    # no stochastic depth: both paths must see the same network
    model = timm.create_model(
        'gfm_swin_base', img_size=img_size, drop_path_rate=0.0, **arch
    )
    for module in model.modules():  # biases that matter (timm initialises them ~0.02)
        if isinstance(module, WindowAttention):
            nn.init.normal_(module.relative_position_bias_table, std=1.0)
    x = torch.randn(2, 3, *size)
    ref = outputs_and_grads(model, False, x, features=True)
    assert_close(outputs_and_grads(model, True, x, features=True), ref, MODEL)
