# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""BigEarthNet RGB datamodule with a reproducible training-set fraction (GFM's 10%/1%)."""

import kornia.augmentation as K
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch.utils.data import Subset
from torchgeo.datamodules import BigEarthNetDataModule
from torchgeo.datasets import BigEarthNet
from torchgeo.datasets.utils import Path, Sample

from .utils import IMAGENET_MEAN, IMAGENET_STD

#: Sentinel-2 bands B04, B03, B02 (red, green, blue) in BigEarthNet's 12-band order
RGB = [3, 2, 1]


def select_rgb(sample: Sample) -> Sample:
    """Keep the red, green and blue bands of a 12-band Sentinel-2 sample.

    Args:
        sample: a :class:`~torchgeo.datasets.BigEarthNet` sample (``bands='s2'``).

    Returns:
        The sample with a 3-band ``image``.

    .. versionadded:: 0.1
    """
    return {**sample, 'image': sample['image'][RGB]}


def fraction_indices(length: int, fraction: float, seed: int) -> list[int]:
    """A reproducible random subset of ``range(length)``, without repetition.

    Args:
        length: size of the full set.
        fraction: share to keep, in (0, 1].
        seed: random seed.

    Returns:
        Sorted indices (at least one).

    Raises:
        ValueError: if *fraction* is outside (0, 1].

    .. versionadded:: 0.1
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'train_fraction must be in (0, 1], got {fraction}')
    keep = max(1, round(fraction * length))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(length, generator=generator)[:keep].tolist())


class BigEarthNetRGBDataModule(BigEarthNetDataModule):
    """BigEarthNet (v1, 19 classes) as GFM fine-tunes it: RGB at 128 px, a train fraction.

    Loads Sentinel-2, keeps B04/B03/B02, scales each band by TorchGeo's 2-98 %
    statistics to [0, 1], resizes 120 -> ``image_size`` and applies ImageNet
    normalization on the device; training adds, as the authors' ``data/ben_data.py``
    with mixup on, a random resized crop (area 0.67-1, aspect 3/4-4/3) and horizontal and
    vertical flips.
    ``train_fraction`` keeps a random share of the training split (GFM: 10 % and 1 %),
    the same for a given ``seed``; val/test stay whole.

    Differences from the authors' code: they draw the subset with replacement
    (``np.random.choice``), so some images repeat; this draws without.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        train_fraction: float = 1.0,
        seed: int = 0,
        image_size: int = 128,
        root: Path = 'data',
        download: bool = False,
        checksum: bool = True,
    ) -> None:
        """Initialize a new BigEarthNetRGBDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            train_fraction: share of the training split to use, in (0, 1].
            seed: seed of the training subset.
            image_size: side of the resized images.
            root: root directory of :class:`~torchgeo.datasets.BigEarthNet`.
            download: download the dataset if missing.
            checksum: check the MD5 of downloaded files.
        """
        fraction_indices(1, train_fraction, seed)  # validate early
        super().__init__(
            batch_size,
            num_workers,
            root=root,
            bands='s2',
            transforms=select_rgb,
            download=download,
            checksum=checksum,
        )
        self.train_fraction = train_fraction
        self.seed = seed
        lo = self.mins[2:][RGB]
        span = self.maxs[2:][RGB] - lo
        # per-band [0, 1] scaling then ImageNet statistics, folded into one Normalize
        self.mean = lo + span * IMAGENET_MEAN / 255
        self.std = span * IMAGENET_STD / 255
        self.train_aug = K.AugmentationSequential(
            K.Normalize(mean=self.mean, std=self.std),
            K.Resize(image_size),
            K.RandomResizedCrop(
                (image_size, image_size), scale=(0.67, 1.0), ratio=(3 / 4, 4 / 3)
            ),
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
            data_keys=None,
            keepdim=True,
        )
        self.aug = K.AugmentationSequential(
            K.Normalize(mean=self.mean, std=self.std),
            K.Resize(image_size),
            data_keys=None,
            keepdim=True,
        )

    def plot(self, sample: Sample) -> Figure:
        """Plot an RGB sample with its labels (and predictions, if present).

        Args:
            sample: ``image`` (RGB, reflectance values as loaded), ``label`` and
                optionally ``prediction``, multi-hot over the 19 classes.

        Returns:
            The figure.
        """
        classes = BigEarthNet.class_sets[19]
        image = (sample['image'][:3].float() / 2000).clamp(0, 1).permute(1, 2, 0)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(image.numpy())
        ax.axis('off')
        title = 'Labels: ' + ', '.join(
            classes[i] for i in sample['label'].nonzero().flatten().tolist()
        )
        if 'prediction' in sample:
            predicted = sample['prediction'].nonzero().flatten().tolist()
            title += '\nPredictions: ' + ', '.join(classes[i] for i in predicted)
        ax.set_title(title, fontsize=7, wrap=True)
        return fig

    def setup(self, stage: str) -> None:
        """Set up datasets, subsetting the training split.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        super().setup(stage)
        if stage == 'fit' and self.train_fraction < 1 and self.train_dataset:
            n = len(self.train_dataset)  # type: ignore[arg-type]
            indices = fraction_indices(n, self.train_fraction, self.seed)
            self.train_dataset = Subset(self.train_dataset, indices)
