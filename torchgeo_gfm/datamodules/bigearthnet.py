# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""BigEarthNet datamodules with a reproducible training-set fraction (GFM's 10%/1%).

RGB (v1, the paper's setting) and Sentinel-2 (v2, 12 bands normalised by a sensor).
"""

import os
from functools import partial
from typing import Any

import kornia.augmentation as K
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch.utils.data import Subset
from torchgeo.datamodules import BigEarthNetDataModule
from torchgeo.datasets import BigEarthNet, BigEarthNetV2
from torchgeo.datasets.utils import Path, Sample

from ..sensors import Sensor
from .multispectral import SensorClassificationDataModule, band_indices
from .utils import IMAGENET_MEAN, IMAGENET_STD

#: BigEarthNet's 12 Sentinel-2 bands in the order TorchGeo stacks them (v1 and v2)
S2_BANDS = (
    'B01',
    'B02',
    'B03',
    'B04',
    'B05',
    'B06',
    'B07',
    'B08',
    'B8A',
    'B09',
    'B11',
    'B12',
)
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


def select_bands(indices: list[int], sample: Sample) -> Sample:
    """Keep the image bands at *indices* (in that order), the image and the labels.

    Args:
        indices: band positions in the sample's image.
        sample: a :class:`~torchgeo.datasets.BigEarthNetV2` sample (``bands='s2'``);
            its reference map (``mask``) is dropped, classification does not use it.

    Returns:
        ``image`` and ``label``.

    .. versionadded:: 0.2
    """
    return {'image': sample['image'][indices], 'label': sample['label']}


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


def keep_fraction(
    datamodule: BigEarthNetDataModule | SensorClassificationDataModule,
    fraction: float,
    seed: int,
) -> None:
    """Replace the datamodule's training set by a reproducible random share of it.

    Args:
        datamodule: a set-up datamodule.
        fraction: share to keep, in (0, 1] (1: all, unchanged).
        seed: random seed.
    """
    if fraction < 1 and datamodule.train_dataset:
        n = len(datamodule.train_dataset)  # type: ignore[arg-type]
        indices = fraction_indices(n, fraction, seed)
        datamodule.train_dataset = Subset(datamodule.train_dataset, indices)


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
        if stage == 'fit':
            keep_fraction(self, self.train_fraction, self.seed)


class BigEarthNetS2DataModule(SensorClassificationDataModule):
    """BigEarthNet v2 multi-label (19 classes), Sentinel-2 bands normalised by a sensor.

    :class:`~torchgeo.datasets.BigEarthNetV2` (``bands='s2'``: the 12 L2A bands, B10 is
    not delivered, resampled to 120 px) with the sensor's bands selected in the sensor's
    order (``s2_l2a``: all 12, in BigEarthNet's order). v2 is BigEarthNet with the
    problematic v1 patches removed, new labels and splits (its ``val`` split is
    ``validation``); the paper's RGB results are on v1
    (:class:`BigEarthNetRGBDataModule`). ``train_fraction`` keeps a random share of
    the training split (GFM: 10 % and 1 %), the same for a given ``seed``. Normalisation
    and augmentation: see
    :class:`~torchgeo_gfm.datamodules.SensorClassificationDataModule`.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        sensor: str | os.PathLike[str] | Sensor = 's2_l2a',
        train_fraction: float = 1.0,
        seed: int = 0,
        image_size: int = 128,
        root: Path = 'data',
        download: bool = False,
        checksum: bool = True,
        **kwargs: Any,
    ) -> None:
        """Initialize a new BigEarthNetS2DataModule instance.

        Args:
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            sensor: the sensor (name, YAML file or object) whose bands, in its order,
                the model takes; each must be one of BigEarthNet's 12.
            train_fraction: share of the training split to use, in (0, 1].
            seed: seed of the training subset.
            image_size: side of the model's input.
            root: root directory of :class:`~torchgeo.datasets.BigEarthNetV2`.
            download: download the dataset if missing.
            checksum: check the SHA-256 of downloaded files.
            **kwargs: further arguments of :class:`~torchgeo.datasets.BigEarthNetV2`
                (not ``bands`` or ``transforms``: the sensor chooses the bands).

        Raises:
            SensorError: if the sensor has a band BigEarthNet does not store.
        """
        fraction_indices(1, train_fraction, seed)  # validate early
        super().__init__(
            BigEarthNetV2,
            sensor,
            batch_size,
            num_workers,
            image_size,
            root=root,
            bands='s2',
            download=download,
            checksum=checksum,
            **kwargs,
        )
        indices = band_indices(self.sensor, S2_BANDS, 'BigEarthNet (Sentinel-2)')
        self.kwargs['transforms'] = partial(select_bands, indices)
        self.train_fraction = train_fraction
        self.seed = seed

    def setup(self, stage: str) -> None:
        """Set up datasets, subsetting the training split.

        Args:
            stage: 'fit', 'validate', 'test' or 'predict'.
        """
        super().setup(stage)
        if stage == 'fit':
            keep_fraction(self, self.train_fraction, self.seed)
