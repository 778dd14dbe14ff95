# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from lightning.pytorch import Trainer

from torchgeo_gfm.datamodules import BigEarthNetRGBDataModule, OSCDDataModule
from torchgeo_gfm.datamodules.bigearthnet import fraction_indices, select_rgb
from torchgeo_gfm.datamodules.oscd import RandomPairCrop

DATA = Path(__file__).parents[1] / 'data'
RGB = ['B04', 'B03', 'B02']


def _batch(dm: OSCDDataModule | BigEarthNetRGBDataModule, stage: str) -> dict:
    dm.trainer = Trainer(logger=False, enable_progress_bar=False)
    dm.setup('fit' if stage in ('train', 'val') else stage)
    batch = next(iter(getattr(dm, f'{stage}_dataloader')()))
    flag = {'train': 'training', 'val': 'validating'}.get(stage, 'testing')
    setattr(dm.trainer, flag, True)
    return dm.on_after_batch_transfer(batch, 0)


class TestOSCDDataModule:
    @pytest.mark.parametrize('stage', ['train', 'val', 'test'])
    def test_batches(self, stage: str) -> None:
        dm = OSCDDataModule(root=DATA / 'oscd', bands=RGB, batch_size=2, patch_size=16)
        batch = _batch(dm, stage)
        assert batch['image'].shape == (2, 2, 3, 16, 16)
        assert batch['mask'].shape == (2, 1, 16, 16)
        # normalized with OSCD's band statistics
        assert batch['image'].abs().mean() < 10

    def test_test_tiles_every_city(self) -> None:
        dm = OSCDDataModule(root=DATA / 'oscd', bands=RGB, patch_size=16)
        dm.setup('test')
        # fake cities are 30-50 px: 3 x 3 tiles of 16 px each
        assert len(dm.test_dataset) == 2 * 9  # type: ignore[arg-type]

    def test_pair_crop_aligned_and_padded(self) -> None:
        image = torch.arange(10 * 12).float().reshape(1, 1, 10, 12).expand(2, 3, 10, 12)
        sample = {'image': image, 'mask': image[0, :1].long()}
        out = RandomPairCrop((4, 5))(sample)
        assert out['image'].shape == (2, 3, 4, 5)
        assert torch.equal(out['image'][1, 2].long(), out['mask'][0])
        padded = RandomPairCrop((12, 12))(sample)
        assert padded['image'].shape == (2, 3, 12, 12)
        assert padded['mask'].shape == (1, 12, 12)


class TestBigEarthNetRGBDataModule:
    def test_fraction_indices(self) -> None:
        a = fraction_indices(1000, 0.1, seed=0)
        assert len(a) == len(set(a)) == 100
        assert a == fraction_indices(1000, 0.1, seed=0)
        assert a != fraction_indices(1000, 0.1, seed=1)
        assert len(fraction_indices(10, 0.01, seed=0)) == 1
        with pytest.raises(ValueError, match=r'train_fraction must be in \(0, 1\]'):
            fraction_indices(10, 0, seed=0)
        with pytest.raises(ValueError, match='train_fraction'):
            BigEarthNetRGBDataModule(root=DATA / 'bigearthnet', train_fraction=1.5)

    def test_select_rgb(self) -> None:
        image = torch.arange(12.0)[:, None, None].expand(12, 2, 2)
        assert select_rgb({'image': image})['image'][:, 0, 0].tolist() == [3, 2, 1]

    @pytest.mark.parametrize(('fraction', 'length'), [(1.0, 10), (0.5, 5), (0.1, 1)])
    def test_train_fraction(self, fraction: float, length: int) -> None:
        dm = BigEarthNetRGBDataModule(
            root=DATA / 'bigearthnet', train_fraction=fraction, seed=3
        )
        dm.setup('fit')
        assert len(dm.train_dataset) == length  # type: ignore[arg-type]
        assert len(dm.val_dataset) == 2  # type: ignore[arg-type]

    @pytest.mark.parametrize('stage', ['train', 'val', 'test'])
    def test_batches(self, stage: str) -> None:
        dm = BigEarthNetRGBDataModule(
            root=DATA / 'bigearthnet', batch_size=2, image_size=64
        )
        batch = _batch(dm, stage)
        assert batch['image'].shape == (2, 3, 64, 64)
        assert batch['label'].shape == (2, 19)

    def test_plot(self) -> None:
        dm = BigEarthNetRGBDataModule(root=DATA / 'bigearthnet')
        dm.setup('fit')
        sample = dm.val_dataset[0]  # type: ignore[index]
        sample['prediction'] = sample['label']
        fig = dm.plot(sample)
        assert 'Predictions' in fig.axes[0].get_title()
        plt.close(fig)
