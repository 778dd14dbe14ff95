# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Per-band mean and standard deviation of GeoTIFFs, for a sensor of your own data.

The statistics a model normalises with should be those of the imagery it sees.
:func:`band_statistics` reads a reproducible random sample of windows of the files
(rasterio windowed reads: a 10 980 px Sentinel-2 tile costs a few windows, not the
tile), leaves out nodata, NaN and infinite pixels and those a GDAL mask band marks invalid
(an alpha band is data: the sensor says what every band is), and merges the windows' moments exactly
(Chan et al.'s pairwise update, in float64). :func:`sensor_statistics` returns the base
sensor with the new numbers; ``torchgeo-gfm stats`` writes it as YAML.

.. versionadded:: 0.2
"""

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from . import Sensor, SensorError, get_sensor

__all__ = ('BandStatistics', 'band_statistics', 'find_rasters', 'sensor_statistics')

#: file name endings read as GeoTIFFs (any case)
SUFFIXES = ('.tif', '.tiff')


class BandStatistics(NamedTuple):
    """What :func:`band_statistics` measured.

    .. versionadded:: 0.2
    """

    #: mean of the valid stored values, per band
    mean: tuple[float, ...]
    #: standard deviation (population) of the valid stored values, per band
    std: tuple[float, ...]
    #: valid pixels counted, per band
    pixels: tuple[int, ...]
    #: files read
    files: int
    #: windows read
    windows: int
    #: value types of the files read (``'uint16'``...), sorted
    dtypes: tuple[str, ...] = ()


def find_rasters(root: str | os.PathLike[str]) -> list[Path]:
    """The GeoTIFFs under *root* (``.tif``/``.tiff``, any case), sorted.

    Args:
        root: a folder (searched recursively) or one file.

    Returns:
        The files, sorted by path so that a seed picks the same sample on every machine.

    Raises:
        SensorError: if *root* does not exist or holds no GeoTIFF.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise SensorError(f'{root}: no such folder; give the folder of your GeoTIFFs')
    files = sorted(
        p for p in root.rglob('*') if p.suffix.lower() in SUFFIXES and p.is_file()
    )
    if not files:
        raise SensorError(
            f'{root}: holds no GeoTIFF (*.tif, *.tiff); give the folder of your images'
        )
    return files


class _Moments:
    """Count, mean and sum of squared deviations per band, merged window by window."""

    def __init__(self, bands: int) -> None:
        self.n = np.zeros(bands, dtype=np.int64)
        self.mean = np.zeros(bands)
        self.m2 = np.zeros(bands)

    def add(self, band: int, values: np.ndarray) -> None:
        n = values.size
        if n == 0:
            return
        mean = values.mean(dtype=np.float64)
        m2 = np.square(values - mean, dtype=np.float64).sum()
        total = self.n[band] + n
        delta = mean - self.mean[band]
        self.mean[band] += delta * n / total
        self.m2[band] += m2 + delta**2 * self.n[band] * n / total
        self.n[band] = total


def _windows(
    height: int, width: int, size: int, count: int, rng: np.random.Generator
) -> list[Window]:
    """*count* random ``size`` x ``size`` windows, or the whole raster if it is smaller."""
    if height <= size and width <= size:
        return [Window(0, 0, width, height)]
    h, w = min(size, height), min(size, width)
    rows = rng.integers(0, height - h, size=count, endpoint=True)
    cols = rng.integers(0, width - w, size=count, endpoint=True)
    return [Window(int(c), int(r), w, h) for r, c in zip(rows, cols, strict=True)]


def _mask_band(flags: list[MaskFlags]) -> bool:
    """Whether GDAL's mask of a band is a mask band (internal or ``.msk``).

    Not an alpha band: the sensor says every band is data, and a 4-band uint8 GeoTIFF
    (NAIP's R, G, B, NIR) is often flagged RGBA. Not nodata: that is compared directly.
    """
    other = {MaskFlags.alpha, MaskFlags.nodata} & set(flags)
    return MaskFlags.per_dataset in flags and not other


def _read(
    path: Path,
    sensor: Sensor,
    windows: int,
    size: int,
    rng: np.random.Generator,
    moments: _Moments,
) -> tuple[int, set[str]]:
    """Add the valid pixels of random windows of one file; return windows and types."""
    with rasterio.open(path) as src:
        sensor.check_bands(src.count, str(path))
        chosen = _windows(src.height, src.width, size, windows, rng)
        masked = [_mask_band(flags) for flags in src.mask_flag_enums]
        for window in chosen:
            data = src.read(window=window)
            masks = src.read_masks(window=window) if any(masked) else None
            for band, values in enumerate(data):
                valid = np.isfinite(values) if values.dtype.kind == 'f' else True
                if src.nodatavals[band] is not None:
                    valid &= values != src.nodatavals[band]
                if masks is not None and masked[band]:
                    valid &= masks[band] > 0
                moments.add(
                    band, values[valid] if valid is not True else values.ravel()
                )
    return len(chosen), set(src.dtypes)


def band_statistics(
    paths: Iterable[str | os.PathLike[str]],
    sensor: str | os.PathLike[str] | Sensor,
    *,
    samples: int | None = 256,
    windows: int = 4,
    size: int = 256,
    seed: int = 0,
) -> BandStatistics:
    """Per-band mean and standard deviation of the valid pixels of GeoTIFFs.

    Args:
        paths: the files (e.g. :func:`find_rasters`); any size, any numeric type.
        sensor: the sensor the files hold (:func:`~torchgeo_gfm.sensors.get_sensor`):
            every file must have its number of bands.
        samples: how many files to read, picked at random (all if None or more than
            there are).
        windows: windows read at random positions in each file larger than *size*.
        size: side of a window in pixels; a file no larger is read whole, once.
        seed: seed of the random picks; the same files and seed give the same numbers.

    Returns:
        The statistics of the stored values (nodata and NaN pixels left out).

    Raises:
        SensorError: if a file has another number of bands than the sensor, or a band
            has no valid pixel or a single value (a standard deviation of 0).
        rasterio.errors.RasterioIOError: if a file cannot be read.
    """
    sensor = get_sensor(sensor)
    files = [Path(p) for p in paths]
    if not files:
        raise SensorError('no files to read; give at least one GeoTIFF')
    for name, value in (('windows', windows), ('size', size), ('samples', samples)):
        if value is not None and value < 1:
            raise SensorError(f'{name}={value}: give a positive number')
    rng = np.random.default_rng(seed)
    if samples is not None and samples < len(files):
        files = [
            files[i] for i in sorted(rng.choice(len(files), samples, replace=False))
        ]
    moments = _Moments(sensor.num_bands)
    read = [_read(path, sensor, windows, size, rng, moments) for path in files]
    std = np.sqrt(moments.m2 / np.maximum(moments.n, 1))
    _check(sensor, moments, std, len(files))
    return BandStatistics(
        mean=tuple(moments.mean.tolist()),
        std=tuple(std.tolist()),
        pixels=tuple(moments.n.tolist()),
        files=len(files),
        windows=sum(n for n, _ in read),
        dtypes=tuple(sorted(set().union(*(types for _, types in read)))),
    )


def _check(sensor: Sensor, moments: _Moments, std: np.ndarray, files: int) -> None:
    """Refuse a band without valid pixels or of one value: it cannot be normalised."""
    for i, band in enumerate(sensor.bands):
        where = f'band {band} (number {i + 1} of {sensor.name})'
        if moments.n[i] == 0:
            raise SensorError(
                f'{where} has no valid pixel in the {files} files read (all nodata or '
                'NaN); check the files and their nodata value, or read more (--samples)'
            )
        if std[i] <= 0:
            raise SensorError(
                f'{where} is constant ({moments.mean[i]:g} in all {moments.n[i]} valid '
                'pixels): its standard deviation is 0; check the files, mark that value '
                'as nodata, or read more (--samples)'
            )


def sensor_statistics(
    sensor: str | os.PathLike[str] | Sensor,
    stats: BandStatistics,
    name: str,
    description: str = '',
) -> Sensor:
    """*sensor* with the mean and standard deviation of *stats*, under a new name.

    Args:
        sensor: the base sensor (bands, wavelengths, scale...).
        stats: from :func:`band_statistics`.
        name: name of the new sensor.
        description: its description (default: says where the numbers come from).

    Returns:
        The new sensor.

    .. versionadded:: 0.2
    """
    base = get_sensor(sensor)
    description = description or (
        f'{base.name} with the mean/std of at least {min(stats.pixels)} valid pixels '
        f'per band ({stats.windows} windows of {stats.files} files)'
    )
    # 7 significant digits (float32's): a YAML file a person can read
    mean, std = (tuple(float(f'{v:.7g}') for v in values) for values in stats[:2])
    return dataclasses.replace(
        base, name=name, mean=mean, std=std, description=description
    )
