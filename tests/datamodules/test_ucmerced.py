# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules import UCMercedImageNetDataModule
from torchgeo_gfm.datamodules.utils import IMAGENET_MEAN, IMAGENET_STD

ROOT = Path(__file__).parents[2]
DATA = ROOT / 'tests' / 'data' / 'ucmerced'


class TestUCMercedImageNetDataModule:
    @pytest.mark.parametrize('split', ['train', 'val', 'test'])
    def test_batches_are_imagenet_normalised_at_size(self, split: str) -> None:
        dm = UCMercedImageNetDataModule(root=DATA, batch_size=2, size=64)
        out = device_batch(dm, split)
        assert out['image'].shape == (2, 3, 64, 64)
        assert out['label'].shape == (2,)

    def test_evaluation_normalisation_matches_the_weights(self) -> None:
        dm = UCMercedImageNetDataModule(root=DATA, batch_size=2, size=256)
        dm.setup('test')
        sample = dm.test_dataset[0]
        out = dm.aug({'image': sample['image'][None].float()})
        resized = torch.nn.functional.interpolate(
            sample['image'][None].float(), size=(256, 256), mode='bilinear'
        )
        expected = (resized - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[
            :, None, None
        ]
        torch.testing.assert_close(out['image'], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_torchgeo_fit_console_script_finds_gfm(tmp_path: Path) -> None:
    # `torchgeo fit` in a fresh interpreter: nothing imported torchgeo_gfm beforehand, the
    # config's class paths must, before timm is asked for gfm_swin_base.
    torchgeo = Path(sys.executable).with_name('torchgeo')
    args = [
        str(torchgeo),
        'fit',
        f'--config={ROOT / "configs" / "finetune" / "ucmerced.yaml"}',
        '--model.init_args.weights=null',
        f'--data.dict_kwargs.root={DATA}',
        '--data.init_args.batch_size=1',
        '--data.init_args.num_workers=0',
        '--data.init_args.size=32',
        '--trainer.accelerator=cpu',
        '--trainer.fast_dev_run=1',
        f'--trainer.default_root_dir={tmp_path}',
    ]
    result = subprocess.run(
        args, check=False, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
