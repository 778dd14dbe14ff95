# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm shard --sensor``: multiband GeoTIFFs stored losslessly, streamed back."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from litdata import StreamingDataset
from rasterio.transform import from_origin

from torchgeo_gfm.cli import main
from torchgeo_gfm.datamodules import GeoPileStreamingDataModule
from torchgeo_gfm.datasets.shards import (
    GeoPileStreamingDataset,
    write_geopile_shards,
    write_multiband_shards,
)
from torchgeo_gfm.sensors import SensorError, get_sensor


def write_tif(path: Path, array: np.ndarray, nodata: float | None = None) -> Path:
    """A GeoTIFF in UTM zone 33N (EPSG:32633), 10 m pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = array.shape
    profile = {
        'driver': 'GTiff',
        'count': count,
        'height': height,
        'width': width,
        'dtype': array.dtype.name,
        'crs': 'EPSG:32633',
        'transform': from_origin(500_000, 4_600_000, 10, 10),
        'nodata': nodata,
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(array)
    return path


def read_tif(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


@pytest.fixture(scope='module')
def s2_folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two sources of 13-band uint16 GeoTIFFs, square and not, the full uint16 range."""
    root = tmp_path_factory.mktemp('s2')
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(32, 32), (32, 32), (40, 36), (32, 32)]):
        a = rng.integers(0, 65536, (13, h, w), dtype=np.uint16)
        write_tif(root / 'alps' / f'zone{i % 2}' / f'{i}.tif', a)
    for i in range(4):
        a = rng.integers(0, 65536, (13, 32, 32), dtype=np.uint16)
        write_tif(root / 'coast' / f'{i}.tif', a)
    return [root / 'alps', root / 'coast']


@pytest.fixture(scope='module')
def s2_shards(s2_folders: list[Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp('out') / 'shards')
    write_multiband_shards(s2_folders, out, 's2', chunk_bytes='64kb')
    return out


def assert_bit_exact(items: list[dict[str, np.ndarray]], folders: list[Path]) -> None:
    files = {
        f'{folder.name}/{p.relative_to(folder).as_posix()}': p
        for folder in folders
        for p in folder.rglob('*.tif')
    }
    assert sorted(item['path'] for item in items) == sorted(files)
    for item in items:
        expected = read_tif(files[item['path']])
        assert item['image'].dtype == expected.dtype
        np.testing.assert_array_equal(item['image'], expected)


def test_cli_round_trip_is_bit_exact(
    s2_folders: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'shards'
    argv = ['shard', '--sensor', 's2', *map(str, s2_folders), str(out)]
    assert main([*argv, '--chunk-bytes', '64kb', '--num-workers', '2']) == 0
    assert 'wrote 8 s2_l1c arrays of 2 sources (alps, coast)' in capsys.readouterr().out
    assert len(list(out.glob('chunk-*.bin'))) > 1
    assert_bit_exact(list(StreamingDataset(str(out))), s2_folders)
    index = json.loads((out / 'index.json').read_text())
    assert index['torchgeo_gfm']['sensor'] == get_sensor('s2').to_dict()


def test_float_arrays_kept_nan_filled_when_read_inf_files_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = {**get_sensor('s2_l2a').to_dict(), 'name': 'l2a_float', 'dtype': 'float32'}
    fields.update(scale=1.0, offset=0.0)
    sensor = get_sensor(fields)
    sensor.to_yaml(yaml := tmp_path / 'l2a_float.yaml')
    rng = np.random.default_rng(1)
    good = rng.normal(0.2, 0.1, (2, 12, 24, 24)).astype(np.float32)
    good[0, 0, 0, 0] = -0.0  # the sign of zero survives too
    good[1, 3, 5, 5] = np.nan  # stored as it is, filled when read
    write_tif(tmp_path / 'src' / 'a.tif', good[0])
    write_tif(tmp_path / 'src' / 'b.tif', good[1])
    inf = good[0].copy()
    inf[3, 5, 5] = np.inf
    write_tif(tmp_path / 'src' / 'inf.tif', inf)
    out = tmp_path / 'shards'
    assert main(['shard', '--sensor', str(yaml), str(tmp_path / 'src'), str(out)]) == 0
    err = capsys.readouterr().err
    assert 'inf.tif (ValueError: has infinite values' in err
    items = sorted(StreamingDataset(str(out)), key=lambda item: item['path'])
    assert [item['path'] for item in items] == ['src/a.tif', 'src/b.tif']
    for item, expected in zip(items, good):
        assert item['image'].dtype == np.float32
        assert item['image'].tobytes() == expected.tobytes()  # bit for bit, NaN too
    dataset = GeoPileStreamingDataset(
        str(out), size=None, shuffle=False, cache_dir=str(tmp_path)
    )
    assert dataset.sensor == sensor
    images = [dataset[i]['image'] for i in range(2)]
    (filled,) = [x for x in images if x[0, 0, 0].item() == good[1, 0, 0, 0]]
    assert filled[3, 5, 5].item() == pytest.approx(sensor.mean[3])  # the band mean
    assert not any(x.isnan().any() for x in images)


def test_nodata_is_stored_and_set_to_the_band_mean_when_read(tmp_path: Path) -> None:
    array = np.full((13, 8, 8), 1234, np.uint16)
    array[:, 2, 3] = 0
    write_tif(tmp_path / 'src' / 'x.tif', array, nodata=0)
    write_multiband_shards([tmp_path / 'src'], str(tmp_path / 'out'), 's2')
    (item,) = StreamingDataset(str(tmp_path / 'out'))
    np.testing.assert_array_equal(item['image'], array)  # stored as it is
    assert item['nodata'] == 0
    dataset = GeoPileStreamingDataset(
        str(tmp_path / 'out'), size=None, cache_dir=str(tmp_path)
    )
    image = dataset[0]['image']
    mean = torch.tensor(get_sensor('s2').mean).round().to(torch.uint16)
    assert torch.equal(image[:, 2, 3], mean)
    assert (image[:, 0, 0] == 1234).all()


def test_a_file_of_another_band_count_is_refused_and_nothing_written(
    s2_folders: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_tif(tmp_path / 'l2a' / 'x.tif', np.zeros((12, 8, 8), np.uint16))
    out = tmp_path / 'shards'
    argv = ['shard', '--sensor', 's2', str(s2_folders[0]), str(bad.parent), str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f'{bad} has 12 bands, sensor s2_l1c has 13' in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_file_of_another_dtype_is_refused(tmp_path: Path) -> None:
    bad = write_tif(tmp_path / 'src' / 'x.tif', np.zeros((13, 8, 8), np.float32))
    with pytest.raises(
        ValueError, match=f'{bad} stores float32 values, but sensor s2_l1c'
    ):
        write_multiband_shards([bad.parent], str(tmp_path / 'out'), 's2')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(
    ('sensor', 'message'),
    [
        ('missing.yaml', 'missing.yaml'),
        ('bad.yaml', 'bad.yaml'),
        ('no_such_sensor', 'no_such_sensor'),
    ],
)
def test_a_sensor_that_does_not_load_is_one_line(
    s2_folders: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sensor: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'bad.yaml').write_text('name: half\nbands: [B1, B2]\n')
    argv = ['shard', '--sensor', sensor, str(s2_folders[0]), str(tmp_path / 'out')]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('torchgeo-gfm shard: error: ')
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--sources', 'a'], 'leave out --sources'),
        (['--from-torchgeo'], 'leave out --from-torchgeo'),
    ],
)
def test_options_of_geopile_roots_are_refused_with_sensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ['shard', str(tmp_path), str(tmp_path / 'out'), '--sensor', 's2', *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_several_roots_need_sensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['shard', str(tmp_path), str(tmp_path), str(tmp_path / 'out')]) == 2
    assert 'several SOURCE folders go with --sensor' in capsys.readouterr().err


def test_dataset_reads_the_sensor_and_arrays(s2_shards: str, tmp_path: Path) -> None:
    dataset = GeoPileStreamingDataset(s2_shards, size=24, cache_dir=str(tmp_path))
    assert dataset.sensor == get_sensor('s2')
    sample = dataset[0]
    assert sample['image'].dtype == torch.uint16  # stored values until the device
    assert sample['image'].shape == (13, 24, 24)


def test_datamodule_yields_stored_values_unnormalised(
    s2_shards: str, s2_folders: list[Path], tmp_path: Path
) -> None:
    dm = GeoPileStreamingDataModule(
        input_dir=s2_shards,
        batch_size=4,
        size=32,
        load_size=32,
        cache_dir=str(tmp_path),
    )
    dm.setup('fit')
    assert dm.sensor == get_sensor('s2')
    batch = next(iter(dm.train_dataloader()))
    stored = batch['image'].clone()
    assert stored.dtype == torch.uint16
    files = [read_tif(p) for folder in s2_folders for p in folder.rglob('*.tif')]
    square = {a.tobytes() for a in files if a.shape[1:] == (32, 32)}
    assert all(image.numpy().tobytes() in square for image in stored[:1])
    out = dm.on_after_batch_transfer(batch, 0)['image']
    assert out.dtype == torch.float32
    assert out.shape == (4, 13, 32, 32)
    torch.testing.assert_close(out, stored.float(), rtol=0, atol=0)  # not normalised


def test_datamodule_trains_on_crops_and_flips(s2_shards: str, tmp_path: Path) -> None:
    dm = GeoPileStreamingDataModule(
        input_dir=s2_shards,
        batch_size=2,
        size=16,
        load_size=32,
        cache_dir=str(tmp_path),
    )
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    out = dm.train_aug({'image': batch['image'].float()})['image']
    assert out.shape == (2, 13, 16, 16)
    assert 0 <= out.min()
    assert 1000 < out.max() <= 65535  # stored values, not normalised


def test_a_given_sensor_of_other_values_is_refused(
    s2_shards: str, tmp_path: Path
) -> None:
    dm = GeoPileStreamingDataModule(
        input_dir=s2_shards, sensor='landsat', cache_dir=str(tmp_path)
    )
    with pytest.raises(SensorError, match=r'hold sensor s2_l1c .* landsat_oli'):
        dm.setup('fit')
    # the same stored values with other statistics (e.g. from `stats`) are the user's
    mean = tuple(m + 1 for m in get_sensor('s2').mean)
    mine = get_sensor({**get_sensor('s2').to_dict(), 'name': 'mine', 'mean': mean})
    dataset = GeoPileStreamingDataset(s2_shards, sensor=mine, cache_dir=str(tmp_path))
    assert dataset.sensor == mine


def test_rgb_shards_with_a_multiband_sensor_are_refused(
    geopile: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / 'rgb')
    write_geopile_shards(geopile, out, chunk_bytes='64kb')
    with pytest.raises(SensorError, match=r'hold RGB images .* s2_l1c'):
        GeoPileStreamingDataset(out, sensor='s2', cache_dir=str(tmp_path))
    dm = GeoPileStreamingDataModule(
        input_dir=out, sensor='rgb', batch_size=2, size=64, cache_dir=str(tmp_path)
    )
    dm.setup('fit')
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert dm.sensor == get_sensor('rgb')
    assert batch['image'].max() > 2  # 0-255 values: not ImageNet-normalised


@pytest.mark.slow
def test_object_storage_round_trip(
    s3_server: str, s2_folders: list[Path], cache_dir: str
) -> None:
    url = 's3://geopile/multiband'
    report = write_multiband_shards(s2_folders, url, 's2', chunk_bytes='64kb')
    assert report.written == 8
    dataset = GeoPileStreamingDataset(
        url, size=None, shuffle=False, cache_dir=cache_dir
    )
    assert dataset.sensor == get_sensor('s2')  # from the index litdata fetched
    assert_bit_exact(list(StreamingDataset(url, cache_dir=cache_dir)), s2_folders)
