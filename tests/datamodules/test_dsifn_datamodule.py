# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest
import torch

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules import DSIFNDataModule
from torchgeo_gfm.datamodules.utils import IMAGENET_MEAN

DATA = Path(__file__).parents[1] / 'data'


class TestDSIFNDataModule:
    def test_train(self) -> None:
        dm = DSIFNDataModule(root=DATA / 'dsifn', batch_size=2, patch_size=16)
        batch = device_batch(dm, 'train')
        assert batch['image'].shape == (2, 2, 3, 16, 16)
        assert batch['mask'].shape == (2, 1, 16, 16)
        # normalized with ImageNet statistics
        assert batch['image'].min() < 0

    def test_crop_same_for_both_dates_and_mask(self) -> None:
        dm = DSIFNDataModule(root=DATA / 'dsifn', patch_size=8)
        # the mask is image 1's first channel thresholded: a crop must keep that tie
        image = torch.rand(2, 2, 3, 32, 32) * 255
        image[:, 1] = image[:, 0]
        mask = (image[:, :1, 0] > 127).long()
        out = dm.train_aug({'image': image, 'mask': mask})
        assert torch.equal(out['image'][:, 0], out['image'][:, 1])
        expected = (out['image'][:, 0, 0] > (127 - IMAGENET_MEAN[0]) / dm.std[0]).long()
        assert torch.equal(out['mask'][:, 0], expected)

    @pytest.mark.parametrize('stage', ['val', 'test'])
    def test_eval_whole_tiles(self, stage: str) -> None:
        dm = DSIFNDataModule(root=DATA / 'dsifn', batch_size=2, patch_size=16)
        batch = device_batch(dm, stage)
        assert batch['image'].shape == (2, 2, 3, 32, 32)
