# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets.multiband import MultibandFolder
from torchgeo_gfm.sensors import SensorError, get_sensor

ROOT = Path('tests', 'data', 'multiband')


def test_recursive_tree_any_size_and_crs() -> None:
    ds = MultibandFolder(ROOT / 's2', 's2', size=32)
    assert [Path(f).name for f in ds.files] == ['a.tif', 'b.tif', 'd.tif', 'c.tif']
    crs = {rasterio.open(f).crs.to_epsg() for f in ds.files}
    assert crs == {32633, 4326}
    for i in range(len(ds)):
        image = ds[i]['image']
        assert image.shape == (13, 32, 32)
        assert image.dtype == torch.uint16  # stored values, 2 bytes each


def test_crop_is_a_window_of_the_stored_values() -> None:
    ds = MultibandFolder(ROOT / 's2' / 'austria' / 'utm', 's2', size=16)
    with rasterio.open(ds.files[0]) as f:
        full = torch.from_numpy(f.read().astype(np.int64))
    crop = ds[0]['image'].long()
    windows = full.unfold(1, 16, 1).unfold(2, 16, 1)  # [C, rows, cols, 16, 16]
    match = (windows == crop[:, None, None]).all(-1).all(-1).all(0)
    assert match.sum() == 1  # exactly one window, no resampling


def test_small_file_is_resampled_to_size() -> None:
    ds = MultibandFolder(ROOT / 's2' / 'small', 's2', size=40)  # file is 20 x 28
    image = ds[0]['image']
    assert image.shape == (13, 40, 40)
    assert 0 < image.float().mean() < 10000


def test_nodata_is_filled_with_the_band_mean() -> None:
    sensor = get_sensor('s2')
    ds = MultibandFolder(ROOT / 's2' / 'holes', sensor, size=32)  # 8 columns of nodata
    image = ds[0]['image']
    mean = torch.tensor(sensor.mean).round().to(torch.uint16)
    assert (image[:, :, :8] == mean[:, None, None]).all()
    assert (image[:, :, 8:].int() > 0).all()


def test_nan_is_filled_in_float_data() -> None:
    sensor = dataclasses.replace(get_sensor('s2'), name='s2_float', dtype='float32')
    image = MultibandFolder(ROOT / 'float', sensor, size=32)[0]['image']
    assert image.dtype == torch.float32
    assert not image.isnan().any()
    assert torch.allclose(image[:, 0, 0], torch.tensor(sensor.mean))


def test_uint8_naip() -> None:
    image = MultibandFolder(ROOT / 'naip', 'naip', size=16)[0]['image']
    assert image.dtype == torch.uint8
    assert image.shape == (4, 16, 16)


def test_band_count_checked_per_file() -> None:
    ds = MultibandFolder(ROOT / 'bad_bands', 's2', size=16)  # the first file is fine
    ds[0]
    with pytest.raises(SensorError, match=r'b\.tif has 12 bands, sensor s2_l1c has 13'):
        ds[1]


def test_wrong_dtype_refused_naming_the_file() -> None:
    with pytest.raises(
        ValueError, match=r'e\.tif stores uint8 values, but sensor s2_l1c'
    ):
        MultibandFolder(
            ROOT / 'naip',
            dataclasses.replace(
                get_sensor('s2'),
                bands=('R', 'G', 'B', 'N'),
                wavelengths=(1, 2, 3, 4),
                mean=(1, 1, 1, 1),
                std=(1, 1, 1, 1),
            ),
        )


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        MultibandFolder(tmp_path, 's2')


def test_plot() -> None:
    ds = MultibandFolder(ROOT / 's2', 's2', size=16)
    fig = ds.plot(ds[0], suptitle='s2')
    assert fig.axes[0].get_title() == 's2_l1c, true colour'
