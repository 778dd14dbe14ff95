# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""predict/embed on 13-band uint16 scenes, normalised by the sensor the weights record."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import torch
from lightning.pytorch import LightningDataModule
from rasterio.crs import CRS
from rasterio.transform import from_origin
from torch import nn

from tests.models.fake_data import TINY_SWIN
from tests.scene.helpers import save_checkpoint, write_raster
from torchgeo_gfm.cli import main
from torchgeo_gfm.scene import SceneError, embed_scene, predict_scene
from torchgeo_gfm.sensors import Sensor, get_sensor
from torchgeo_gfm.tasks.inference import inference_metadata

S2 = get_sensor('s2')
#: a 10 m grid in UTM 33N, and one in EPSG:4326
GRIDS = {
    'utm': (CRS.from_epsg(32633), from_origin(500_000.0, 5_200_000.0, 10.0, 10.0)),
    'lonlat': (CRS.from_epsg(4326), from_origin(13.0, 47.0, 1e-4, 1e-4)),
}
#: band 0 is 0 (the nodata value) in every band of this block: one chip of 32 px
NODATA_BLOCK = (slice(0, 32), slice(0, 32))


class Multispectral(LightningDataModule):
    """What a multispectral datamodule shows the metadata: its sensor."""

    sensor = S2


def s2_scene(path: Path, grid: str, bands: int = 13, seed: int = 0) -> Path:
    """A uint16 Sentinel-2-like scene (values about the sensor's mean), nodata 0."""
    rng = np.random.default_rng(seed)
    mean = np.array(S2.mean[:bands])[:, None, None]
    std = np.array(S2.std[:bands])[:, None, None]
    y, x = np.mgrid[0:64, 0:96]
    texture = np.sin(x / 5.0) + np.cos(y / 7.0) + rng.normal(0, 0.3, (bands, 64, 96))
    data = np.clip(mean + 0.5 * std * texture, 1, 10_000).astype(np.uint16)
    data[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = 0
    crs, transform = GRIDS[grid]
    return write_raster(path, data, crs=crs, transform=transform, nodata=0)


@pytest.fixture(scope='module')
def s2_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Tiny 13-band checkpoints recording the s2_l1c sensor, and their tasks."""
    from torchgeo.tasks import Classification, SemanticSegmentation

    root = tmp_path_factory.mktemp('s2')
    torch.manual_seed(0)
    tasks = {
        'segmentation': SemanticSegmentation(
            model='fcn', in_channels=13, num_classes=3, num_filters=4
        ),
        'classification': Classification(
            model=TINY_SWIN, in_channels=13, num_classes=5
        ),
    }
    found: dict[str, Any] = {}
    for name, task in tasks.items():
        meta = inference_metadata(task, Multispectral())
        found[name] = save_checkpoint(task, root / f'{name}.ckpt', metadata=meta)
        found[f'{name} task'] = task.eval()
    return found


def by_hand(model: nn.Module, data: np.ndarray, sensor: Sensor) -> np.ndarray:
    """Stage-4 features of one chip ``[C, h, w]``, normalised here, averaged."""
    x = torch.from_numpy(data.astype(np.float32))
    mean = torch.tensor(sensor.mean)[:, None, None]
    std = torch.tensor(sensor.std)[:, None, None]
    with torch.inference_mode():
        out: Any = model
        features = out.forward_intermediates(
            ((x - mean) / std)[None], indices=[3], norm=True, intermediates_only=True
        )[-1]
    return features[0].mean((1, 2)).numpy()


def check_by_hand(
    out: Path, image: Path, model: nn.Module, chip: int = 32
) -> gpd.GeoDataFrame:
    """Every row's embedding is the model's on the chip normalised by the sensor."""
    frame = gpd.read_parquet(out)
    with rasterio.open(image) as src:
        data = src.read()
    for _, row in frame.iterrows():
        r, c = int(row['row']), int(row['col'])
        expected = by_hand(model, data[:, r : r + chip, c : c + chip], S2)
        np.testing.assert_allclose(row['embedding'], expected, rtol=1e-4, atol=1e-5)
    return frame


@pytest.mark.parametrize('grid', list(GRIDS))
def test_embed_normalises_with_the_recorded_sensor(
    grid: str, tmp_path: Path, s2_tasks: dict[str, Any]
) -> None:
    image = s2_scene(tmp_path / 'in.tif', grid)
    out, dense = tmp_path / 'e.parquet', tmp_path / 'dense.tif'
    weights = s2_tasks['classification']
    dense_out = dense if grid == 'utm' else None  # one dense COG is enough
    result = embed_scene(
        [image], out, weights, chip=32, dense=dense_out, progress=False, device='cpu'
    )
    assert result.rows == 6 - 1  # 2 x 3 chips, one nodata everywhere: no row
    frame = check_by_hand(out, image, s2_tasks['classification task'].model)
    recorded = json.loads(pq.read_metadata(out).metadata[b'torchgeo_gfm'])
    assert recorded['sensor'] == 's2_l1c'
    assert recorded['mean'] == pytest.approx(S2.mean)
    crs, transform = GRIDS[grid]
    assert set(frame['crs']) == {crs.to_string()}
    for _, row in frame.iterrows():  # native footprint of each chip
        left, top = transform @ (row['col'], row['row'])
        right, bottom = transform @ (row['col'] + 32, row['row'] + 32)
        assert (row['minx'], row['maxy'], row['maxx'], row['miny']) == pytest.approx(
            (left, top, right, bottom)
        )
    if grid == 'lonlat':  # the geometry is the native footprint
        np.testing.assert_allclose(
            frame.total_bounds, [13.0, 47.0 - 64e-4, 13.0 + 96e-4, 47.0], atol=1e-9
        )
    if dense_out is None:
        return
    with rasterio.open(dense) as dst:
        assert dst.crs == crs
        assert dst.transform == transform @ transform.scale(32)
        assert dst.tags()['TORCHGEO_GFM_SENSOR'] == 's2_l1c'
        assert np.isnan(dst.read(1)[0, 0])  # the nodata chip


@pytest.mark.parametrize('grid', list(GRIDS))
def test_predict_normalises_with_the_recorded_sensor(
    grid: str, tmp_path: Path, s2_tasks: dict[str, Any]
) -> None:
    image = s2_scene(tmp_path / 'in.tif', grid)
    ckpt = s2_tasks['segmentation']
    result = predict_scene(ckpt, [image], tmp_path / 'p.tif', tile=32, progress=False)
    assert result.normalisation == 'sensor s2_l1c'
    predict_scene(
        ckpt,
        [image],
        tmp_path / 'given.tif',
        tile=32,
        mean=list(S2.mean),
        std=list(S2.std),
        progress=False,
    )
    with (
        rasterio.open(image) as src,
        rasterio.open(tmp_path / 'p.tif') as dst,
        rasterio.open(tmp_path / 'given.tif') as given,
    ):
        assert (dst.crs, dst.transform, dst.shape) == (
            src.crs,
            src.transform,
            src.shape,
        )
        assert dst.tags()['TORCHGEO_GFM_SENSOR'] == 's2_l1c'
        classes = dst.read(1)
        np.testing.assert_array_equal(classes, given.read(1))
        assert (classes[NODATA_BLOCK] == dst.nodata).all()
        assert (classes[32:] != dst.nodata).all()


Run = Callable[..., int]


@pytest.fixture
def run(
    tmp_path: Path, s2_tasks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> Run:
    """Run predict or embed on a scene; on an error, check it is one line, no file."""

    def go(command: str, image: Path, *args: str, ok: bool = False) -> str:
        before = sorted(tmp_path.iterdir())
        if command == 'predict':
            argv = [
                'predict',
                str(s2_tasks['segmentation']),
                str(image),
                '--tile',
                '32',
            ]
        else:
            weights = str(s2_tasks['classification'])
            argv = ['embed', str(image), '--weights', weights, '--chip', '32']
        out = tmp_path / f'out.{"tif" if command == "predict" else "parquet"}'
        code = main([*argv, '-o', str(out), '--device', 'cpu', *args])
        err = capsys.readouterr().err
        if ok:
            assert code == 0, err
            return ''
        assert code == 2
        lines = [line for line in err.splitlines() if 'error' in line]
        assert len(lines) == 1, err
        assert 'Traceback' not in err
        assert sorted(tmp_path.iterdir()) == before  # nothing written
        return lines[0]

    return go


@pytest.mark.parametrize('command', ['predict', 'embed'])
def test_band_count_and_sensor_are_checked(
    command: str, run: Run, tmp_path: Path
) -> None:
    twelve = s2_scene(tmp_path / 'l2a.tif', 'utm', bands=12)
    error = run(command, twelve)
    assert 'has 12 band(s)' in error
    assert 's2_l1c with 13 bands' in error
    assert '--bands 1,2,3,4,5,6,7,8,9,10,11,12,13' in error
    error = run(command, twelve, '--bands', '4,3,2')
    assert '(--bands 4,3,2) has 3 band(s)' in error
    thirteen = s2_scene(tmp_path / 'l1c.tif', 'utm')
    error = run(command, thirteen, '--sensor', 'landsat')
    assert 'contradicts the sensor' in error
    assert 's2_l1c' in error
    assert 'landsat_oli' in error
    error = run(command, thirteen, '--sensor', 'no_such_sensor')
    assert 'unknown sensor' in error
    run(command, thirteen, '--sensor', 's2', ok=True)  # the same: fine


def test_sensor_for_a_checkpoint_that_records_none(
    tmp_path: Path, checkpoints: Callable[[str], Path]
) -> None:
    image = s2_scene(tmp_path / 'in.tif', 'utm')
    ckpt = checkpoints('binary13')  # 13 bands, no normalisation recorded
    with pytest.raises(SceneError, match='--sensor NAME'):
        predict_scene(ckpt, [image], tmp_path / 'x.tif', tile=32, progress=False)
    out = predict_scene(
        ckpt, [image], tmp_path / 's.tif', tile=32, sensor='s2', progress=False
    )
    assert out.normalisation == 'sensor s2_l1c'
    predict_scene(
        ckpt,
        [image],
        tmp_path / 'm.tif',
        tile=32,
        mean=list(S2.mean),
        std=list(S2.std),
        progress=False,
    )
    with rasterio.open(out.output) as a, rasterio.open(tmp_path / 'm.tif') as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.tags()['TORCHGEO_GFM_SENSOR'] == 's2_l1c'
    with pytest.raises(SceneError, match=r'sensor landsat_oli is given.*7 bands'):
        predict_scene(ckpt, [image], tmp_path / 'l.tif', sensor='landsat')


def test_rgb_weights_are_not_applied_to_other_bands(tmp_path: Path) -> None:
    image = s2_scene(tmp_path / 'in.tif', 'utm')
    # GFM's RGB weights record no sensor: refused before anything is downloaded
    with pytest.raises(SceneError, match=r'records no sensor.*--bands 4,3,2.*--sensor'):
        embed_scene([image], tmp_path / 'e.parquet', chip=32, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


@pytest.mark.slow
def test_exported_backbone_file_records_the_sensor(tmp_path: Path) -> None:
    """A 13-band GFM Swin-B file (as `export` writes it) embeds with its sensor (~1 min)."""
    from torchgeo_gfm.models import gfm_swin_b, save_backbone

    torch.manual_seed(0)
    model = gfm_swin_b(None, in_chans=13, num_classes=0).eval()
    # bf16 halves the file; the reference model is the one read back from it
    state = {
        k: v.to(torch.bfloat16) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    weights = tmp_path / 's2.safetensors'
    save_backbone(state, weights, metadata={'sensor': json.dumps(S2.to_dict())})
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    )
    image = s2_scene(tmp_path / 'in.tif', 'utm')
    out = tmp_path / 'e.parquet'
    embed_scene([image], out, weights, chip=32, stride=32, progress=False)
    check_by_hand(out, image, model)
    recorded = json.loads(pq.read_metadata(out).metadata[b'torchgeo_gfm'])
    assert recorded['sensor'] == 's2_l1c'
    with pytest.raises(SceneError, match='contradicts'):
        embed_scene([image], tmp_path / 'x.parquet', weights, sensor='s2_l2a')
