# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""gfm_s2.yaml: multispectral continual pretraining runs as shipped (tiny, offline).

Only sizes and data are overridden: a tiny student whose GFM RGB weights come from a fake
``gfm.pth`` on disk (``weights: true`` loads it offline), a tiny random teacher, 64 px
crops of the fake SSL4EO-S12.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torchgeo.main import main

from tests.data.gfm.data import TINY, write_upstream_checkpoint
from torchgeo_gfm.sensors import get_sensor

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / 'configs' / 'gfm_s2.yaml'
DATA = ROOT / 'tests' / 'data' / 'ssl4eo_s12'
TINY_TEACHER = {'embed_dim': 8, 'depths': [1, 1, 1, 1], 'num_heads': [1, 1, 1, 1]}


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def test_paper_recipe_on_sentinel2() -> None:
    c = config()
    trainer, model, data = c['trainer'], c['model']['init_args'], c['data']['init_args']
    paper = yaml.safe_load((ROOT / 'configs' / 'gfm.yaml').read_text())
    same = (
        'lr',
        'warmup_lr',
        'min_lr',
        'weight_decay',
        'warmup_epochs',
        'lr_batch_ref',
    )
    same += ('teacher', 'distill_stage', 'alpha', 'mask_patch_size', 'mask_ratio')
    assert {k: model[k] for k in same} == {
        k: paper['model']['init_args'][k] for k in same
    }
    for key in ('max_epochs', 'gradient_clip_val', 'devices', 'plugins'):
        assert trainer[key] == paper['trainer'][key]
    assert data['batch_size'] == paper['data']['init_args']['batch_size']
    # a 13-band L1C student from GFM's RGB weights, an RGB teacher on true colour
    assert get_sensor(model['sensor']).num_bands == 13
    assert (model['weights'], model['teacher_weights']) == (True, True)
    assert model['teacher_input'] == 'true_colour'
    assert data['split'] == 's2c'


@pytest.mark.slow
def test_config_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gfm = tmp_path / 'gfm.pth'
    rgb = write_upstream_checkpoint(gfm, **TINY, teacher=False)
    student = {**TINY, 'pretrained_cfg_overlay': {'file': str(gfm)}}
    monkeypatch.chdir(tmp_path)  # the config's output paths are relative
    main(
        [
            'fit',
            f'--config={CONFIG}',
            f'--model.init_args.model_kwargs={json.dumps(student)}',
            '--model.init_args.teacher=swin_tiny_patch4_window7_224',
            '--model.init_args.teacher_weights=null',
            f'--model.init_args.teacher_kwargs={json.dumps(TINY_TEACHER)}',
            '--model.init_args.teacher_size=64',
            f'--data.init_args.root={DATA}',
            '--data.init_args.batch_size=2',
            '--data.init_args.num_workers=0',
            '--data.init_args.size=96',
            '--trainer.accelerator=cpu',
            '--trainer.devices=1',
            '--trainer.strategy=auto',
            '--trainer.max_steps=1',
        ]
    )
    (checkpoint,) = tmp_path.rglob('last.ckpt')
    saved = torch.load(checkpoint, weights_only=True)
    assert saved['hyper_parameters']['sensor'] == get_sensor('s2_l1c').to_dict()
    # the student started from GFM's RGB filters on B4, B3, B2 (one step moves them a little)
    weight = saved['state_dict']['model.student.patch_embed.proj.weight']
    assert weight.shape[1] == 13
    start = rgb['encoder.patch_embed.proj.weight']
    torch.testing.assert_close(weight[:, [3, 2, 1]], start, atol=1e-4, rtol=0)
    others = [i for i in range(13) if i not in (3, 2, 1)]
    assert weight[:, others].abs().max() < 1e-4  # the other bands started at zero
