# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM inside TorchGeo's own tasks, with (fake, full-size) GFM weights.

Swin-B is 87M parameters: few fits, backbone frozen, 64 px.
"""

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from torchgeo.main import main as torchgeo_main
from torchgeo.tasks import ChangeDetection, Classification, SemanticSegmentation

from tests.models.fake_data import FakeDataModule
from torchgeo_gfm.models import GFM_Weights, read_gfm_weights, student_state_dict

ENUM = GFM_Weights.GEOPILE_RGB_GFM
PROBE = 'layers.2.blocks.17.mlp.fc2.weight'

pytestmark = pytest.mark.slow


def _fit(task: Any, data_task: str) -> None:
    trainer = Trainer(
        fast_dev_run=True,
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, FakeDataModule(task=data_task))


@pytest.fixture(scope='module')
def student(published_gfm: Path) -> dict[str, torch.Tensor]:
    return student_state_dict(read_gfm_weights(published_gfm))


class TestClassification:
    def test_weights_true(self, student: dict[str, torch.Tensor]) -> None:
        task = Classification(model='gfm_swin_base', weights=True, num_classes=3)
        assert torch.equal(task.model.state_dict()[PROBE], student[PROBE])

    def test_multispectral(self, student: dict[str, torch.Tensor]) -> None:
        task = Classification(
            model='gfm_swin_base', weights=True, in_channels=13, num_classes=3
        )
        weight = task.model.patch_embed.proj.weight
        assert torch.equal(weight[:, [3, 2, 1]], student['patch_embed.proj.weight'])

    def test_enum_multispectral(self, student: dict[str, torch.Tensor]) -> None:
        # TorchGeo drops a patch embedding of another band count (its rule for every
        # weights enum); weights=True goes through timm and keeps the band rule
        with pytest.warns(UserWarning, match='input channels'):
            task = Classification(
                model='gfm_swin_base', weights=ENUM, in_channels=4, num_classes=3
            )
        weight = task.model.patch_embed.proj.weight
        assert not torch.equal(weight[:, [3, 2, 1]], student['patch_embed.proj.weight'])
        assert torch.equal(task.model.state_dict()[PROBE], student[PROBE])

    def test_yaml_fit(self, published_gfm: Path, tmp_path: Path) -> None:
        config = tmp_path / 'config.yaml'
        config.write_text(f"""
model:
  class_path: torchgeo.tasks.Classification
  init_args:
    model: gfm_swin_base
    weights: {ENUM}
    num_classes: 3
    freeze_backbone: true
data:
  class_path: tests.models.fake_data.FakeDataModule
  init_args:
    task: classification
trainer:
  fast_dev_run: true
  accelerator: cpu
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  default_root_dir: {tmp_path}
""")
        torchgeo_main(['fit', '--config', str(config)])


class TestSemanticSegmentation:
    @pytest.mark.parametrize(('model', 'weights'), [('unet', ENUM), ('upernet', True)])
    def test_fit(
        self, model: str, weights: Any, student: dict[str, torch.Tensor]
    ) -> None:
        task = SemanticSegmentation(
            model=model,
            backbone='tu-gfm_swin_base',
            weights=weights,
            num_classes=3,
            freeze_backbone=True,
        )
        state = task.model.encoder.model.state_dict()
        assert torch.equal(state[PROBE.replace('layers.2', 'layers_2')], student[PROBE])
        _fit(task, 'segmentation')


class TestChangeDetection:
    @pytest.mark.parametrize('weights', [ENUM, True], ids=['enum', 'true'])
    def test_weights(self, weights: Any, student: dict[str, torch.Tensor]) -> None:
        task = ChangeDetection(
            model='unet',
            backbone='tu-gfm_swin_base',
            weights=weights,
            freeze_backbone=True,
        )
        proj = task.model.encoder.model.patch_embed.proj.weight
        # the two stacked RGB images share the filters, each at half weight
        expected = student['patch_embed.proj.weight']
        torch.testing.assert_close(proj[:, :3] + proj[:, 3:], expected)
        if weights is ENUM:
            _fit(task, 'change')
