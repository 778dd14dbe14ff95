# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Every fine-tuning config fits on generated fake data, with GFM's and the IN-22k backbone."""

import re
from pathlib import Path

import pytest
import timm
import torch
import yaml
from torchgeo.main import main

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base and swin_base_in22k)
from tests.models.fake_data import TINY_SWIN
from torchgeo_gfm import arp
from torchgeo_gfm.tasks.inference import INFERENCE_KEY

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / 'configs' / 'finetune'
DATA = ROOT / 'tests' / 'data'
#: config -> (fake data folder, overrides that keep the run tiny)
CASES: dict[str, tuple[str, list[str]]] = {
    'oscd': ('oscd', ['--data.init_args.patch_size=32']),
    'dsifn': ('dsifn', ['--data.init_args.patch_size=32']),
    'ucmerced': ('ucmerced', []),
    'bigearthnet_10': ('bigearthnet', ['--data.init_args.batch_size=1']),
    'bigearthnet_1': ('bigearthnet', ['--data.init_args.batch_size=1']),
    'whu_building': ('whu_building', ['--data.init_args.patch_size=32']),
    'vaihingen': ('vaihingen', ['--data.init_args.patch_size=32']),
    'spacenet2_sr': (
        'spacenet2_sr',
        [
            '--data.init_args.patch_size=16',
            '--data.dict_kwargs.aois=[2]',
            '--data.init_args.val_split_pct=0.2',
            '--model.init_args.head_channels=8',
        ],
    ),
}
TINY = TINY_SWIN


SWAP = re.compile(r'^(\s*\w+:) (\S+)(\s+# IN-22k baseline: )(\S+)$', re.MULTILINE)


def fit(config: Path, name: str, tmp_path: Path, *extra: str) -> None:
    cli('fit', config, name, tmp_path, '--trainer.fast_dev_run=1', *extra)


def cli(subcommand: str, config: Path, name: str, tmp_path: Path, *extra: str) -> None:
    data, overrides = CASES[name]
    main(
        [
            subcommand,
            f'--config={config}',
            '--model.init_args.weights=null',  # tests never download
            f'--data.{root_group(name)}.root={DATA / data}',
            '--data.init_args.batch_size=2',
            '--data.init_args.num_workers=0',
            '--trainer.accelerator=cpu',
            f'--trainer.default_root_dir={tmp_path}',
            *overrides,
            *extra,
        ]
    )


def root_group(name: str) -> str:
    """Where a config sets the dataset root: TorchGeo's datamodules take dict_kwargs."""
    return 'init_args' if name.startswith('bigearthnet') else 'dict_kwargs'


def backbone_line(name: str) -> tuple[str, str, str]:
    """(key, GFM backbone, IN-22k backbone) of the config's one swappable line."""
    matches = SWAP.findall((CONFIGS / f'{name}.yaml').read_text())
    assert len(matches) == 1, 'one line names the backbone and its IN-22k alternative'
    key, gfm, _, in22k = matches[0]
    return key.strip().rstrip(':'), gfm, in22k


def test_every_config_is_tested() -> None:
    # the multispectral ones: tests/configs/test_multispectral_configs.py
    multispectral = {'eurosat13', 'bigearthnet_s2'}
    stems = {p.stem for p in CONFIGS.glob('*.yaml')} - multispectral
    assert sorted(stems) == sorted(CASES)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CASES))
def test_fit(name: str, tmp_path: Path) -> None:
    # the config as written, but a tiny Swin in place of Swin-B (2 CPU cores)
    key, gfm, _ = backbone_line(name)
    tiny = f'{"tu-" if gfm.startswith("tu-") else ""}{TINY}'
    fit(CONFIGS / f'{name}.yaml', name, tmp_path, f'--model.init_args.{key}={tiny}')


@pytest.mark.parametrize('name', sorted(CASES))
def test_checkpoints_record_inference_metadata(name: str) -> None:
    # TorchGeo's tasks, swapped in, record it too: the callback is in the config
    trainer = yaml.safe_load((CONFIGS / f'{name}.yaml').read_text())['trainer']
    paths = [c['class_path'] for c in trainer.get('callbacks', [])]
    assert 'torchgeo_gfm.tasks.InferenceMetadata' in paths


@pytest.mark.slow
@pytest.mark.parametrize('name', ['spacenet2_sr', 'oscd'])
def test_fit_writes_inference_metadata(name: str, tmp_path: Path) -> None:
    # one step of the config as written (tiny Swin): the checkpoint says what it is
    key, gfm, _ = backbone_line(name)
    tiny = f'{"tu-" if gfm.startswith("tu-") else ""}{TINY}'
    cli(
        'fit',
        CONFIGS / f'{name}.yaml',
        name,
        tmp_path,
        f'--model.init_args.{key}={tiny}',
        f'--trainer.logger.init_args.save_dir={tmp_path / "logs"}',
        '--trainer.max_steps=1',
        '--trainer.limit_train_batches=1',
        '--trainer.limit_val_batches=1',
        '--trainer.num_sanity_val_steps=0',
    )
    (checkpoint,) = (tmp_path / 'logs').rglob('*.ckpt')
    meta = torch.load(checkpoint, weights_only=True)[INFERENCE_KEY]
    config = yaml.safe_load((CONFIGS / f'{name}.yaml').read_text())
    assert (
        meta['task'].rpartition('.')[2]
        == config['model']['class_path'].rpartition('.')[2]
    )
    assert meta['datamodule'].endswith(config['data']['class_path'].rpartition('.')[2])
    assert len(meta['mean']) == len(meta['std']) == len(meta['bands'])
    assert meta['kind'] == {'spacenet2_sr': 'super_resolution', 'oscd': 'change'}[name]
    if name == 'oscd':
        assert meta['bands'] == ['B04', 'B03', 'B02']


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CASES))
def test_test_stage_feeds_arp(name: str, tmp_path: Path) -> None:
    # `torchgeo test` with the config's CSV logger writes the columns `torchgeo-gfm arp` reads
    key, gfm, _ = backbone_line(name)
    tiny = f'{"tu-" if gfm.startswith("tu-") else ""}{TINY}'
    logs = tmp_path / 'logs'
    cli(
        'test',
        CONFIGS / f'{name}.yaml',
        name,
        tmp_path,
        f'--model.init_args.{key}={tiny}',
        f'--trainer.logger.init_args.save_dir={logs}',
        '--trainer.limit_test_batches=1',
    )
    scores = arp.collect(arp.discover_runs(logs))
    assert {e.name for e in arp.PAPER if e.run == name} == set(scores)
    assert all(score >= 0 for score in scores.values())


@pytest.mark.parametrize('name', sorted(CASES))
def test_one_line_swaps_to_in22k(name: str) -> None:
    text = (CONFIGS / f'{name}.yaml').read_text()
    _, gfm, in22k = backbone_line(name)
    assert gfm.removeprefix('tu-') == 'gfm_swin_base'
    assert timm.is_model(in22k.removeprefix('tu-'))
    assert timm.get_pretrained_cfg(in22k.removeprefix('tu-')).hf_hub_id == (
        'timm/swin_base_patch4_window7_224.ms_in22k'
    )
    assert yaml.safe_load(text)['trainer']['logger']['init_args']['name'] == name


@pytest.mark.slow
@pytest.mark.parametrize('name', ['whu_building'])
def test_fit_in22k(name: str, tmp_path: Path) -> None:
    # the swapped config, real Swin-B (random init): the one-line switch runs as written
    text = (CONFIGS / f'{name}.yaml').read_text()
    config = tmp_path / f'{name}.yaml'
    config.write_text(SWAP.sub(r'\1 \4\3\2', text))
    assert 'swin_base_in22k  # IN-22k' in config.read_text()
    fit(config, name, tmp_path)
