# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Writing folders of multiband GeoTIFFs as litdata shards, each array stored losslessly.

:func:`write_multiband_shards` (``torchgeo-gfm shard --sensor s2 SOURCE... OUT``) stores
every GeoTIFF under each SOURCE folder as its raw ``[C, H, W]`` array, in the dtype the
file holds (uint8, uint16 or float32), with litdata's numpy serializer: no JPEG, no
rescaling, bit-exact. Uncompressed because decoding must keep up with training: a
13 x 192 x 192 uint16 sample is 958 kB and reads in ~0.5 ms, where zlib saved a third
of the bytes but took ~13 ms per sample to inflate (``docs/streaming.md``).

The sensor is recorded in the shards' ``index.json`` (:func:`.storage.add_to_index`), so
the reader knows the bands and dtype. Every file's header is checked before any work: a
band count or dtype other than the sensor's is an error naming the file, and nothing is
written. A file that cannot be read is left out and listed.

Nodata: stored as it is (with the file's nodata value in the sample); the reader sets
nodata and NaN pixels to the sensor's band mean, as
:class:`~torchgeo_gfm.datasets.MultibandFolder` does. Infinite values have no such
meaning: a file holding any is left out and listed (one would make the loss infinite).

.. versionadded:: 0.2
"""

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from ...sensors import Sensor, get_sensor
from ..multiband import GDAL_ENV, check_dtype
from ..utils import find_images
from .storage import check_output_dir
from .writing import (
    ShardReport,
    _check_storage_options,
    _Encode,
    check_num_workers,
    parse_chunk_bytes,
    shard,
)

_TIFF = ('.tif', '.tiff')


def _open(path: str) -> Any:
    """A rasterio dataset; plain TIFFs (no georeference) are read without warnings."""
    with warnings.catch_warnings(), rasterio.Env(**GDAL_ENV):
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        return rasterio.open(path)


def _check_header(path: str, count: int, dtype: str, sensor: Sensor) -> None:
    """Refuse a file whose band count or dtype is not the sensor's."""
    sensor.check_bands(count, path)
    check_dtype(sensor, dtype, path)


@dataclass
class _EncodeArray(_Encode):
    """``optimize``'s per-input function: one GeoTIFF's raw array, checked."""

    sensor: Sensor | None = None
    #: each source's folder (file paths are recorded relative to it, under its name)
    folders: tuple[str, ...] = field(default_factory=tuple)

    def _load(self, path: str) -> tuple[np.ndarray, float]:
        """The file's array and nodata value (NaN if it has none)."""
        assert self.sensor is not None
        with _open(path) as src:
            _check_header(path, src.count, src.dtypes[0], self.sensor)
            array, nodata = src.read(), src.nodata
        if array.dtype.kind == 'f' and np.isinf(array).any():
            raise ValueError(
                'has infinite values; replace them (e.g. with the nodata value) '
                'before sharding'
            )
        return np.ascontiguousarray(array), math.nan if nodata is None else nodata

    def _sample(self, data: Any, source: int, path: str) -> dict[str, Any]:
        array, nodata = data
        return {**super()._sample(array, source, path), 'nodata': float(nodata)}

    def _relative(self, path: str, source: int) -> str:
        return os.path.join(
            self.sources[source], os.path.relpath(path, self.folders[source])
        )


def _find_rasters(folders: list[str]) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """Source names and the ``(path, source)`` of every GeoTIFF, sorted per source."""
    names = tuple(Path(folder).resolve().name for folder in folders)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f'sources {twice} are named twice (each SOURCE folder is a source, named '
            'after the folder): give each folder once, with distinct names'
        )
    files = []
    for source, folder in enumerate(folders):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'{folder}: no such folder of GeoTIFFs (SOURCE)')
        found = [f for f in find_images(folder) if f.lower().endswith(_TIFF)]
        if not found:
            raise FileNotFoundError(
                f'{folder} holds no GeoTIFF (*.tif, *.tiff); expected a folder of '
                'multiband GeoTIFFs'
            )
        files += [(path, source) for path in found]
    return names, files


def _check_files(
    files: list[tuple[str, int]], sensor: Sensor
) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """Headers checked against the sensor: the readable files, and those left out."""
    readable, skipped = [], []
    for path, source in files:
        try:
            with _open(path) as src:
                count, dtype = src.count, src.dtypes[0]
        except rasterio.errors.RasterioError as error:
            skipped.append((path, f'{type(error).__name__}: {error}'))
            continue
        _check_header(path, count, dtype, sensor)
        readable.append((path, source))
    return readable, skipped


def write_multiband_shards(
    sources: list[str | os.PathLike[str]],
    output_dir: str,
    sensor: str | os.PathLike[str] | Sensor,
    chunk_bytes: str | int = '64MB',
    num_workers: int = 1,
    storage_options: dict[str, Any] | None = None,
) -> ShardReport:
    """Write folders of multiband GeoTIFFs as litdata shards of raw arrays.

    Args:
        sources: folders of GeoTIFFs (searched recursively), one source each, named
            after the folder.
        output_dir: empty or missing folder, or an ``s3://`` or ``gs://`` URL.
        sensor: the sensor of every file (a shipped name such as ``'s2'``, a YAML
            file, or a :class:`~torchgeo_gfm.sensors.Sensor`).
        chunk_bytes: target shard size (see
            :func:`~torchgeo_gfm.datasets.shards.parse_chunk_bytes`).
        num_workers: processes reading the files.
        storage_options: object-storage client options (None: environment).

    Returns:
        What was written and what was skipped (``sensor`` is the sensor's name).

    Raises:
        SensorError: if the sensor does not load, or a file's band count is not the
            sensor's (nothing is written).
        ValueError: if a file's dtype is not the sensor's, sources are named twice,
            or an argument or the output is refused (as for
            :func:`~torchgeo_gfm.datasets.write_geopile_shards`).
        FileNotFoundError: if a source folder is missing or holds no GeoTIFF.
        RuntimeError: if no file could be read (nothing is written).

    .. versionadded:: 0.2
    """
    sensor = get_sensor(sensor)
    chunk_bytes = parse_chunk_bytes(chunk_bytes)
    check_num_workers(num_workers)
    _check_storage_options(storage_options)
    folders = [os.fspath(folder) for folder in sources]
    if not folders:
        raise ValueError('no SOURCE folder given: give one or more folders of GeoTIFFs')
    for folder in folders:
        output_dir = check_output_dir(output_dir, storage_options, folder)
    names, files = _find_rasters(folders)
    files, unreadable = _check_files(files, sensor)
    if not files:
        raise RuntimeError(
            f'none of the {len(unreadable)} GeoTIFFs of {", ".join(folders)} could be '
            f'read (first: {unreadable[:3]}); nothing was written; check the files'
        )
    encode = _EncodeArray('', files, names, '', sensor=sensor, folders=tuple(folders))
    written, skipped, _ = shard(
        encode,
        list(range(len(files))),
        output_dir,
        chunk_bytes,
        num_workers,
        storage_options,
        f'GeoTIFFs of {", ".join(folders)}',
        {'format': 'array', 'sensor': sensor.to_dict()},
    )
    skipped = sorted(unreadable + skipped)
    return ShardReport(output_dir, written, names, skipped, sensor=sensor.name)
