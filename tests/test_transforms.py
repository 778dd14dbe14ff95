# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import kornia.augmentation as K
import torch

from torchgeo_gfm.transforms import (
    BitemporalAugmentation,
    RandomPairCrop,
    random_crop,
    random_flip_rotate,
)


class TestBitemporalAugmentation:
    def test_same_transform_for_dates_and_mask(self) -> None:
        image = torch.rand(2, 2, 3, 32, 32) * 255
        image[:, 1] = image[:, 0]
        mask = (image[:, :1, 0] > 127).long()
        aug = BitemporalAugmentation(
            K.RandomCrop((8, 8)), K.RandomHorizontalFlip(), K.RandomVerticalFlip()
        )
        out = aug({'image': image, 'mask': mask})
        assert out['image'].shape == (2, 2, 3, 8, 8)
        assert out['mask'].shape == (2, 1, 8, 8)
        assert torch.equal(out['image'][:, 0], out['image'][:, 1])
        assert torch.equal(out['mask'][:, 0], (out['image'][:, 0, 0] > 127).long())


class TestRandomPairCrop:
    def test_aligned_and_padded(self) -> None:
        image = torch.arange(10 * 12).float().reshape(1, 1, 10, 12).expand(2, 3, 10, 12)
        sample = {'image': image, 'mask': image[0, :1].long()}
        out = RandomPairCrop((4, 5))(sample)
        assert out['image'].shape == (2, 3, 4, 5)
        assert torch.equal(out['image'][1, 2].long(), out['mask'][0])
        padded = RandomPairCrop((12, 12))(sample)
        assert padded['image'].shape == (2, 3, 12, 12)
        assert padded['mask'].shape == (1, 12, 12)

    def test_two_dimensional_mask(self) -> None:
        image = torch.arange(36.0).reshape(1, 6, 6).expand(3, 6, 6)
        out = RandomPairCrop((3, 3))({'image': image, 'mask': image[0].long()})
        assert torch.equal(out['image'][0].long(), out['mask'])


class TestSuperResolutionBatchTransforms:
    def test_crop_and_augment_stay_aligned(self) -> None:
        # target = image upsampled 4x: crops, flips and rotations must keep that
        image = torch.rand(3, 2, 40, 40)
        batch = {
            'image': image,
            'target': image.repeat_interleave(4, -1).repeat_interleave(4, -2),
        }
        generator = torch.Generator().manual_seed(1)
        out = random_flip_rotate(random_crop(batch, 10, generator), generator)
        assert out['image'].shape == (3, 2, 10, 10)
        assert out['target'].shape == (3, 2, 40, 40)
        assert torch.equal(out['target'][..., ::4, ::4], out['image'])

    def test_crop_larger_than_image(self) -> None:
        batch = {'image': torch.rand(1, 1, 8, 8), 'target': torch.rand(1, 1, 32, 32)}
        assert random_crop(batch, 64) is batch
