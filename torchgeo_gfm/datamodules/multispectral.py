# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fine-tuning on multispectral classification datasets, normalised by a sensor.

TorchGeo's datamodules normalise Sentinel-2 with their own statistics (or divide by
10000); a GFM student continually pretrained on a sensor expects that sensor's
(:meth:`~torchgeo_gfm.sensors.Sensor.normalize`). The datamodules here load the sensor's
bands, in the sensor's order, from a TorchGeo dataset and apply GFM's fine-tuning
pipeline on the device: normalise with the sensor's mean/std, resize, and for training a
random resized crop and flips (the authors' ``data/ben_data.py``).

.. versionadded:: 0.2
"""

import os
import re
from collections.abc import Sequence
from typing import Any

import kornia.augmentation as K
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

from ..sensors import Sensor, SensorError, get_sensor

_BAND = re.compile(r'^B0*(\d+)(A?)$', re.IGNORECASE)


def band_key(name: str) -> str:
    """A Sentinel-2 band name without its zero padding: ``B01`` and ``B1`` are ``B1``.

    Args:
        name: a band name (``B01``, ``B8A``, ``B08A``; other names are kept as given).

    Returns:
        The name to compare.

    .. versionadded:: 0.2
    """
    m = _BAND.match(name)
    return f'B{int(m[1])}{m[2].upper()}' if m else name


def band_indices(sensor: Sensor, stored: Sequence[str], where: str) -> list[int]:
    """Positions in *stored* of the sensor's bands, in the sensor's order.

    Args:
        sensor: the bands wanted.
        stored: the band names of the data, in their stored order.
        where: the data, for the error message.

    Returns:
        One index into *stored* per band of *sensor*.

    Raises:
        SensorError: if the data lack a band of the sensor.

    .. versionadded:: 0.2
    """
    position = {band_key(b): i for i, b in enumerate(stored)}
    missing = [b for b in sensor.bands if band_key(b) not in position]
    if missing:
        raise SensorError(
            f'{where} has no band {", ".join(missing)} of sensor {sensor.name} '
            f'({", ".join(sensor.bands)}); it stores {", ".join(stored)}: use a sensor '
            'whose bands are among these (e.g. a YAML file listing them).'
        )
    return [position[band_key(b)] for b in sensor.bands]


class SensorClassificationDataModule(NonGeoDataModule):
    """A TorchGeo classification dataset in a sensor's bands, normalised by the sensor.

    Batches leave the loader in the sensor's stored values (e.g. uint16 reflectance x
    10000 as float); on the device they are normalised with the sensor's mean/std
    (``mean``/``std`` here, recorded in checkpoints with the sensor), resized to
    ``image_size``, and in training cropped (random resized crop, area 0.67-1, aspect
    3/4-4/3) and flipped horizontally and vertically.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        sensor: str | os.PathLike[str] | Sensor,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int = 128,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        **kwargs: Any,
    ) -> None:
        """Initialize a new SensorClassificationDataModule instance.

        Args:
            dataset_class: the TorchGeo dataset.
            sensor: a shipped sensor name, a sensor YAML file or a
                :class:`~torchgeo_gfm.sensors.Sensor`.
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            image_size: side of the model's input.
            scale: area range of the training crops.
            ratio: aspect ratio range of the training crops.
            **kwargs: passed to *dataset_class*.
        """
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.sensor = get_sensor(sensor)
        self.bands = list(self.sensor.bands)
        self.mean = torch.tensor(self.sensor.mean)
        self.std = torch.tensor(self.sensor.std)
        normalize = K.Normalize(mean=self.mean, std=self.std)  # = sensor.normalize
        size = (image_size, image_size)
        self.train_aug = K.AugmentationSequential(
            normalize,
            K.Resize(size),
            K.RandomResizedCrop(size, scale=scale, ratio=ratio),
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
            data_keys=None,
            keepdim=True,
        )
        self.aug = K.AugmentationSequential(
            normalize, K.Resize(size), data_keys=None, keepdim=True
        )

    def plot(self, sample: Sample) -> Figure:
        """Plot a sample in true colour with its label(s) (and prediction, if present).

        Args:
            sample: ``image`` in the sensor's stored values, ``label`` (a class index or
                multi-hot labels) and optionally ``prediction``.

        Returns:
            The figure.
        """
        image = self.sensor.true_colour(sample['image'].float()).permute(1, 2, 0)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(image.numpy())
        ax.axis('off')
        title = f'Label: {_names(sample["label"])}'
        if 'prediction' in sample:
            title += f'\nPrediction: {_names(sample["prediction"])}'
        ax.set_title(title, fontsize=7, wrap=True)
        return fig


def _names(label: torch.Tensor) -> str:
    """A class index, or the indices of the labels present in a multi-hot vector."""
    if label.ndim == 0:
        return str(int(label))
    return ', '.join(str(i) for i in label.nonzero().flatten().tolist())
