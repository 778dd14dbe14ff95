# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning

from torchgeo_gfm.datasets.utils import array_to_rgb, read_rgb, stretch_to_uint8


def test_stretch_percentiles() -> None:
    data = np.linspace(1000, 5000, 10_000, dtype=np.uint16).reshape(100, 100)
    out = stretch_to_uint8(data)
    assert out.dtype == np.uint8
    assert out.min() == 0
    assert out.max() == 255
    assert 100 < np.median(out) < 155


def test_stretch_flat() -> None:
    assert stretch_to_uint8(np.full((4, 4), 7.5, np.float32)).max() == 0


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
