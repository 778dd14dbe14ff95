# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""EuroSAT (Sentinel-2 L1C, 13 bands) in a sensor's band order, normalised by the sensor."""

import os
from typing import Any

from torchgeo.datasets import EuroSAT

from ..sensors import Sensor
from .multispectral import SensorClassificationDataModule, band_indices


class EuroSATSensorDataModule(SensorClassificationDataModule):
    """EuroSAT's 13 bands (or the sensor's subset) in the sensor's order, GFM's pipeline.

    EuroSAT's files store B8A last (B01 ... B12, B8A; TorchGeo >= 0.7 reads them so);
    Sentinel-2 sensors list it after B8 (:func:`~torchgeo_gfm.sensors.get_sensor`'s
    ``s2_l1c``: B1 ... B8, B8A, B9 ... B12). The dataset is asked for the sensor's bands
    by name, so images arrive in the sensor's order, and the model's RGB filters land on
    ``sensor.rgb``. Normalisation and augmentation: see
    :class:`~torchgeo_gfm.datamodules.SensorClassificationDataModule`.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        sensor: str | os.PathLike[str] | Sensor = 's2_l1c',
        image_size: int = 128,
        **kwargs: Any,
    ) -> None:
        """Initialize a new EuroSATSensorDataModule instance.

        Args:
            batch_size: size of each mini-batch.
            num_workers: number of workers for parallel data loading.
            sensor: the sensor (name, YAML file or object) whose bands, in its order,
                the model takes; each must be one of EuroSAT's.
            image_size: side of the model's input (EuroSAT's images are 64 px).
            **kwargs: passed to :class:`~torchgeo.datasets.EuroSAT` (not ``bands``).

        Raises:
            SensorError: if the sensor has a band EuroSAT does not store.
            ValueError: if ``bands`` is given (the sensor chooses them).
        """
        if 'bands' in kwargs:
            raise ValueError(
                'EuroSATSensorDataModule takes its bands from the sensor: remove '
                "'bands', or pass a sensor YAML listing the bands wanted."
            )
        super().__init__(EuroSAT, sensor, batch_size, num_workers, image_size, **kwargs)
        stored = EuroSAT.all_band_names
        indices = band_indices(self.sensor, stored, 'EuroSAT')
        self.kwargs['bands'] = tuple(stored[i] for i in indices)
