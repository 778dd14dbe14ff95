# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""SpaceNet2 super-resolution datamodule."""

from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.data import random_split
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..datasets.spacenet2_sr import SpaceNet2SuperResolution
from ..transforms import random_crop, random_flip_rotate


class SpaceNet2SRDataModule(NonGeoDataModule):
    """LightningDataModule for SpaceNet2 super-resolution.

    Like TorchGeo's SpaceNet datamodules, randomly splits SpaceNet2's train split
    (seed 0) into train/val/test (SpaceNet2's own test split is used for prediction).
    Training takes random aligned crops (``patch_size`` input pixels) with flips and
    90-degree rotations, on the device; evaluation sees whole chips.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 16,
        patch_size: int = 64,
        val_split_pct: float = 0.1,
        test_split_pct: float = 0.2,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SpaceNet2SRDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            patch_size: size of the training crops, in input (1.24 m) pixels; the
                target crop covers the same ground.
            val_split_pct: fraction of the train split used for validation.
            test_split_pct: fraction of the train split used for testing.
            num_workers: number of workers for parallel data loading.
            **kwargs: passed to :class:`~torchgeo_gfm.datasets.SpaceNet2SuperResolution`.
        """
        super().__init__(
            SpaceNet2SuperResolution,  # type: ignore[arg-type]
            batch_size,
            num_workers,
            **kwargs,
        )
        self.patch_size = patch_size
        self.val_split_pct = val_split_pct
        self.test_split_pct = test_split_pct

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        if stage in ('fit', 'validate', 'test'):
            self.dataset = SpaceNet2SuperResolution(split='train', **self.kwargs)
            fractions = [
                1 - self.val_split_pct - self.test_split_pct,
                self.val_split_pct,
                self.test_split_pct,
            ]
            generator = torch.Generator().manual_seed(0)
            self.train_dataset, self.val_dataset, self.test_dataset = random_split(
                self.dataset, fractions, generator
            )
        if stage == 'predict':
            self.predict_dataset = SpaceNet2SuperResolution(split='test', **self.kwargs)

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Crop and augment training batches on the device.

        Args:
            batch: a batch of data.
            dataloader_idx: index of the dataloader.

        Returns:
            The batch.
        """
        if self.trainer and self.trainer.training:
            batch = random_flip_rotate(random_crop(batch, self.patch_size))
        return batch

    def plot(self, sample: Sample) -> Figure:
        """Plot a sample: input (bicubic), target and, if present, prediction.

        Args:
            sample: a sample with ``image``, ``target`` and optionally ``prediction``.

        Returns:
            The figure.
        """
        keys = [k for k in ('image', 'target', 'prediction') if k in sample]
        size = tuple(sample['target'].shape[-2:])
        fig, axs = plt.subplots(1, len(keys), figsize=(4 * len(keys), 4))
        for ax, key in zip(axs, keys):
            x = sample[key].float()
            if key == 'image':
                x = F.interpolate(x[None], size=size, mode='bicubic')[0]
            bands = [4, 2, 1] if x.shape[0] == 8 else [0, 1, 2]
            ax.imshow(x[bands].clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_title(key.capitalize())
            ax.axis('off')
        return fig
