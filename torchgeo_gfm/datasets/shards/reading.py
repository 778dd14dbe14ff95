# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading GeoPile shards: image bytes decoded as GeoPile decodes files, and the dataset.

:class:`GeoPileStreamingDataset` is litdata's ``StreamingDataset`` (shuffling across
shards, exactly-once assignment to ranks and workers, resumable state, a bounded local
cache) whose samples are decoded by :func:`decode_rgb`, the rule the writer also applies
to check every image once, or, for multiband shards (:mod:`.multiband`), are the stored
arrays themselves, of the sensor recorded in the shards' index.

.. versionadded:: 0.2
"""

import io
import os
import warnings
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset
from litdata.exceptions import ChunkWaitTimeoutError
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchgeo.datasets.utils import Sample

from ..._compat import litdata_allow_http
from ...sensors import Sensor, SensorError, get_sensor
from ..multiband import fill_invalid
from ..utils import (
    _needs_rasterio,
    _pil_to_rgb,
    array_to_rgb,
    fit_square,
    pil_to_tensor,
)
from .storage import CREDENTIALS, bucket_exists, index_metadata, is_remote, status_of

_TIFF = ('.tif', '.tiff')


def _read_rasterio_bytes(data: bytes) -> Image.Image:
    """Deep or many-band TIFF bytes to RGB, as GeoPile reads such files (GDAL)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():  # plain TIFFs have no georeference; pixels suffice
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        with MemoryFile(data) as memfile, memfile.open() as src:
            bands = src.read(indexes=list(range(1, min(src.count, 3) + 1)))
    return Image.fromarray(array_to_rgb(np.moveaxis(bands, 0, -1)))


def decode_rgb(data: bytes, name: str, size: int | None = None) -> Tensor:
    """Decode image file bytes as GeoPile reads the file itself.

    Same conversion rule as :func:`~torchgeo_gfm.datasets.utils.read_rgb` (which takes
    a path): 8-bit RGB, 16-bit and many-band TIFFs through GDAL, large JPEGs decoded at
    reduced DCT scale when ``size`` allows it.

    Args:
        data: the image file's bytes.
        name: its file name (the extension tells TIFFs apart).
        size: if given, a random square of the shorter side resized to ``size``.

    Returns:
        The uint8 ``[3, H, W]`` image.

    Raises:
        OSError: (or another decoder error) if the bytes are not a readable image.

    .. versionadded:: 0.1
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if not name.lower().endswith(_TIFF):
            raise
        rgb = _read_rasterio_bytes(data)  # e.g. 16-bit multi-band GeoTIFF
    else:
        with image:
            if _needs_rasterio(image, name):
                rgb = _read_rasterio_bytes(data)
            else:
                if size is not None and image.format == 'JPEG':
                    image.draft('RGB', (size, size))
                image.load()  # decode now, so truncation errors surface here
                rgb = _pil_to_rgb(image)
    tensor = pil_to_tensor(rgb)
    return fit_square(tensor, size) if size is not None else tensor


class ShardError(RuntimeError):
    """Raised when GeoPile shards cannot be opened or read.

    .. versionadded:: 0.1
    """


def _open_error(
    input_dir: str, storage_options: dict[str, Any] | None, error: Exception
) -> ShardError:
    """A ShardError saying what was not found or allowed, and what to do."""
    expected = (
        f'expected the output of `torchgeo-gfm shard ROOT {input_dir}` '
        '(index.json and chunk-*.bin files)'
    )
    status = status_of(error)
    if status in ('403', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'):
        return ShardError(
            f'access to {input_dir!r} was refused (HTTP {status}: the credentials are '
            f'wrong or lack read permission); {CREDENTIALS}'
        )
    if status == '404' and input_dir.startswith('s3://'):
        bucket = input_dir.removeprefix('s3://').split('/', 1)[0]
        if bucket_exists(input_dir, storage_options) is False:
            return ShardError(
                f'bucket {bucket!r} of {input_dir!r} does not exist on the object '
                f'store; {expected}. Check the URL and AWS_ENDPOINT_URL'
            )
        return ShardError(f'no shard index at {input_dir}/index.json; {expected}')
    if not is_remote(input_dir) and not os.path.isfile(
        os.path.join(input_dir, 'index.json')
    ):
        return ShardError(f'no shard index at {input_dir}/index.json; {expected}')
    return ShardError(
        f'cannot open GeoPile shards at {input_dir!r} ({type(error).__name__}: '
        f'{error}); {expected}; for object storage, {CREDENTIALS}'
    )


def _meaning(sensor: Sensor) -> tuple[Any, ...]:
    """What the stored values are: a sensor may differ in statistics, not in these."""
    return sensor.bands, sensor.dtype, sensor.scale, sensor.offset


def _describe(sensor: Sensor) -> str:
    return (
        f'{sensor.name} ({sensor.num_bands} bands {", ".join(sensor.bands)}; '
        f'{sensor.dtype} x {sensor.scale:g} + {sensor.offset:g})'
    )


#: what shards of encoded images (no sensor recorded) hold
_IMAGES = 'RGB images (3 bands, uint8)'


def shards_sensor(
    stored: dict[str, Any] | None,
    given: str | os.PathLike[str] | dict[str, Any] | Sensor | None,
    input_dir: str,
) -> Sensor | None:
    """The sensor to read shards with: theirs, or the one given if it stores the same.

    A given sensor may have other statistics (e.g. from ``torchgeo-gfm stats``) but
    must describe the same stored values: bands, dtype, scale and offset.

    Args:
        stored: the sensor recorded in the shards (``Sensor.to_dict()``); None for
            shards of encoded RGB images.
        given: the sensor the user asked for, or None.
        input_dir: the shards, named in errors.

    Returns:
        The sensor, or None for RGB images read as before (ImageNet statistics).

    Raises:
        SensorError: if the given sensor does not load or is not the shards'.

    .. versionadded:: 0.2
    """
    shards = Sensor.from_dict(stored, f'{input_dir}/index.json') if stored else None
    if given is None:
        return shards
    sensor = get_sensor(given)
    if shards is None:
        ok = sensor.num_bands == 3 and sensor.dtype == 'uint8'
        held = _IMAGES
    else:
        ok = _meaning(sensor) == _meaning(shards)
        held = f'sensor {_describe(shards)}'
    if not ok:
        raise SensorError(
            f'the shards at {input_dir} hold {held}, not what the sensor given, '
            f"{_describe(sensor)}, stores; give the shards' sensor (or none: it is "
            'read from the shards), or shard the data again with this one'
        )
    return sensor


def fill_nodata(array: np.ndarray, nodata: float, sensor: Sensor) -> np.ndarray:
    """Set nodata and NaN pixels to the sensor's band mean, as MultibandFolder does.

    The mean is what normalisation maps to 0: the neutral value, no texture to learn.

    Args:
        array: stored values ``[C, H, W]``.
        nodata: the file's nodata value (NaN: none).
        sensor: whose band means fill (rounded for integer data).

    Returns:
        The array, filled (the same object if nothing needed filling).

    .. versionadded:: 0.2
    """
    invalid = (
        np.isnan(array) if array.dtype.kind == 'f' else np.zeros(array.shape, bool)
    )
    if not np.isnan(nodata):
        invalid |= array == nodata
    return fill_invalid(array, invalid, sensor)


def _fit(image: Tensor, size: int) -> Tensor:
    """:func:`fit_square` for any dtype: integer values resized, rounded, kept."""
    if image.shape[-2:] == (size, size) or image.is_floating_point():
        return fit_square(image, size)
    info = torch.iinfo(image.dtype)
    out = fit_square(image.float(), size).round_().clamp_(info.min, info.max)
    return out.to(image.dtype)


class GeoPileStreamingDataset(StreamingDataset):
    """GeoPile shards written by ``torchgeo-gfm shard``, streamed with litdata.

    Samples of encoded images are decoded as :class:`~torchgeo_gfm.datasets.GeoPile`
    decodes files: ``{'image': uint8 [3, size, size], 'source': int64 scalar}``.
    Samples of multiband shards (``torchgeo-gfm shard --sensor``) are the stored
    arrays, in their dtype: ``{'image': [C, size, size], 'source': int64 scalar}``,
    with :attr:`sensor` read from the shards.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Multiband shards, and ``sensor``.
    """

    #: the shards' sensor (or the compatible one given); None for RGB images read
    #: as before
    sensor: Sensor | None

    def __init__(
        self,
        input_dir: str,
        size: int | None = 256,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool | None = None,
        max_cache_size: int | str | None = None,
        cache_dir: str | None = None,
        storage_options: dict[str, Any] | None = None,
        sensor: str | os.PathLike[str] | dict[str, Any] | Sensor | None = None,
    ) -> None:
        """Initialize a new GeoPileStreamingDataset instance.

        Args:
            input_dir: shard folder or URL (``s3://bucket/geopile``).
            size: side of the square each image is cut and resized to; None keeps the
                native size.
            shuffle: shuffle shards and the samples within them, anew each epoch.
            seed: shuffling seed (the same on every rank).
            drop_last: drop the samples that do not fill a batch on every rank
                (litdata's default in a distributed run: collectives stay in step).
            max_cache_size: largest local cache of downloaded shards (e.g. '50GB').
            cache_dir: local cache folder (litdata's default if None).
            storage_options: object-storage client options; None: environment.
            sensor: the sensor to read with (None: the shards' own, if any); for
                shards of RGB images, one of 3 uint8 bands makes samples follow the
                multispectral conventions.

        Raises:
            ShardError: if the shards cannot be opened.
            SensorError: if ``sensor`` is not the shards' (see :func:`shards_sensor`).
        """
        litdata_allow_http()  # http:// endpoints (MinIO, Ceph): torchgeo_gfm._compat
        try:
            super().__init__(
                input_dir,
                cache_dir=cache_dir,
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_last,
                max_cache_size=max_cache_size or '100GB',
                storage_options=storage_options or {},
            )
        except Exception as error:
            raise _open_error(input_dir, storage_options, error) from error
        self.input_dir_name = input_dir
        self.size = size
        # litdata fetched index.json into input_dir.path (its cache, for a URL)
        stored = index_metadata(self.input_dir.path).get('sensor')
        self.sensor = shards_sensor(stored, sensor, input_dir)
        self.arrays = stored is not None

    def __iter__(self) -> 'GeoPileStreamingDataset':
        """Start an epoch (in a DataLoader worker: where the chunks are downloaded).

        Returns:
            This dataset, as litdata's iterator.
        """
        litdata_allow_http()  # again: a spawned worker did not run __init__
        return super().__iter__()

    def __getitem__(self, index: Any) -> Sample:
        """Return a decoded image and its source.

        Args:
            index: litdata's chunk index.

        Returns:
            ``{'image': [C, size, size], 'source': int64 scalar}``: uint8 RGB, or the
            stored array of multiband shards.

        Raises:
            ShardError: if a chunk is shorter than the index says or did not download.
        """
        try:
            item = super().__getitem__(index)
        except ChunkWaitTimeoutError as error:
            raise ShardError(
                f'a shard of {self.input_dir_name!r} is shorter than its index.json '
                f'says, or its download failed ({error.args[0] if error.args else error}'
                '); expected complete chunk files as written by `torchgeo-gfm shard`. '
                'Re-run the shard command (or re-upload the file) and clear the local '
                'cache (cache_dir) before training again'
            ) from error
        if self.arrays:
            assert self.sensor is not None
            array = fill_nodata(item['image'], item['nodata'], self.sensor)
            # a copy: litdata's array is a read-only view of the chunk
            image = torch.from_numpy(np.array(array))
            image = _fit(image, self.size) if self.size is not None else image
        else:
            image = decode_rgb(item['image'], item['path'], self.size)
        return {'image': image, 'source': torch.tensor(int(item['source']))}
