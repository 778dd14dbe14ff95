# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import dataclasses
import os
import random
from pathlib import Path

import pytest
import rasterio
import torch
from torchgeo.datasets import SSL4EOL, SSL4EOS12, DatasetNotFoundError

from tests.datamodules.batches import device_batch
from torchgeo_gfm.datamodules.ssl4eo import (
    SSL4EOLPretrainDataModule,
    SSL4EOLSeason,
    SSL4EOS12PretrainDataModule,
    SSL4EOS12Season,
)
from torchgeo_gfm.sensors import Sensor, SensorError, get_sensor

S12 = Path('tests', 'data', 'ssl4eo_s12')
L = Path('tests', 'data', 'ssl4eo_l')


def _landsat_8bit() -> Sensor:
    """landsat_oli's bands for TorchGeo's 8-bit SSL4EO-L (statistics irrelevant here)."""
    return dataclasses.replace(
        get_sensor('landsat_oli'), name='ssl4eo_l', dtype='uint8'
    )


@pytest.mark.parametrize(
    ('split', 'sensor', 'bands'), [('s2c', 's2_l1c', 13), ('s2a', 's2_l2a', 12)]
)
def test_s12_train_batch_contract(split: str, sensor: str, bands: int) -> None:
    dm = SSL4EOS12PretrainDataModule(S12, split, batch_size=2, size=192)
    assert dm.sensor.name == sensor
    batch = device_batch(dm, 'train')
    assert set(batch) == {'image'}  # one season, 2-D, no label
    assert batch['image'].dtype == torch.float32
    assert batch['image'].shape == (2, bands, 192, 192)
    assert batch['image'].max() > 255  # stored values, not normalised


def _pin_season(monkeypatch: pytest.MonkeyPatch, season: str) -> None:
    """Make both readers (ours: random.choice, TorchGeo: random.sample) take *season*."""
    monkeypatch.setattr(random, 'choice', lambda seq: season)
    monkeypatch.setattr(random, 'sample', lambda seq, k: [season])


def test_s12_season_equals_torchgeo_seasons_1(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = SSL4EOS12Season(get_sensor('s2'), root=S12, split='s2c')
    theirs = SSL4EOS12(S12, 's2c', seasons=1)
    assert len(ours) == 3  # the folders present, not the release's 251,079
    for season in sorted(os.listdir(S12 / 's2c' / '0000001')):
        _pin_season(monkeypatch, season)
        a, b = ours[1]['image'], theirs[1]['image']
        assert a.dtype == torch.uint16
        assert torch.equal(a.float(), b)  # same pixels, upsampled bands included


def test_s12_season_is_drawn_per_sample() -> None:
    ds = SSL4EOS12Season(get_sensor('s2'), root=S12, split='s2c')
    random.seed(0)
    images = {ds[0]['image'][0, 0, 0].item() for _ in range(20)}
    assert len(images) == 2  # both seasons of the location


def test_s12_split_and_sensor_band_counts_must_agree() -> None:
    dm = SSL4EOS12PretrainDataModule(S12, 's2a', sensor='s2_l1c', batch_size=1)
    with pytest.raises(
        SensorError, match="split 's2a' has 12 bands, sensor s2_l1c has 13"
    ):
        dm.setup('fit')


def test_s12_s1_needs_a_sensor() -> None:
    with pytest.raises(SensorError, match="split 's1' has no shipped sensor"):
        SSL4EOS12PretrainDataModule(S12, 's1')


def test_s12_uint8_files_refused(tmp_path: Path) -> None:
    location = tmp_path / 's2c' / '0000000' / '20200314T102021_20200314T102021_T33UVP'
    location.mkdir(parents=True)
    for band in SSL4EOS12.metadata['s2c']['bands']:
        profile = {
            'driver': 'GTiff',
            'width': 4,
            'height': 4,
            'count': 1,
            'crs': 'EPSG:32633',
        }
        profile['transform'] = rasterio.transform.from_origin(500000, 5300000, 660, 660)
        with rasterio.open(
            location / f'{band}.tif', 'w', dtype='uint8', **profile
        ) as f:
            f.write(torch.zeros(1, 4, 4, dtype=torch.uint8).numpy())
    with pytest.raises(
        ValueError, match=r'B1\.tif stores uint8 values, but sensor s2_l1c'
    ):
        SSL4EOS12Season(get_sensor('s2'), root=tmp_path, split='s2c')


def test_s12_missing() -> None:
    dm = SSL4EOS12PretrainDataModule('missing', batch_size=1)
    with pytest.raises(DatasetNotFoundError):
        dm.setup('fit')


def test_size_above_chip_refused() -> None:
    with pytest.raises(ValueError, match='size must be <= 264'):
        SSL4EOS12PretrainDataModule(S12, size=512)


def test_landsat_batch_contract() -> None:
    dm = SSL4EOLPretrainDataModule(L, sensor=_landsat_8bit(), batch_size=3, size=16)
    batch = device_batch(dm, 'train')
    assert batch['image'].shape == (3, 7, 16, 16)
    assert batch['image'].dtype == torch.float32


def test_landsat_season_equals_torchgeo(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = SSL4EOLSeason(_landsat_8bit(), root=L, split='oli_sr')
    theirs = SSL4EOL(L, 'oli_sr', seasons=1)
    for season in sorted(os.listdir(L / 'ssl4eo_l_oli_sr' / '0000002')):
        _pin_season(monkeypatch, season)
        a, b = ours[2]['image'], theirs[2]['image']
        assert a.dtype == torch.uint8
        assert torch.equal(a.float(), b)


def test_landsat_release_is_8_bit_not_collection_2() -> None:
    dm = SSL4EOLPretrainDataModule(L, batch_size=1)
    assert dm.sensor.name == 'landsat_oli'
    with pytest.raises(ValueError, match='stores uint8 values, but sensor landsat_oli'):
        dm.setup('fit')


def test_landsat_other_split_needs_a_sensor() -> None:
    with pytest.raises(SensorError, match="split 'tm_toa' has no shipped sensor"):
        SSL4EOLPretrainDataModule(L, 'tm_toa')
    dm = SSL4EOLPretrainDataModule(L, 'tm_toa', sensor=_landsat_8bit(), batch_size=1)
    dm.setup('fit')
    assert len(dm.train_dataset) == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(('side', 'compress'), [(10, None), (12, 'lzw')])
def test_s12_rasterio_fallback_equals_torchgeo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int, compress: str | None
) -> None:
    # 264 / 10 is no integer factor; LZW needs imagecodecs for tifffile: rasterio reads
    season = '20200314T102021_20200314T102021_T33UVP'
    location = tmp_path / 's2c' / '0000000' / season
    location.mkdir(parents=True)
    rng = torch.Generator().manual_seed(0)
    for band in SSL4EOS12.metadata['s2c']['bands']:
        data = torch.randint(0, 10000, (1, side, side), generator=rng).numpy()
        profile = {'driver': 'GTiff', 'width': side, 'height': side, 'count': 1}
        geo = {
            'crs': 'EPSG:32633',
            'transform': rasterio.transform.from_origin(0, 0, 1, 1),
        }
        if compress:
            profile['compress'] = compress
        path = location / f'{band}.tif'
        with rasterio.open(path, 'w', dtype='uint16', **profile, **geo) as f:
            f.write(data.astype('uint16'))
    _pin_season(monkeypatch, season)
    ours = SSL4EOS12Season(get_sensor('s2'), root=tmp_path, split='s2c')[0]['image']
    theirs = SSL4EOS12(tmp_path, 's2c')[0]['image']
    assert torch.equal(ours.float(), theirs)
