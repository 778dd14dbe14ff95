# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import timm
from rasterio.transform import from_origin
from torchgeo.datasets import ClayEmbeddings, RasterDataset

from tests.models.fake_data import TINY_SWIN
from tests.scene.helpers import UTM, WGS84, smooth_image, write_raster
from torchgeo_gfm.cli import main
from torchgeo_gfm.scene import Backbone, SceneError, embed_scene

Checkpoints = Callable[[str], Path]


def tiny(channels: int = 3, stage: int = 4) -> Backbone:
    model = timm.create_model(TINY_SWIN, in_chans=channels, num_classes=0).eval()
    return Backbone(model, stage, channels, [127.0], [64.0], 'tiny')


def test_geoparquet_schema_and_clay(tmp_path: Path) -> None:
    data = smooth_image(3, 100, 70)
    data[:, :32, :32] = 0  # one chip of nodata: no row
    image = write_raster(
        tmp_path / 'in.tif',
        data,
        nodata=0,
        tags={'TIFFTAG_DATETIME': '2021:06:01 10:30:00'},
    )
    out = tmp_path / 'emb.parquet'
    result = embed_scene([image], out, backbone=tiny(), chip=32, progress=False)
    frame = gpd.read_parquet(out)
    assert result.rows == len(frame) == 4 * 3 - 1
    assert frame.crs.to_epsg() == 4326
    assert {
        'geometry',
        'embedding',
        'minx',
        'miny',
        'maxx',
        'maxy',
        'crs',
        'source',
        'row',
        'col',
        'datetime',
    } <= set(frame.columns)
    assert len(frame['embedding'].iloc[0]) == 128  # tiny Swin: 16 * 8
    assert frame['crs'].iloc[0] == 'EPSG:32618'
    first = frame.sort_values(['row', 'col']).iloc[0]
    assert (first['row'], first['col']) == (0, 32)
    with rasterio.open(image) as src:  # native bounds of the chip
        left, top = src.transform @ (32, 0)
    assert (first['minx'], first['maxy']) == (left, top)
    assert -75 < frame['minx'].count()
    assert frame.total_bounds[0] > -75
    dataset = ClayEmbeddings(root=out)
    sample = dataset[0]
    assert sample['embedding'].shape == (128,)
    assert 't' in sample
    assert -75 < float(sample['x']) < -74


def test_dense_is_a_raster_dataset(tmp_path: Path) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 100, 70))
    dense = tmp_path / 'dense.tif'
    embed_scene(
        [image],
        tmp_path / 'e.parquet',
        backbone=tiny(stage=3),
        chip=64,
        stride=32,
        stage=3,
        dense=dense,
        progress=False,
    )
    with rasterio.open(dense) as dst, rasterio.open(image) as src:
        assert dst.count == 64
        assert dst.crs == UTM
        assert (dst.height, dst.width) == (7, 5)
        assert dst.transform.a == src.transform.a * 16
        assert dst.transform.c == src.transform.c
        assert np.isfinite(dst.read()).all()
    dataset = RasterDataset(paths=str(dense))
    assert dataset.crs == UTM
    assert len(dataset) == 1


def test_multispectral_and_several_rasters(tmp_path: Path) -> None:
    a = write_raster(tmp_path / 'a.tif', smooth_image(13, 64, 64))
    b = write_raster(
        tmp_path / 'b.tif',
        smooth_image(13, 64, 64),
        crs=WGS84,
        transform=from_origin(2, 48, 1e-4, 1e-4),
    )
    out = tmp_path / 'e.parquet'
    embed_scene([a, b], out, backbone=tiny(13), chip=32, progress=False)
    frame = gpd.read_parquet(out)
    assert len(frame) == 8
    assert set(frame['crs']) == {'EPSG:32618', 'EPSG:4326'}
    assert 'datetime' not in frame


def test_cli_with_finetuned_backbone(tmp_path: Path, checkpoints: Checkpoints) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    out = tmp_path / 'e.parquet'
    weights = str(checkpoints('classification'))
    assert (
        main(
            ['embed', str(image), '-o', str(out), '--weights', weights, '--chip', '32']
        )
        == 0
    )
    assert len(gpd.read_parquet(out)) == 4
    assert (
        main(
            ['embed', str(image), '-o', str(out), '--weights', weights, '--chip', '32']
        )
        == 2
    )


def test_cli_mean_std(tmp_path: Path, checkpoints: Checkpoints) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    weights = str(checkpoints('classification'))
    args = ['embed', str(image), '--weights', weights, '--chip', '32']
    stats = ['--mean', '10,20,30', '--std', '5']
    assert main([*args, '-o', str(tmp_path / 'cli.parquet'), *stats]) == 0
    api = embed_scene(
        [image], tmp_path / 'api.parquet', weights, chip=32, mean=[10, 20, 30], std=[5]
    )
    assert api.rows == 4
    assert main([*args, '-o', str(tmp_path / 'default.parquet')]) == 0
    cli, api_rows, default = (
        np.stack(gpd.read_parquet(tmp_path / f'{n}.parquet')['embedding'].to_list())
        for n in ('cli', 'api', 'default')
    )
    np.testing.assert_allclose(cli, api_rows, rtol=1e-5, atol=1e-6)  # what the API does
    assert not np.allclose(cli, default)  # and not the weights' normalisation
    assert main([*args, '-o', str(tmp_path / 'x.parquet'), '--mean', '1,2']) == 2


def test_bad_input(tmp_path: Path) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    out = tmp_path / 'e.parquet'
    with pytest.raises(SceneError, match='--chip 40'):
        embed_scene([image], out, backbone=tiny(), chip=40, progress=False)
    with pytest.raises(SceneError, match='--stage 5'):
        embed_scene([image], out, backbone=tiny(), stage=5, progress=False)
    with pytest.raises(SceneError, match='the model takes 4'):
        embed_scene([image], out, backbone=tiny(4), chip=32, progress=False)
    junk = tmp_path / 'w.safetensors'
    junk.write_bytes(b'junk')
    with pytest.raises(SceneError, match='not usable as GFM weights'):
        embed_scene([image], out, weights=junk, chip=32, progress=False)
    assert not out.exists()
