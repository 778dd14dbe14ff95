# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""SSL4EO-S12 and SSL4EO-L as multispectral pretraining sources: one season per sample.

TorchGeo's :class:`~torchgeo.datasets.SSL4EOS12` and :class:`~torchgeo.datasets.SSL4EOL`
find, download and verify the data; the datasets here read one season of a location
the way GFM consumes it. They return what TorchGeo's ``seasons=1`` returns, faster (see
``benchmarks/data_throughput.py``): the same pixels (upsampled bands included: nearest
neighbour in both), in the stored dtype instead of float32 (half the bytes to collate and
copy for uint16; float32 on the device, exactly), SSL4EO-S12's single-band files read with
tifffile rather than opened with GDAL, and without the coordinates and timestamps GFM does
not use.
"""

import os
import random
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import rasterio
import tifffile
import torch
from torchgeo.datasets import SSL4EOL, SSL4EOS12
from torchgeo.datasets.utils import Sample

from ..datasets.multiband import GDAL_ENV, check_dtype
from ..sensors import Sensor, SensorError, get_sensor
from .multiband import MultibandPretrainDataModule


def _season(location: str) -> str:
    """One season folder of a location, drawn uniformly.

    Python's ``random``, as TorchGeo's ``seasons=1``: DataLoader workers seed it from
    the loader's base seed, so a seeded run draws the same seasons; the listing is sorted
    so that the draw does not depend on the file system's order.
    """
    return os.path.join(location, random.choice(sorted(os.listdir(location))))


def _split_sensor(
    sensor: str | os.PathLike[str] | Sensor | None,
    split: str,
    defaults: dict[str, str],
    dataset: str,
) -> Sensor:
    """The sensor given, or the one a split's data are (refusing splits without one)."""
    if sensor is not None:
        return get_sensor(sensor)
    if split not in defaults:
        known = ', '.join(f'{s} -> {n}' for s, n in defaults.items())
        raise SensorError(
            f'{dataset} split {split!r} has no shipped sensor ({known}); pass sensor= '
            'a YAML file describing its bands (torchgeo-gfm stats writes one)'
        )
    return get_sensor(defaults[split])


def _read_band(path: str, out: npt.NDArray[Any], sensor: Sensor) -> None:
    """Read a single-band file into ``out`` (264 x 264), as TorchGeo's rasterio read does.

    tifffile reads a plain GeoTIFF about 3x faster than GDAL opens one (measured in
    ``benchmarks/data_throughput.py``); a band stored at 20 or 60 m (132 or 44 px) is
    repeated to 264 px, which is exactly GDAL's nearest neighbour for integer factors.
    Anything else (another factor, a compression tifffile cannot decode without
    imagecodecs) is read by rasterio, resampled like TorchGeo's ``out_shape``.
    """
    try:
        band = tifffile.imread(path)
    except ValueError:  # e.g. LZW or JPEG without imagecodecs
        band = None
    if (
        band is None
        or band.ndim != 2
        or any(o % b for o, b in zip(out.shape, band.shape))
    ):
        with rasterio.open(path) as f:
            check_dtype(sensor, f.dtypes[0], path)
            f.read(1, out=out)
        return
    check_dtype(sensor, band.dtype.name, path)
    (h, w), (oh, ow) = band.shape, out.shape
    out.reshape(h, oh // h, w, ow // w)[:] = band[:, None, :, None]


def _check_size(size: int, chip: int) -> None:
    """Refuse crops larger than the chips (RandomResizedCrop would upsample them)."""
    if isinstance(size, int) and size > chip:
        raise ValueError(f'size must be <= {chip}, the side of the chips; got {size}')


class SSL4EOS12Season(SSL4EOS12):
    """SSL4EO-S12, one season per location: ``{'image': [C, 264, 264]}`` as stored.

    The locations are the folders present under ``root/split`` (TorchGeo counts the
    full release's 251,079), so a partial download works too.

    .. versionadded:: 0.2
    """

    def __init__(self, sensor: Sensor, **kwargs: Any) -> None:
        """Initialize a new SSL4EOS12Season instance.

        Args:
            sensor: the sensor of the split's bands (band count and dtype are checked).
            **kwargs: passed to :class:`~torchgeo.datasets.SSL4EOS12` (root, split,
                download, checksum); ``seasons`` is 1.

        Raises:
            DatasetNotFoundError: if the split is not found and not downloaded.
            SensorError: if the split's band count differs from the sensor's.
            ValueError: if the files' dtype differs from the sensor's.
        """
        super().__init__(**kwargs)
        sensor.check_bands(len(self.bands), f'SSL4EO-S12 split {self.split!r}')
        self.sensor = sensor
        self.locations = sorted(os.listdir(os.path.join(self.root, self.split)))
        self._dtype = np.dtype(sensor.dtype)
        with rasterio.Env(**GDAL_ENV), rasterio.open(self._band_file(0, 0)) as f:
            check_dtype(sensor, f.dtypes[0], f.name)

    def _band_file(self, index: int, band: int) -> str:
        """A band's file in a location's first season."""
        location = os.path.join(self.root, self.split, self.locations[index])
        season = min(os.listdir(location))
        return os.path.join(location, season, f'{self.bands[band]}.tif')

    def __len__(self) -> int:
        """Return the number of locations.

        Returns:
            Length of the dataset.
        """
        return len(self.locations)

    def __getitem__(self, index: int) -> Sample:
        """One season of a location, every band at 264 px (as TorchGeo reads them).

        Args:
            index: index of the location.

        Returns:
            ``{'image': [C, 264, 264]}`` in the sensor's dtype.
        """
        season = _season(os.path.join(self.root, self.split, self.locations[index]))
        image = np.empty((len(self.bands), self.size, self.size), self._dtype)
        with rasterio.Env(**GDAL_ENV):  # for the bands rasterio reads
            for i, band in enumerate(self.bands):
                _read_band(os.path.join(season, f'{band}.tif'), image[i], self.sensor)
        sample: Sample = {'image': torch.from_numpy(image)}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


class SSL4EOLSeason(SSL4EOL):
    """SSL4EO-L, one season per location: ``{'image': [C, 264, 264]}`` as stored.

    .. versionadded:: 0.2
    """

    def __init__(self, sensor: Sensor, **kwargs: Any) -> None:
        """Initialize a new SSL4EOLSeason instance.

        Args:
            sensor: the sensor of the split's bands (band count and dtype are checked).
            **kwargs: passed to :class:`~torchgeo.datasets.SSL4EOL` (root, split,
                download, checksum); ``seasons`` is 1.

        Raises:
            DatasetNotFoundError: if the split is not found and not downloaded.
            SensorError: if the files' band count differs from the sensor's.
            ValueError: if the files' dtype differs from the sensor's.
        """
        super().__init__(**kwargs)
        self.sensor = sensor
        first = os.path.join(self.subdir, self.scenes[0])
        path = os.path.join(first, min(os.listdir(first)), 'all_bands.tif')
        with rasterio.Env(**GDAL_ENV), rasterio.open(path) as f:
            self._check(f)

    def _check(self, f: rasterio.DatasetReader) -> None:
        """Refuse a file whose band count or dtype differs from the sensor."""
        self.sensor.check_bands(f.count, f.name)
        check_dtype(self.sensor, f.dtypes[0], f.name)

    def __getitem__(self, index: int) -> Sample:
        """One season of a location.

        Args:
            index: index of the location.

        Returns:
            ``{'image': [C, 264, 264]}`` in the sensor's dtype.
        """
        season = _season(os.path.join(self.subdir, self.scenes[index]))
        path = os.path.join(season, 'all_bands.tif')
        with rasterio.Env(**GDAL_ENV), rasterio.open(path) as f:
            self._check(f)
            image = torch.from_numpy(f.read())
        sample: Sample = {'image': image}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


class SSL4EOS12PretrainDataModule(MultibandPretrainDataModule):
    """Multispectral pretraining on SSL4EO-S12 (Sentinel-2 L1C or L2A), a season a sample.

    Each location gives one of its four seasons, drawn per sample
    (:class:`SSL4EOS12Season`: TorchGeo's :class:`~torchgeo.datasets.SSL4EOS12` reading
    with ``seasons=1``, faster); 264 px chips in stored values become, on the device,
    GFM's RandomResizedCrop(``size``) and flip. Batches:
    ``{'image': float32 [B, C, size, size]}``, stored values (reflectance x 10000), not
    normalised; its ``sensor`` says how to normalise and render them.

    Sensors by split: ``'s2c'`` (L1C, 13 bands) ``s2_l1c``, ``'s2a'`` (L2A, 12 bands)
    ``s2_l2a``; ``'s1'`` (SAR) needs ``sensor=`` a YAML describing it.

    .. versionadded:: 0.2
    """

    #: the shipped sensor of each split
    sensors: ClassVar[dict[str, str]] = {'s2c': 's2_l1c', 's2a': 's2_l2a'}

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        split: str = 's2c',
        sensor: str | os.PathLike[str] | Sensor | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 192,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        val_fraction: float = 0.0,
        seed: int = 0,
        pin_memory: bool = True,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SSL4EOS12PretrainDataModule instance.

        Args:
            root: TorchGeo's SSL4EO-S12 root (``root/<split>/<location>/<season>/B1.tif``).
            split: ``'s2c'`` (L1C), ``'s2a'`` (L2A) or ``'s1'``.
            sensor: the data's sensor; None: the split's shipped one.
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            size: side of the augmented crops fed to the model (<= 264).
            scale: RandomResizedCrop area range, relative to the 264 px chip.
            ratio: RandomResizedCrop aspect-ratio range.
            flip: probability of a horizontal flip.
            val_fraction: fraction of the locations held out; 0 disables validation.
            seed: seed of the train/val assignment.
            pin_memory: pin batches in page-locked memory (when CUDA is available).
            **kwargs: passed to :class:`~torchgeo.datasets.SSL4EOS12` (download,
                checksum).

        Raises:
            SensorError: for a split without a shipped sensor and no ``sensor``.
        """
        _check_size(size, SSL4EOS12.size)
        self.sensor = _split_sensor(sensor, split, self.sensors, 'SSL4EO-S12')
        super().__init__(
            SSL4EOS12Season,
            batch_size,
            num_workers,
            size,
            scale,
            ratio,
            flip,
            val_fraction,
            seed,
            pin_memory,
            root=root,
            split=split,
            sensor=self.sensor,
            **kwargs,
        )


class SSL4EOLPretrainDataModule(MultibandPretrainDataModule):
    """Multispectral pretraining on SSL4EO-L (Landsat), a season a sample.

    As :class:`SSL4EOS12PretrainDataModule`, on :class:`SSL4EOLSeason`. Split
    ``'oli_sr'`` (Landsat 8/9 OLI surface reflectance, 7 bands) maps to the shipped
    ``landsat_oli``, which describes Collection 2 uint16 values; TorchGeo's release
    of SSL4EO-L is rescaled to uint8, which the dtype check then refuses, saying what
    to do: pass ``sensor=`` a YAML of the 8-bit data (as for the other splits).

    .. versionadded:: 0.2
    """

    #: the shipped sensor of each split
    sensors: ClassVar[dict[str, str]] = {'oli_sr': 'landsat_oli'}

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        split: str = 'oli_sr',
        sensor: str | os.PathLike[str] | Sensor | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        size: int = 192,
        scale: tuple[float, float] = (0.67, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        val_fraction: float = 0.0,
        seed: int = 0,
        pin_memory: bool = True,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SSL4EOLPretrainDataModule instance.

        Args:
            root: TorchGeo's SSL4EO-L root (``root/ssl4eo_l_<split>/...``).
            split: ``'oli_sr'``, or another SSL4EO-L split with ``sensor``.
            sensor: the data's sensor; None: the split's shipped one.
            batch_size: size of each mini-batch (per device).
            num_workers: number of workers for parallel data loading.
            size: side of the augmented crops fed to the model (<= 264).
            scale: RandomResizedCrop area range, relative to the 264 px chip.
            ratio: RandomResizedCrop aspect-ratio range.
            flip: probability of a horizontal flip.
            val_fraction: fraction of the locations held out; 0 disables validation.
            seed: seed of the train/val assignment.
            pin_memory: pin batches in page-locked memory (when CUDA is available).
            **kwargs: passed to :class:`~torchgeo.datasets.SSL4EOL` (download,
                checksum).

        Raises:
            SensorError: for a split without a shipped sensor and no ``sensor``.
        """
        _check_size(size, 264)
        self.sensor = _split_sensor(sensor, split, self.sensors, 'SSL4EO-L')
        super().__init__(
            SSL4EOLSeason,
            batch_size,
            num_workers,
            size,
            scale,
            ratio,
            flip,
            val_fraction,
            seed,
            pin_memory,
            root=root,
            split=split,
            sensor=self.sensor,
            **kwargs,
        )
