# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules import BigEarthNetRGBDataModule
from torchgeo_gfm.datamodules.bigearthnet import fraction_indices, select_rgb

DATA = Path(__file__).parents[1] / 'data'


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
        batch = device_batch(dm, stage)
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
