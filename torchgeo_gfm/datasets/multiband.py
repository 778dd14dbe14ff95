# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A GeoPile-style folder of multiband GeoTIFFs, for multispectral pretraining."""

import os
from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import rasterio
import torch
from matplotlib.figure import Figure
from rasterio.enums import Resampling
from rasterio.windows import Window
from torchgeo.datasets import DatasetNotFoundError, NonGeoDataset
from torchgeo.datasets.utils import Sample

from ..sensors import Sensor, get_sensor
from .utils import find_images

#: A sensor's stored dtype -> the tensor dtype samples have (uint16 stays 2 bytes).
TORCH_DTYPES: dict[str, torch.dtype] = {
    'uint8': torch.uint8,
    'uint16': torch.uint16,
    'float32': torch.float32,
}

#: GDAL lists a file's folder on open, to find sidecar files; GeoTIFFs need none, and with
#: thousands of files per folder the listing costs more than the read.
GDAL_ENV: dict[str, Any] = {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR'}


def check_dtype(sensor: Sensor, dtype: str, where: str) -> None:
    """Refuse stored values of another type than the sensor describes.

    A sensor's mean, std and scale describe one encoding (e.g. uint16 reflectance x 10000),
    so values of another dtype would be normalised and rendered wrongly, silently.

    Args:
        sensor: the sensor the data should match.
        dtype: the file's dtype, as rasterio names it.
        where: the file or dataset, for the message.

    Raises:
        ValueError: naming ``where``, both dtypes and what to do.

    .. versionadded:: 0.2
    """
    if dtype != sensor.dtype:
        raise ValueError(
            f'{where} stores {dtype} values, but sensor {sensor.name} describes '
            f'{sensor.dtype} ones (its mean/std and scaling would be wrong for these). '
            'Convert the data, or describe it with its own sensor YAML (e.g. one '
            'written by `torchgeo-gfm stats ROOT --sensor ...`) and pass that.'
        )


def fill_invalid(
    array: npt.NDArray[Any], invalid: npt.NDArray[np.bool_], sensor: Sensor
) -> npt.NDArray[Any]:
    """Set the *invalid* pixels (nodata, NaN) to the sensor's band mean.

    The mean is what normalisation maps to 0: the neutral value, no texture to learn.
    Integer data get the mean rounded. The folder dataset and the multiband shards fill
    with this one rule, so their batches agree.

    Args:
        array: stored values ``[C, H, W]``.
        invalid: ``True`` where a pixel has no valid value (same shape).
        sensor: whose band means fill.

    Returns:
        The array, filled (the same object if nothing needed filling).

    .. versionadded:: 0.2
    """
    if not invalid.any():
        return array
    mean = np.asarray(sensor.mean, dtype=np.float64)[:, None, None]
    fill = (mean if array.dtype.kind == 'f' else np.round(mean)).astype(array.dtype)
    return np.where(invalid, fill, array)


class MultibandFolder(NonGeoDataset):
    """Multiband GeoTIFFs under a folder tree, as random crops for pretraining.

    Every ``.tif``/``.tiff`` file under ``root`` (any depth, as GeoPile's source folders;
    hidden files skipped) is one image, of any size and CRS. Each must have the sensor's
    band count, in its band order, and its dtype (``uint8``, ``uint16`` or ``float32``):
    both are checked when the file is read, with an error naming the file.

    A sample is a random ``size`` x ``size`` window, read alone (memory stays bounded
    however big the file is); a file smaller than ``size`` on a side is read as a random
    square of its shorter side, resampled (bilinear) to ``size``. Values are kept as
    stored (no scaling, no normalisation) in the sensor's dtype, so uint16 batches cross
    to the device at 2 bytes a value and become float32 there, losslessly.

    Nodata: pixels equal to the file's nodata value, or NaN, are set to the sensor's
    band mean (rounded for integer data), which the model's normalisation maps to 0: the
    neutral value, which adds no texture to learn. A crop that is all nodata is kept
    (then constant); cut such areas out of the files if they are large.

    Sample: ``{'image': [C, size, size]}`` (uint8, uint16 or float32, as the sensor).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        sensor: str | os.PathLike[str] | Sensor = 's2',
        size: int = 256,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        """Initialize a new MultibandFolder instance.

        Args:
            root: folder searched (recursively) for GeoTIFFs.
            sensor: the imagery's sensor: a shipped name (``'s2'``), a sensor YAML or a
                :class:`~torchgeo_gfm.sensors.Sensor`.
            size: side of the crops read.
            transforms: a function/transform that takes a sample and returns a
                transformed version.

        Raises:
            DatasetNotFoundError: if ``root`` holds no GeoTIFF.
            ValueError: if ``size`` < 1, or the first file's band count or dtype
                differs from the sensor (the others are checked as they are read).
        """
        if size < 1:
            raise ValueError(f'size must be >= 1, got {size}')
        self.root = root
        self.sensor = get_sensor(sensor)
        self.size = size
        self.transforms = transforms
        self.files = [
            f for f in find_images(root) if f.lower().endswith(('.tif', '.tiff'))
        ]
        if not self.files:
            raise DatasetNotFoundError(self)
        with rasterio.Env(**GDAL_ENV), rasterio.open(self.files[0]) as f:
            self._check(f)  # fail at once, not in a worker after the first batch

    def __len__(self) -> int:
        """Return the number of files.

        Returns:
            Length of the dataset.
        """
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        """Return a random crop of one file.

        Args:
            index: index of the file.

        Returns:
            ``{'image': [C, size, size]}``, in the sensor's dtype.

        Raises:
            ValueError: if the file's band count or dtype differs from the sensor.
        """
        with rasterio.Env(**GDAL_ENV), rasterio.open(self.files[index]) as f:
            self._check(f)
            image = self._read(f)
        sample: Sample = {'image': torch.from_numpy(image)}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _check(self, f: rasterio.DatasetReader) -> None:
        """Refuse a file whose band count or dtype differs from the sensor."""
        self.sensor.check_bands(f.count, f.name)
        check_dtype(self.sensor, f.dtypes[0], f.name)

    def _read(self, f: rasterio.DatasetReader) -> npt.NDArray[Any]:
        """A random ``size`` window (or resampled square) with nodata/NaN filled."""
        side = min(self.size, f.height, f.width)
        row, col = (int(torch.randint(n - side + 1, ())) for n in (f.height, f.width))
        out_shape = (f.count, self.size, self.size)
        masked = f.nodata is not None or f.dtypes[0] == 'float32'
        image = f.read(
            window=Window(col, row, side, side),
            out_shape=out_shape,
            resampling=Resampling.bilinear,
            masked=masked,
        )
        if masked:
            image = self._fill(image)
        return np.ascontiguousarray(image)

    def _fill(self, image: np.ma.MaskedArray[Any, Any]) -> npt.NDArray[Any]:
        """Set nodata (masked) and NaN pixels to the sensor's band mean."""
        invalid = np.ma.getmaskarray(image)
        if image.dtype.kind == 'f':
            invalid = invalid | np.isnan(image.data)
        return fill_invalid(image.data, invalid, self.sensor)

    def plot(
        self, sample: Sample, show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """Plot a sample in true colour (the sensor's red, green, blue and scaling).

        Args:
            sample: a sample returned by :meth:`__getitem__`.
            show_titles: flag indicating whether to show titles above each panel.
            suptitle: optional string to use as a suptitle.

        Returns:
            A matplotlib Figure with the rendered sample.
        """
        rgb = self.sensor.true_colour(sample['image'].float())
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(rgb.permute(1, 2, 0).numpy())
        ax.axis('off')
        if show_titles:
            ax.set_title(f'{self.sensor.name}, true colour')
        if suptitle is not None:
            plt.suptitle(suptitle)
        return fig
