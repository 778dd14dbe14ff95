# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from torchgeo_gfm.datasets.utils import (
    DegenerateImageError,
    array_to_rgb,
    hash_fraction,
    read_binary_mask,
    read_rgb,
    stretch_to_uint8,
)


def test_stretch_percentiles() -> None:
    data = np.linspace(1000, 5000, 10_000, dtype=np.uint16).reshape(100, 100)
    out = stretch_to_uint8(data)
    assert out.dtype == np.uint8
    assert out.min() == 0
    assert out.max() == 255
    assert 100 < np.median(out) < 155


@pytest.mark.parametrize(
    ('array', 'match'),
    [
        (
            np.full((4, 4), 7.5, np.float32),
            r'constant float32 image \(every pixel 7.5\)',
        ),
        (np.full((4, 4, 3), 300, np.uint16), 'constant uint16 image'),
        (np.full((4, 4), np.nan, np.float32), 'no finite pixel'),
        (np.array([[np.inf, -np.inf]], np.float64), 'no finite pixel'),
    ],
)
def test_stretch_degenerate(array: np.ndarray, match: str) -> None:
    with pytest.raises(DegenerateImageError, match=match):
        stretch_to_uint8(array)


def test_stretch_nodata_left_out() -> None:
    data = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    data[0, :5] = np.nan
    out = stretch_to_uint8(data)
    assert out[0, :5].tolist() == [0] * 5
    assert out.max() == 255  # NaN did not spoil the percentiles


def test_stretch_flat_with_outliers_uses_min_max() -> None:
    data = np.full((10, 10), 1000, np.uint16)
    data[0, 0], data[9, 9] = 900, 1200  # 2nd and 98th percentiles are both 1000
    out = stretch_to_uint8(data)
    assert (out[0, 0], out[9, 9]) == (0, 255)
    assert 0 < out[5, 5] < 255


@pytest.mark.parametrize(
    ('shape', 'dtype'),
    [
        ((8, 8), np.uint8),
        ((8, 8, 1), np.uint16),
        ((8, 8, 2), np.uint8),
        ((8, 8, 4), np.float32),
    ],
)
def test_array_to_rgb(shape: tuple[int, ...], dtype: type) -> None:
    array = (np.arange(np.prod(shape)) % 200).reshape(shape).astype(dtype)
    out = array_to_rgb(array)
    assert out.shape == (8, 8, 3)
    assert out.dtype == np.uint8


def test_array_to_rgb_keeps_first_three_bands() -> None:
    array = np.stack([np.full((2, 2), v, np.uint8) for v in (10, 20, 30, 40)], axis=-1)
    assert array_to_rgb(array)[0, 0].tolist() == [10, 20, 30]


def test_array_to_rgb_bad_shape() -> None:
    with pytest.raises(ValueError, match=r'\[H, W\] or \[H, W, C\]'):
        array_to_rgb(np.zeros((1, 2, 2, 3)))


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / 'a.png')
    image = read_rgb(tmp_path / 'a.png')
    assert image.shape == (3, 4, 4)
    assert image[:, 0, 0].tolist() == [200, 0, 0]


def test_multiband_geotiff(tmp_path: Path) -> None:
    """A 4-band uint16 GeoTIFF (e.g. RGB + NIR) goes through rasterio, bands 1-3."""
    bands = np.stack([np.full((6, 5), v, np.uint16) for v in (100, 2000, 4000, 9999)])
    bands[:, 0, 0] = 0
    profile = {
        'driver': 'GTiff',
        'dtype': 'uint16',
        'count': 4,
        'height': 6,
        'width': 5,
    }
    with (
        pytest.warns(NotGeoreferencedWarning),
        rasterio.open(tmp_path / 'a.tif', 'w', **profile) as dst,
    ):
        dst.write(bands)
    image = read_rgb(tmp_path / 'a.tif')
    assert image.shape == (3, 6, 5)
    assert image.dtype == torch.uint8
    assert image[0, 1, 1] < image[1, 1, 1] < image[2, 1, 1]


def test_large_jpeg_reduced_then_squared(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (600, 900, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / 'big.jpg')
    image = read_rgb(tmp_path / 'big.jpg', size=128)
    assert image.shape == (3, 128, 128)


def test_native_size_kept(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 14), np.uint8)).save(tmp_path / 'g.png')
    assert read_rgb(tmp_path / 'g.png').shape == (3, 10, 14)
    assert read_rgb(tmp_path / 'g.png', size=10).shape == (3, 10, 10)


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / 'x.tif').write_bytes(b'garbage')
    with pytest.raises(OSError):  # noqa: PT011 (rasterio's and PIL's messages differ)
        read_rgb(tmp_path / 'x.tif')


def _write_png16(path: Path, bands: np.ndarray) -> None:
    """A 16-bit PNG of 1-4 bands (GDAL writes the depths PIL cannot)."""
    profile = {'driver': 'PNG', 'dtype': 'uint16', 'count': len(bands)}
    with (
        pytest.warns(NotGeoreferencedWarning),
        rasterio.open(path, 'w', height=6, width=6, **profile) as dst,
    ):
        dst.write(bands)


@pytest.mark.parametrize('count', [1, 2, 3, 4])
def test_png16_read_at_full_depth(tmp_path: Path, count: int) -> None:
    """12-bit data in a 16-bit PNG is stretched, not truncated to its high byte."""
    rng = np.random.default_rng(0)
    _write_png16(tmp_path / 'a.png', rng.integers(0, 4096, (count, 6, 6), np.uint16))
    image = read_rgb(tmp_path / 'a.png')
    assert image.shape == (3, 6, 6)
    assert image.dtype == torch.uint8
    assert image.max() == 255  # PIL alone gives at most 15 here


def test_degenerate_file_named(tmp_path: Path) -> None:
    _write_png16(tmp_path / 'flat.png', np.full((3, 6, 6), 500, np.uint16))
    with pytest.raises(DegenerateImageError, match=r'flat\.png: constant uint16'):
        read_rgb(tmp_path / 'flat.png')


def test_flat_8bit_image_kept(tmp_path: Path) -> None:
    """8-bit levels are colours: a flat 8-bit image is a valid (if dull) picture."""
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / 'f.png')
    assert read_rgb(tmp_path / 'f.png').unique().tolist() == [90]


class TestHashFraction:
    def test_stable_and_seeded(self) -> None:
        value = hash_fraction('a.jpg')
        assert 0 <= value < 1
        assert value == hash_fraction('a.jpg', seed=0)
        assert value != hash_fraction('a.jpg', seed=1)


class TestReadBinaryMask:
    def test_nonzero_is_one(self, tmp_path: Path) -> None:
        array = np.zeros((4, 5), dtype=np.uint8)
        array[1, 2] = 255
        Image.fromarray(array).save(tmp_path / 'mask.png')
        mask = read_binary_mask(tmp_path / 'mask.png')
        assert mask.shape == (1, 4, 5)
        assert mask.dtype == torch.long
        assert mask.sum() == 1
        assert mask[0, 1, 2] == 1
