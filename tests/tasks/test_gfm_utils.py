# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from typing import Any

import pytest
import timm
import torch
from torch import nn

from torchgeo_gfm.tasks.gfm_utils import run_block, run_blocks, set_fused_attention

# a small Swin that has shifted and plain blocks, and a stage whose map fits one window
ARCH = {'embed_dim': 16, 'depths': (2, 2), 'num_heads': (2, 4), 'window_size': 4}


def swin(**kwargs: Any) -> nn.Module:
    torch.manual_seed(0)
    args = {**ARCH, 'img_size': 64, 'num_classes': 0, **kwargs}
    return timm.create_model('swin_tiny_patch4_window7_224', **args).eval()


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('kwargs', [{}, {'strict_img_size': False}])
def test_run_block_equals_timm_block(fused: bool, kwargs: dict[str, Any]) -> None:
    # strict_img_size=False makes timm compute shift masks per input (dynamic_mask)
    model = swin(**kwargs)
    set_fused_attention(model, fused)
    x = model.patch_embed(torch.randn(2, 3, 64, 64))
    shifted = 0
    for stage in model.layers:
        x = stage.downsample(x)
        for block in stage.blocks:
            shifted += any(block.shift_size)
            torch.testing.assert_close(run_block(block, x), block(x), rtol=0, atol=0)
            x = block(x)
    assert shifted == 2


def test_run_block_pads_like_timm() -> None:
    # 40 px -> 10x10 tokens: not a multiple of the 4-token window, timm pads
    model = swin(strict_img_size=False)
    x = model.patch_embed(torch.randn(1, 3, 40, 40))
    block = model.layers[0].blocks[1]
    torch.testing.assert_close(run_block(block, x), block(x), rtol=0, atol=0)


def test_run_block_other_blocks_run_themselves() -> None:
    block = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    torch.testing.assert_close(run_block(block, x), block(x))


def test_run_blocks_checkpointing_same_grads() -> None:
    model = swin(drop_path_rate=0.0).train()  # no random stochastic depth
    stage = model.layers[0]
    x = model.patch_embed(torch.randn(2, 3, 64, 64))
    grads = []
    for checkpointing, lean in ((False, False), (True, True), (False, True)):
        stage.grad_checkpointing = checkpointing
        model.zero_grad()
        run_blocks(stage, x.detach(), lean=lean).square().sum().backward()
        grads.append([p.grad.clone() for p in stage.parameters() if p.grad is not None])
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            torch.testing.assert_close(a, b)


def test_set_fused_attention() -> None:
    model = swin()
    set_fused_attention(model, False)
    flags = {m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')}
    assert flags == {False}
    set_fused_attention(model, True)
    flags = {m.fused_attn for m in model.modules() if hasattr(m, 'fused_attn')}
    assert flags == {True}


def test_compile_option_compiles_what_the_forward_calls() -> None:
    from tests.tasks.test_gfm import make_task

    task = make_task(compile=True)  # compiled lazily: nothing is traced here
    for model in (task.student, task.teacher):
        for stage in model.layers:
            assert stage.blocks._compiled_call_impl is not None
            assert stage.downsample._compiled_call_impl is not None
