# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""configs/gfm_streaming.yaml runs as shipped but for sizes, data and hardware."""

from pathlib import Path

import pytest
import torch
import yaml
from torchgeo.main import main as torchgeo_main

from tests.tasks.test_continual_pretraining_configs import TINY

CONFIGS = Path(__file__).parents[2] / 'configs'


def test_recipe_matches_paper_config() -> None:
    text = (CONFIGS / 'gfm_streaming.yaml').read_text()
    # only the output folders differ, so that the two runs never share checkpoints
    streaming = yaml.safe_load(text.replace('output/gfm_streaming', 'output/gfm'))
    paper = yaml.safe_load((CONFIGS / 'gfm.yaml').read_text())
    assert streaming['model'] == paper['model']
    assert streaming['trainer'] == paper['trainer']
    data = streaming['data']
    assert data['class_path'] == 'torchgeo_gfm.datamodules.GeoPileStreamingDataModule'
    assert data['init_args']['batch_size'] == paper['data']['init_args']['batch_size']


@pytest.mark.slow
def test_streaming_config_fits_and_checkpoints_the_loader(
    s3_shards: str, cache_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr('sys.argv', ['torchgeo'])
    monkeypatch.chdir(tmp_path)  # the config's checkpoint dirpath is relative
    torchgeo_main(
        [
            'fit',
            f'--config={CONFIGS / "gfm_streaming.yaml"}',
            *TINY,
            f'--data.init_args.input_dir={s3_shards}',
            f'--data.init_args.cache_dir={cache_dir}',
            '--trainer.accelerator=cpu',
            '--trainer.devices=1',
            '--trainer.strategy=auto',
            '--trainer.max_steps=3',
            f'--trainer.default_root_dir={tmp_path}',
        ]
    )
    ckpts = sorted((tmp_path / 'output').rglob('*.ckpt'))
    assert ckpts
    state = torch.load(ckpts[-1], map_location='cpu', weights_only=False)
    loader = state['loops']['fit_loop']['state_dict']['combined_loader'][0]
    assert loader['num_samples_yielded'] == 3 * 2  # mid-epoch position, for resume
