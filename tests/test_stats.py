# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.io
from rasterio.crs import CRS
from rasterio.transform import from_origin

from tests.scene.helpers import write_raster
from torchgeo_gfm.cli import main
from torchgeo_gfm.cli.stats import SENSORS
from torchgeo_gfm.sensors import ALIASES, SensorError, get_sensor, list_sensors
from torchgeo_gfm.sensors.stats import band_statistics, find_rasters, sensor_statistics

UTM = CRS.from_epsg(32633)
LONLAT = CRS.from_epsg(4326)


def _write(
    path: Path, data: np.ndarray, crs: CRS = UTM, nodata: float | None = None
) -> Path:
    """A GeoTIFF of *data* ``[C, H, W]`` in *crs* (10 m UTM or 1e-4 degree pixels)."""
    origin, pixel = (
        ((500_000.0, 5_000_000.0), 10.0) if crs == UTM else ((13.0, 52.0), 1e-4)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_raster(path, data, crs, from_origin(*origin, pixel, pixel), nodata)


def _s2(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """13 bands of uint16 DN, each band with its own level and spread."""
    level = np.arange(1, 14, dtype=np.float64)[:, None, None] * 500
    return (level + rng.normal(0, 300, (13, h, w))).clip(1, 20000).astype(np.uint16)


def _expected(pixels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """numpy's mean and std per band of ``[C, N]`` arrays of valid values."""
    values = np.concatenate(pixels, axis=1).astype(np.float64)
    return values.mean(axis=1), values.std(axis=1)


def test_whole_files_nodata_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a, b = _s2(rng, 20, 30), _s2(rng, 25, 17)
    a[:, :5, :5] = 0  # nodata
    b[4, 10:, :] = 0  # nodata in one band only
    _write(tmp_path / 'x' / 'a.tif', a, UTM, nodata=0)
    _write(tmp_path / 'b.TIFF', b, LONLAT, nodata=0)
    (tmp_path / 'notes.txt').write_text('not a raster')
    with rasterio.open(tmp_path / 'b.TIFF') as src:
        assert src.crs == LONLAT
    files = find_rasters(tmp_path)
    assert files == [tmp_path / 'b.TIFF', tmp_path / 'x' / 'a.tif']
    stats = band_statistics(files, 's2', size=64)
    for band in range(13):
        valid = np.concatenate([x[band][x[band] != 0] for x in (a, b)])
        assert stats.pixels[band] == valid.size
        assert stats.mean[band] == pytest.approx(
            valid.mean(dtype=np.float64), rel=1e-12
        )
        assert stats.std[band] == pytest.approx(valid.std(dtype=np.float64), rel=1e-9)
    assert (stats.files, stats.windows, stats.dtypes) == (2, 2, ('uint16',))


def test_float32_nan_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(0.1, 0.05, (3, 40, 40)).astype(np.float32)
    data[0, :10] = np.nan
    data[2, 5, 5] = np.inf
    path = _write(tmp_path / 'r.tif', data, LONLAT)
    stats = band_statistics([path], 'rgb', size=40)
    valid = [data[i][np.isfinite(data[i])].astype(np.float64) for i in range(3)]
    assert stats.pixels == (1200, 1600, 1599)
    assert stats.dtypes == ('float32',)
    np.testing.assert_allclose(stats.mean, [v.mean() for v in valid], rtol=1e-12)
    np.testing.assert_allclose(stats.std, [v.std() for v in valid], rtol=1e-9)


def test_windows_of_a_big_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random windows of a large file: the numbers are numpy's on the pixels read.

    A 4-band uint8 GeoTIFF is written RGBA by GDAL: NIR is data, not alpha.
    """
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, (4, 300, 200), dtype=np.uint8)
    path = _write(tmp_path / 'naip.tif', data, UTM)
    read = rasterio.io.DatasetReader.read
    windows: list[Any] = []

    def spy(self: rasterio.io.DatasetReader, *args: Any, **kwargs: Any) -> Any:
        windows.append(kwargs['window'])
        return read(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, 'read', spy)
    stats = band_statistics([path], 'naip', windows=5, size=64, seed=7)
    assert len(windows) == stats.windows == 5
    assert all((w.width, w.height) == (64, 64) for w in windows)
    pixels = [data[:, w.toslices()[0], w.toslices()[1]].reshape(4, -1) for w in windows]
    mean, std = _expected(pixels)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(stats.std, std, rtol=1e-9)
    # the same seed reads the same windows; another seed others
    again = band_statistics([path], 'naip', windows=5, size=64, seed=7)
    assert again == stats
    assert band_statistics([path], 'naip', windows=5, size=64, seed=8) != stats


def test_gdal_mask_band_left_out(tmp_path: Path) -> None:
    data = np.random.default_rng(10).integers(1, 9000, (3, 16, 16), dtype=np.uint16)
    mask = np.full((16, 16), 255, dtype=np.uint8)
    mask[:, :6] = 0
    path = _write(tmp_path / 'm.tif', data)
    with rasterio.open(path, 'r+') as dst:
        dst.write_mask(mask)
    stats = band_statistics([path], 'rgb')
    mean, std = _expected([data[:, :, 6:].reshape(3, -1)])
    assert stats.pixels == (160, 160, 160)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(stats.std, std, rtol=1e-9)


def test_sample_of_files_is_reproducible(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    files = [
        _write(tmp_path / f'{i}.tif', rng.integers(0, 256, (3, 8, 8), dtype=np.uint8))
        for i in range(6)
    ]
    one = band_statistics(files, 'rgb', samples=2, seed=5)
    assert one.files == 2
    assert one == band_statistics(files, 'rgb', samples=2, seed=5)
    assert band_statistics(files, 'rgb', samples=None).files == 6


def test_wrong_band_count_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / 'rgb.tif', np.ones((3, 8, 8), dtype=np.uint16))
    with pytest.raises(
        SensorError, match=r'rgb\.tif has 3 bands, sensor s2_l2a has 12'
    ):
        band_statistics([path], 's2_l2a')


def test_all_nan_band(tmp_path: Path) -> None:
    data = np.ones((3, 8, 8), dtype=np.float32)
    data[0] = np.arange(64).reshape(8, 8)
    data[1] = np.nan
    path = _write(tmp_path / 'nan.tif', data, LONLAT)
    with pytest.raises(SensorError, match=r'band G \(number 2 of rgb\) has no valid'):
        band_statistics([path], 'rgb')


def test_constant_band(tmp_path: Path) -> None:
    data = np.full((3, 8, 8), 7, dtype=np.uint8)
    data[:2] = np.arange(64).reshape(8, 8)
    path = _write(tmp_path / 'flat.tif', data)
    with pytest.raises(
        SensorError, match=r'band B \(number 3 of rgb\) is constant \(7'
    ):
        band_statistics([path], 'rgb')


def test_no_rasters(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match='holds no GeoTIFF'):
        find_rasters(tmp_path)
    with pytest.raises(SensorError, match='no such folder'):
        find_rasters(tmp_path / 'missing')


def test_sensor_statistics(tmp_path: Path) -> None:
    data = np.random.default_rng(6).integers(0, 256, (4, 16, 16), dtype=np.uint8)
    stats = band_statistics([_write(tmp_path / 'n.tif', data)], 'naip')
    sensor = sensor_statistics('naip', stats, 'my_naip')
    naip = get_sensor('naip')
    assert sensor.name == 'my_naip'
    assert sensor.bands == naip.bands
    assert sensor.scale == naip.scale
    np.testing.assert_allclose(sensor.mean, stats.mean, rtol=1e-6)
    np.testing.assert_allclose(sensor.std, stats.std, rtol=1e-6)
    assert '1 windows of 1 files' in sensor.description


def test_cli_help_lists_the_shipped_sensors() -> None:
    names = [n.split(' ')[0] for n in SENSORS.split(', ')]
    assert sorted(names) == list_sensors()
    assert all(f'{n} ({a})' in SENSORS for a, n in ALIASES.items())


def test_cli_writes_a_sensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(8)
    a, b = _s2(rng, 30, 30), _s2(rng, 12, 40)
    _write(tmp_path / 'in' / 'a.tif', a, UTM)
    _write(tmp_path / 'in' / 'sub' / 'b.tif', b, LONLAT)
    out = tmp_path / 'out' / 'my_s2.yaml'
    argv = ['stats', str(tmp_path / 'in'), '--sensor', 's2', '-o', str(out)]
    assert main(argv) == 2  # refused before reading: its folder is missing
    assert 'out is missing or not writable' in capsys.readouterr().err
    out.parent.mkdir()
    assert main([*argv, '--size', '64']) == 0
    sensor = get_sensor(out)
    mean, std = _expected([x.reshape(13, -1) for x in (a, b)])
    assert sensor.name == 'my_s2'
    assert sensor.bands == get_sensor('s2_l1c').bands
    np.testing.assert_allclose(sensor.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(sensor.std, std, rtol=1e-6)
    assert out.read_text().startswith('# written by: torchgeo-gfm stats ')
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith('B1\t')
    assert 'warning' not in captured.err
    # an existing output is kept without --force, replaced with it
    assert main([*argv, '--name', 'other']) == 2
    assert 'pass --force' in capsys.readouterr().err
    assert get_sensor(out).name == 'my_s2'
    assert main([*argv, '--name', 'other', '--overwrite']) == 0
    assert get_sensor(out).name == 'other'
    assert sorted(p.name for p in out.parent.iterdir()) == ['my_s2.yaml']


def test_cli_warns_of_another_dtype(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.random.default_rng(11).random((3, 8, 8), dtype=np.float32)
    _write(tmp_path / 'reflectance.tif', data)
    out = tmp_path / 'mine.yaml'
    assert main(['stats', str(tmp_path), '--sensor', 'rgb', '-o', str(out)]) == 0
    err = capsys.readouterr().err
    assert 'warning: the files hold float32, sensor rgb stores uint8' in err
    assert get_sensor(out).dtype == 'uint8'


@pytest.mark.parametrize(
    ('extra', 'error'),
    [
        (['--sensor', 'sentinel'], "unknown sensor 'sentinel'"),
        (['--sensor', 's2_l2a'], 'a.tif has 13 bands, sensor s2_l2a has 12'),
    ],
)
def test_cli_errors(
    extra: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / 'a.tif', _s2(np.random.default_rng(9), 8, 8))
    out = tmp_path / 's.yaml'
    assert main(['stats', str(tmp_path), '-o', str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm stats: error: ')
    assert error in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
