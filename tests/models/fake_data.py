# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Tiny parts for short fits: a random dataset/datamodule (64 px, 4 samples), a tiny Swin."""

import torch
from timm.models import register_model
from timm.models.swin_transformer import SwinTransformer, _create_swin_transformer
from torch import Tensor, nn
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset


class FakeDataset(NonGeoDataset):
    """Random uint8-range images with labels, masks or change masks."""

    def __init__(
        self,
        split: str = 'train',
        task: str = 'classification',
        bands: int = 3,
        size: int = 64,
    ) -> None:
        self.task, self.bands, self.size = task, bands, size
        self.gen = torch.Generator().manual_seed(hash(split) % 1000)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        shape = (self.bands, self.size, self.size)
        if self.task == 'change':
            shape = (2, *shape)
        sample = {'image': torch.randint(0, 256, shape, generator=self.gen).float()}
        if self.task == 'classification':
            sample['label'] = torch.tensor(index % 3)
        elif self.task == 'segmentation':
            sample['mask'] = torch.randint(
                0, 3, (self.size, self.size), generator=self.gen
            )
        else:
            sample['mask'] = torch.randint(
                0, 2, (1, self.size, self.size), generator=self.gen
            )
        return sample


class _Scale(nn.Module):
    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**batch, 'image': batch['image'] / 255}


class FakeDataModule(NonGeoDataModule):
    """Datamodule over :class:`FakeDataset` (also usable from ``torchgeo fit`` YAML)."""

    def __init__(
        self,
        task: str = 'classification',
        bands: int = 3,
        size: int = 64,
        batch_size: int = 2,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            FakeDataset, batch_size, num_workers, task=task, bands=bands, size=size
        )
        self.aug = _Scale()


#: a few-thousand-parameter Swin with GFM's layout, registered with timm (``tu-`` for smp)
TINY_SWIN = 'swin_test_tiny'


@register_model
def swin_test_tiny(pretrained: bool = False, **kwargs: object) -> SwinTransformer:
    """A few-thousand-parameter Swin with GFM's layout (4 stages, any input size)."""
    args = {
        'patch_size': 4,
        'window_size': 6,
        'embed_dim': 16,
        'depths': (1, 1, 1, 1),
        'num_heads': (1, 1, 2, 2),
        'strict_img_size': False,
        **kwargs,
    }
    return _create_swin_transformer('swin_tiny_patch4_window7_224', False, **args)
