# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path
from typing import Any

import pytest
import torch
from torchgeo.models import api, get_model, get_model_weights, get_weight, list_models

from torchgeo_gfm.models import (
    GFM_Weights,
    GFMCheckpointError,
    gfm_swin_b,
    load_upstream_checkpoint,
    save_backbone,
    student_state_dict,
)
from torchgeo_gfm.models.registry import register


def test_meta() -> None:
    weights = GFM_Weights.GEOPILE_RGB_GFM
    assert weights.url == 'https://huggingface.co/torchgeo/gfm/resolve/main/gfm.pth'
    keys = {
        'dataset',
        'in_chans',
        'model',
        'publication',
        'repo',
        'bands',
        'ssl_method',
    }
    assert keys | {'license', 'img_size', 'window_size'} <= set(weights.meta)
    assert weights.meta['in_chans'] == len(weights.meta['bands']) == 3
    x = torch.full((1, 3, 8, 8), 255.0)
    out = weights.transforms(x)
    torch.testing.assert_close(
        out[0, :, 0, 0],
        (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]),
    )


def test_registry() -> None:
    assert 'gfm_swin_b' in list_models()
    assert get_weight('GFM_Weights.GEOPILE_RGB_GFM') is GFM_Weights.GEOPILE_RGB_GFM
    assert get_model_weights('gfm_swin_b') is GFM_Weights
    assert get_model_weights(gfm_swin_b) is GFM_Weights
    model = get_model(
        'gfm_swin_b', embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)
    )
    assert model.num_features == 128


def test_registry_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(api, '_model_weights')
    with pytest.raises(RuntimeError, match='torchgeo version is not supported'):
        register()


def test_registry_detects_ignored_dicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, 'list_models', list)
    with pytest.raises(RuntimeError, match='ignores its private dicts'):
        register()


@pytest.mark.parametrize('kind', ['pth', 'safetensors'])
def test_builder_paths(
    kind: str, tiny_gfm: Path, tiny_arch: dict[str, Any], tmp_path: Path
) -> None:
    student = student_state_dict(load_upstream_checkpoint(tiny_gfm))
    path = tiny_gfm
    if kind == 'safetensors':
        path = tmp_path / 'gfm.safetensors'
        save_backbone(student, path)
    model = gfm_swin_b(path, num_classes=2, **tiny_arch)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in student.items())
    feats = gfm_swin_b(str(path), features_only=True, in_chans=13, **tiny_arch)
    weight = feats.patch_embed.proj.weight
    assert torch.equal(weight[:, [3, 2, 1]], student['patch_embed.proj.weight'])


def test_builder_member(
    tiny_gfm: Path, tiny_arch: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    member = GFM_Weights.GEOPILE_RGB_GFM
    monkeypatch.setattr(GFM_Weights, 'download', lambda self, *a, **kw: tiny_gfm)
    model = gfm_swin_b(member, **tiny_arch)
    student = student_state_dict(load_upstream_checkpoint(tiny_gfm))
    assert torch.equal(model.norm.weight, student['norm.weight'])


def test_builder_wrong_architecture(tiny_gfm: Path) -> None:
    with pytest.raises(
        GFMCheckpointError, match=r'gfm\.pth.*embed_dim=16.*embed_dim=128'
    ):
        gfm_swin_b(tiny_gfm)


def test_builder_not_gfm(tmp_path: Path) -> None:
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, path)
    with pytest.raises(GFMCheckpointError, match=r'resnet\.pth'):
        gfm_swin_b(path)


def test_builder_wrong_band_count(
    tiny_gfm: Path, tiny_arch: dict[str, Any], tmp_path: Path
) -> None:
    model = gfm_swin_b(
        tiny_gfm, in_chans=13, **tiny_arch
    )  # e.g. fine-tuned on Sentinel-2
    path = tmp_path / 's2.safetensors'
    save_backbone(model.state_dict(), path)
    with pytest.raises(
        GFMCheckpointError, match=r's2\.safetensors.*13 bands, the model 4'
    ):
        gfm_swin_b(path, in_chans=4, **tiny_arch)
    same = gfm_swin_b(path, in_chans=13, **tiny_arch)
    assert torch.equal(same.patch_embed.proj.weight, model.patch_embed.proj.weight)
