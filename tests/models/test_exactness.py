# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The converted timm model computes what the authors' (Microsoft-layout) Swin computes."""

from pathlib import Path
from typing import Any

import pytest
import timm
import torch

from tests.models.reference_swin import ms_swin_forward
from torchgeo_gfm.models import load_upstream_checkpoint, teacher_state_dict

ATOL = 1e-5


@pytest.fixture(scope='module')
def reference(
    tiny_gfm: Path, tiny_arch: dict[str, Any]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model = load_upstream_checkpoint(tiny_gfm)['model']
    encoder = {
        k[len('encoder.') :]: v for k, v in model.items() if k.startswith('encoder.')
    }
    x = torch.randn(2, 3, 192, 192, generator=torch.Generator().manual_seed(1))
    arch = {k: tiny_arch[k] for k in ('depths', 'num_heads', 'window_size')}
    return x, ms_swin_forward(encoder, x, **arch)


def test_stage_features(
    tiny_gfm: Path, tiny_arch: dict[str, Any], reference: Any
) -> None:
    x, ref = reference
    model = timm.create_model(
        'gfm_swin_base',
        pretrained=True,
        pretrained_cfg_overlay={'file': str(tiny_gfm)},
        features_only=True,
        **tiny_arch,
    ).eval()
    with torch.no_grad():
        feats = model(x)
    assert len(feats) == 4
    for i, f in enumerate(feats):
        torch.testing.assert_close(f, ref[f'stage{i}'], rtol=0, atol=ATOL)


def test_final_norm_and_distilled_feature(
    tiny_gfm: Path, tiny_arch: dict[str, Any], reference: Any
) -> None:
    x, ref = reference
    model = timm.create_model(
        'gfm_swin_base',
        pretrained=True,
        pretrained_cfg_overlay={'file': str(tiny_gfm)},
        **tiny_arch,
    ).eval()
    with torch.no_grad():
        tokens = model.forward_features(x)
        # Microsoft's layers[:-1] = timm's layers[0..2] plus the merging that opens layers[3]
        h = model.layers[3].downsample(model.layers[:3](model.patch_embed(x)))
    torch.testing.assert_close(tokens.flatten(1, 2), ref['norm'], rtol=0, atol=ATOL)
    torch.testing.assert_close(
        h.flatten(1, 2), ref['layers_except_last'], rtol=0, atol=ATOL
    )


def test_teacher_distillation_target(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    """The teacher, converted for timm, gives the feature GFM distils (stages 1-3)."""
    upstream = load_upstream_checkpoint(tiny_gfm)
    prefix = 'teacher.'
    ms = {
        k[len(prefix) :]: v
        for k, v in upstream['model'].items()
        if k.startswith(prefix)
    }
    arch = {k: tiny_arch[k] for k in ('embed_dim', 'depths', 'num_heads')}
    teacher = timm.create_model(
        'swin_base_patch4_window7_224', num_classes=0, weight_init='skip', **arch
    ).eval()
    teacher.load_state_dict(teacher_state_dict(upstream))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    ref = ms_swin_forward(
        ms, x, depths=arch['depths'], num_heads=arch['num_heads'], window_size=7
    )
    with torch.no_grad():
        h = teacher.layers[3].downsample(teacher.layers[:3](teacher.patch_embed(x)))
    torch.testing.assert_close(
        h.flatten(1, 2).mean(1), ref['layers_except_last'].mean(1), rtol=0, atol=ATOL
    )
