# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The TorchGeo 0.10 workaround for smp's ``tu-gfm_swin_base`` encoder (models/smp_encoder.py)."""

from pathlib import Path
from typing import Any

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from torchgeo.tasks import SemanticSegmentation

from torchgeo_gfm.models import (
    GFM_Weights,
    load_upstream_checkpoint,
    student_state_dict,
)
from torchgeo_gfm.models.smp_encoder import loadable_state_dict


@pytest.fixture(scope='module')
def student(tiny_gfm: Path) -> dict[str, torch.Tensor]:
    return student_state_dict(load_upstream_checkpoint(tiny_gfm))


def _unet(arch: dict[str, Any], in_channels: int = 3) -> smp.Unet:
    return smp.Unet(
        'tu-gfm_swin_base',
        encoder_weights=None,
        in_channels=in_channels,
        classes=2,
        **arch,
    )


def test_torchgeo_still_needs_the_workaround(monkeypatch: pytest.MonkeyPatch) -> None:
    # TorchGeo's own code path: SemanticSegmentation loads the enum's state dict with
    # ``self.model.encoder.load_state_dict(state_dict)`` (ChangeDetection the same)
    timm_names = timm.create_model('gfm_swin_base', weight_init='skip').state_dict()
    enum = GFM_Weights.GEOPILE_RGB_GFM
    monkeypatch.setattr(GFM_Weights, 'get_state_dict', lambda self, **_: timm_names)
    try:
        SemanticSegmentation(
            model='unet', backbone='tu-gfm_swin_base', weights=enum, num_classes=2
        )
    except RuntimeError as e:
        assert 'Missing key(s)' in str(e)  # noqa: PT017  (what the workaround fixes)
    else:
        pytest.fail(
            'This TorchGeo loads timm-named weights into smp tu- encoders by itself '
            '(upstream/torchgeo/tu-encoder-weights.patch or an equivalent fix is '
            'released): drop torchgeo_gfm/models/smp_encoder.py (loadable_state_dict, '
            'accept_timm_names), its calls in gfm_swin.py, and this test file.'
        )
    carried = loadable_state_dict(timm_names)  # the workaround
    monkeypatch.setattr(GFM_Weights, 'get_state_dict', lambda self, **_: carried)
    task = SemanticSegmentation(
        model='unet', backbone='tu-gfm_swin_base', weights=enum, num_classes=2
    )
    block = task.model.encoder.model.layers_2.blocks[17].mlp.fc2.weight
    assert torch.equal(block, timm_names['layers.2.blocks.17.mlp.fc2.weight'])


def test_strict_load_into_encoder(
    student: dict[str, torch.Tensor], tiny_arch: dict[str, Any]
) -> None:
    unet = _unet(tiny_arch, in_channels=6)
    unet.encoder.load_state_dict(loadable_state_dict(student))  # strict, as TorchGeo
    weight = unet.encoder.model.patch_embed.proj.weight
    # band rule after renaming: two stacked RGB images share the filters
    torch.testing.assert_close(weight[:, :3] * 2, student['patch_embed.proj.weight'])
    block = unet.encoder.model.layers_2.blocks[1].mlp.fc1.weight
    assert torch.equal(block, student['layers.2.blocks.1.mlp.fc1.weight'])


def test_foreign_keys_still_reported(
    student: dict[str, torch.Tensor], tiny_arch: dict[str, Any]
) -> None:
    unet = _unet(tiny_arch)
    foreign = {**student, 'foo.weight': torch.zeros(1)}
    with pytest.raises(RuntimeError, match=r'Unexpected.*foo\.weight'):
        unet.encoder.load_state_dict(loadable_state_dict(foreign))
    with pytest.raises(RuntimeError, match='Missing'):
        unet.encoder.load_state_dict(loadable_state_dict({}))


def test_timm_model_unchanged(
    student: dict[str, torch.Tensor], tiny_arch: dict[str, Any]
) -> None:
    model = timm.create_model('gfm_swin_base', **tiny_arch)
    model.load_state_dict(loadable_state_dict(student))  # strict
    assert torch.equal(model.norm.weight, student['norm.weight'])
    bad = loadable_state_dict({**student, 'foo.weight': torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r'foo\.weight'):
        model.load_state_dict(bad)


def test_torchgeo_classification_load(
    student: dict[str, torch.Tensor], tiny_arch: dict[str, Any]
) -> None:
    from torchgeo.tasks.utils import load_state_dict

    model = timm.create_model('gfm_swin_base', num_classes=5, **tiny_arch)
    missing, unexpected = load_state_dict(model, loadable_state_dict(student))
    assert set(missing) == {'head.fc.weight', 'head.fc.bias'}
    assert unexpected == []


def test_saves_plainly(student: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / 'sd.pth'
    torch.save(loadable_state_dict(student), path)
    loaded = torch.load(path, weights_only=True)  # no torchgeo_gfm class in the pickle
    assert loaded.keys() == student.keys()
