# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The GFM configs run with `torchgeo fit`, and the demo runs end to end (tiny, offline)."""

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from torchgeo.main import main as torchgeo_main

from torchgeo_gfm import demo
from torchgeo_gfm.datasets import write_synthetic_geopile

CONFIGS = Path(__file__).parents[2] / 'configs'
TINY_STUDENT = {'embed_dim': 8, 'depths': [1, 1, 1, 1], 'num_heads': [1, 1, 1, 1]}
TINY = [
    f'--model.init_args.model_kwargs={json.dumps(TINY_STUDENT)}',
    '--model.init_args.teacher=swin_tiny_patch4_window7_224',
    '--model.init_args.teacher_weights=null',
    f'--model.init_args.teacher_kwargs={json.dumps(TINY_STUDENT)}',
    '--model.init_args.teacher_size=64',
    '--data.init_args.batch_size=2',
    '--data.init_args.num_workers=0',
    '--data.init_args.size=64',
    '--data.init_args.load_size=64',
]


@pytest.fixture(scope='module')
def geopile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('geopile')
    return write_synthetic_geopile(
        root, images_per_class=1, sources=('naip', 'resisc45'), sizes=(64, 96), seed=0
    )


def test_every_config_runs_in_a_test() -> None:
    # gfm: test_paper_config_fits (as shipped but for sizes, data and hardware);
    # gfm_demo: test_demo; finetune/*: tests/configs/test_finetune_configs.py
    # gfm_streaming: tests/streaming/test_config.py; gfm_s2: tests/configs/test_gfm_s2_config.py
    assert sorted(p.stem for p in CONFIGS.glob('*.yaml')) == [
        'gfm',
        'gfm_demo',
        'gfm_s2',
        'gfm_streaming',
    ]


def test_paper_config_recipe() -> None:
    config = yaml.safe_load((CONFIGS / 'gfm.yaml').read_text())
    trainer, model = config['trainer'], config['model']['init_args']
    assert trainer['devices'] * trainer['num_nodes'] == 8
    assert config['data']['init_args']['batch_size'] == 128
    assert (
        trainer['plugins'][0]['class_path']
        == 'torchgeo_gfm.precision.NativeMixedPrecision'
    )
    assert trainer['gradient_clip_val'] == 5.0
    assert trainer['max_epochs'] == 100
    assert model['warmup_epochs'] == 10
    assert model['teacher'] == 'swin_base_patch4_window7_224.ms_in22k'
    assert (model['lr'], model['warmup_lr'], model['min_lr']) == (2e-4, 1e-6, 1e-5)


def test_paper_config_fits(
    geopile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr('sys.argv', ['torchgeo'])
    monkeypatch.chdir(tmp_path)  # the config's checkpoint dirpath is relative
    torchgeo_main(
        [
            'fit',
            f'--config={CONFIGS / "gfm.yaml"}',
            *TINY,
            f'--data.init_args.root={geopile}',
            '--trainer.accelerator=cpu',
            '--trainer.devices=1',
            '--trainer.strategy=auto',
            '--trainer.max_steps=2',
            f'--trainer.default_root_dir={tmp_path}',
        ]
    )
    assert list(tmp_path.rglob('last.ckpt'))


@pytest.mark.slow
def test_demo(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr('sys.argv', ['python'])
    caplog.set_level(logging.INFO)
    code = demo.main(
        [
            f'--config={CONFIGS / "gfm_demo.yaml"}',
            f'--output={tmp_path}',
            '--images-per-class=1',
            *TINY,
            '--trainer.max_epochs=2',
            '--trainer.limit_train_batches=2',
            '--trainer.enable_progress_bar=false',
            '--model.init_args.plot_every_n_steps=2',
            '--trainer.callbacks.init_args.every_n_train_steps=2',
        ]
    )
    assert code == 0
    assert 'Precision: ' in caplog.text  # bf16 or fp32, and why
    out = capsys.readouterr().out
    assert 'RANDOM weights' in out
    assert (tmp_path / 'gfm_demo_backbone.safetensors').is_file()
    assert list((tmp_path / 'reconstructions').glob('*.png'))
    assert 'mean loss' in out
    assert 'last.ckpt' in out


def test_demo_missing_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main([f'--config={tmp_path / "nope.yaml"}']) == 1
    assert 'not found' in capsys.readouterr().err


@pytest.mark.slow
def test_paper_config_resumes_with_ckpt_path_last(
    geopile: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr('sys.argv', ['torchgeo'])
    monkeypatch.chdir(tmp_path)
    args = [
        'fit',
        f'--config={CONFIGS / "gfm.yaml"}',
        *TINY,
        f'--data.init_args.root={geopile}',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        '--trainer.strategy=auto',
        '--trainer.enable_progress_bar=false',
        '--trainer.callbacks.init_args.every_n_train_steps=2',
    ]
    # "killed" after step 3, mid-epoch: last.ckpt holds step 2
    torchgeo_main([*args, '--trainer.max_steps=3'])
    last = tmp_path / 'output' / 'gfm' / 'checkpoints' / 'last.ckpt'
    assert torch.load(last, weights_only=True)['global_step'] == 2
    with caplog.at_level(logging.INFO):
        torchgeo_main([*args, '--trainer.max_steps=4', '--ckpt_path=last'])
    assert f'Restored all states from the checkpoint at {last}' in caplog.text
    state = torch.load(last, weights_only=True)
    assert state['global_step'] == 4
    assert not any(k.startswith('teacher.') for k in state['state_dict'])
