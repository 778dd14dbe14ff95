# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path
from typing import Any

import pytest
import timm
import torch

from torchgeo_gfm.models import (
    GFMCheckpointError,
    GFMClassifierHead,
    adapt_patch_embed,
    checkpoint_filter_fn,
    load_upstream_checkpoint,
    rgb_input_indices,
    save_backbone,
    student_state_dict,
)


@pytest.fixture(scope='module')
def student(tiny_gfm: Path) -> dict[str, torch.Tensor]:
    return student_state_dict(load_upstream_checkpoint(tiny_gfm))


def _create(file: Path, arch: dict[str, Any], **kwargs: Any) -> torch.nn.Module:
    return timm.create_model(
        'gfm_swin_base',
        pretrained=True,
        pretrained_cfg_overlay={'file': str(file)},
        **{**arch, **kwargs},
    )


def test_defaults() -> None:
    model = timm.create_model('gfm_swin_base', weight_init='skip')  # skip: slow on CPU
    assert model.patch_embed.proj.weight.shape == (128, 3, 4, 4)
    assert [len(s.blocks) for s in model.layers] == [2, 2, 18, 2]
    assert model.layers[0].blocks[0].attn.window_size == (6, 6)
    assert model.pretrained_cfg['hf_hub_id'] == 'torchgeo/gfm'
    assert model.num_classes == 0
    assert model(torch.randn(1, 3, 100, 72)).shape == (1, 1024)  # any multiple of 4


@pytest.mark.parametrize('kind', ['pth', 'safetensors'])
def test_file_overlay(
    kind: str,
    tiny_gfm: Path,
    tiny_arch: dict[str, Any],
    student: dict[str, torch.Tensor],
    tmp_path: Path,
) -> None:
    file = tiny_gfm
    if kind == 'safetensors':
        file = tmp_path / 'gfm.safetensors'
        save_backbone(student, file)
    model = _create(file, tiny_arch)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in student.items())


def test_num_classes(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    model = _create(tiny_gfm, tiny_arch, num_classes=7)
    assert type(model.head) is GFMClassifierHead  # installed at construction
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    assert model.head.out_features == 7
    model.reset_classifier(0)
    assert model.head.out_features == model.num_features


def test_window_and_size(
    tiny_gfm: Path, tiny_arch: dict[str, Any], student: Any
) -> None:
    model = _create(tiny_gfm, tiny_arch, window_size=8, img_size=256)
    table = model.layers[0].blocks[0].attn.relative_position_bias_table
    assert table.shape == (15 * 15, 1)
    assert not torch.equal(table[:1], torch.zeros_like(table[:1]))
    assert model(torch.randn(1, 3, 256, 256)).shape == (1, 128)


def test_features_only(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    model = _create(tiny_gfm, tiny_arch, features_only=True, out_indices=(1, 3))
    feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 128]


def test_multispectral(tiny_gfm: Path, tiny_arch: dict[str, Any], student: Any) -> None:
    rgb = student['patch_embed.proj.weight']
    s2 = _create(tiny_gfm, tiny_arch, in_chans=13).patch_embed.proj.weight
    assert torch.equal(s2[:, [3, 2, 1]], rgb)
    assert s2[:, [0, *range(4, 13)]].abs().sum() == 0
    custom = _create(tiny_gfm, tiny_arch, in_chans=4, rgb_indices=(0, 1, 2))
    assert torch.equal(custom.patch_embed.proj.weight[:, :3], rgb)
    # same features as the RGB model when the extra bands are zero
    rgb_model = _create(tiny_gfm, tiny_arch).eval()
    x = torch.randn(1, 3, 64, 64)
    x4 = torch.cat([x, torch.randn(1, 1, 64, 64)], 1)
    with torch.no_grad():
        torch.testing.assert_close(custom.eval()(x4), rgb_model(x), rtol=0, atol=1e-3)


def test_rgb_rules() -> None:
    assert rgb_input_indices(3) == (0, 1, 2)
    assert rgb_input_indices(6) == (0, 1, 2, 3, 4, 5)
    assert rgb_input_indices(13) == (3, 2, 1)
    assert rgb_input_indices(1) is None
    w = torch.randn(4, 3, 2, 2)
    pair = adapt_patch_embed(w, 6)
    torch.testing.assert_close(pair[:, :3] + pair[:, 3:], w)
    assert adapt_patch_embed(w, 1).shape == (4, 1, 2, 2)
    torch.testing.assert_close(adapt_patch_embed(w, 3, (2, 1, 0)), w.flip(1))
    with pytest.raises(ValueError, match='rgb_indices'):
        rgb_input_indices(4, (0, 1))
    with pytest.raises(ValueError, match='in_chans=4'):
        rgb_input_indices(4, (0, 1, 4))
    with pytest.raises(ValueError, match='RGB'):
        adapt_patch_embed(torch.randn(4, 5, 2, 2), 3)


def test_wrong_architecture(tiny_gfm: Path, tiny_arch: dict[str, Any]) -> None:
    with pytest.raises(GFMCheckpointError, match=r'gfm\.pth.*embed_dim=16'):
        _create(tiny_gfm, {**tiny_arch, 'embed_dim': 32})
    with pytest.raises(GFMCheckpointError, match=r'depths=\(2, 2, 2, 2\)'):
        _create(tiny_gfm, {**tiny_arch, 'depths': (2, 2, 4, 2)})


def test_state_dict_overlay(
    tiny_gfm: Path, tiny_arch: dict[str, Any], student: Any
) -> None:
    upstream = load_upstream_checkpoint(tiny_gfm)
    for sd in (upstream, upstream['model'], student):
        model = timm.create_model(
            'gfm_swin_base',
            pretrained=True,
            pretrained_cfg_overlay={'state_dict': sd},
            in_chans=13,
            **tiny_arch,
        )
        weight = model.patch_embed.proj.weight
        assert torch.equal(weight[:, [3, 2, 1]], student['patch_embed.proj.weight'])


def test_bgr_reordering(
    tiny_gfm: Path, tiny_arch: dict[str, Any], student: Any
) -> None:
    model = _create(tiny_gfm, tiny_arch, rgb_indices=(2, 1, 0))  # BGR input
    weight = model.patch_embed.proj.weight
    assert torch.equal(weight, student['patch_embed.proj.weight'].flip(1))
    # resuming its own weights does not reorder again
    again = timm.create_model('gfm_swin_base', rgb_indices=(2, 1, 0), **tiny_arch)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.patch_embed.proj.weight, weight)


def test_filter_recognises_every_layout(
    tiny_gfm: Path, tiny_arch: dict[str, Any], student: dict[str, torch.Tensor]
) -> None:
    upstream = load_upstream_checkpoint(tiny_gfm)
    encoder = {
        k.removeprefix('encoder.'): v
        for k, v in upstream['model'].items()
        if k.startswith('encoder.') and k != 'encoder.mask_token'
    }
    model = timm.create_model('gfm_swin_base', weight_init='skip', **tiny_arch)
    for layout in (upstream, upstream['model'], encoder, student):
        out = checkpoint_filter_fn(layout, model)
        assert out.keys() == student.keys()
        assert all(torch.equal(out[k], v) for k, v in student.items())


def test_filter_applies_band_rule_and_windows(
    tiny_arch: dict[str, Any], student: dict[str, torch.Tensor]
) -> None:
    arch = {**tiny_arch, 'window_size': 8}
    model = timm.create_model('gfm_swin_base', in_chans=13, weight_init='skip', **arch)
    out = checkpoint_filter_fn(student, model)
    model.load_state_dict(out)  # every shape fits
    weight = out['patch_embed.proj.weight']
    assert torch.equal(weight[:, [3, 2, 1]], student['patch_embed.proj.weight'])
