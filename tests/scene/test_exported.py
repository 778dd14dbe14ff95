# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""predict and embed from an exported file (.onnx, .pt2) equal the checkpoint route."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import onnx
import pyarrow.parquet as pq
import pytest
import rasterio
import torch
from onnx import TensorProto, helper
from rasterio.crs import CRS
from rasterio.transform import from_origin

from tests.scene.helpers import smooth_image, write_raster
from torchgeo_gfm.cli import main
from torchgeo_gfm.export import ExportError, export_model, load_exported
from torchgeo_gfm.scene import SceneError, embed_scene, predict_scene
from torchgeo_gfm.scene.exported import load_model

Checkpoints = Callable[[str], Path]
Exported = Callable[[str, str], Path]

#: the tile the tiny models are exported at
TILE = 64
#: a 10 m grid in UTM 33N (Berlin)
CRS_33N = CRS.from_epsg(32633)
TRANSFORM_33N = from_origin(390_000.0, 5_820_000.0, 10.0, 10.0)
SUFFIXES = ['.onnx', '.pt2']
#: the difference allowed between an exported graph and the checkpoint's PyTorch
TOLERANCE = 1e-4


def write_scene(path: Path, bands: int = 3, seed: int = 0) -> Path:
    """A 150 x 130 px uint8 raster in EPSG:32633 with a nodata corner (value 0)."""
    image = smooth_image(bands, 150, 130, seed).clip(1, 255)
    image[:, :64, :70] = 0  # the first 64 px chip is nodata everywhere
    return write_raster(path, image, CRS_33N, TRANSFORM_33N, nodata=0)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('scenes')
    return {
        'before': write_scene(root / 'before.tif'),
        'after': write_scene(root / 'after.tif', seed=1),
        'four': write_scene(root / 'four.tif', bands=4),
    }


@pytest.fixture(scope='module')
def exported(
    checkpoints: Checkpoints, tmp_path_factory: pytest.TempPathFactory
) -> Exported:
    """``exported(name, suffix)``: the checkpoint exported once per module.

    'backbone' is the backbone of the 'classification' checkpoint (stage 4).
    """
    root = tmp_path_factory.mktemp('exported')
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, suffix: str) -> Path:
        if (name, suffix) not in cache:
            source = checkpoints('classification' if name == 'backbone' else name)
            what = 'backbone' if name == 'backbone' else 'task'
            out = root / f'{name}{suffix}'
            cache[name, suffix] = export_model(source, out, what=what, tile=TILE)
        return cache[name, suffix]

    return get


def inputs_of(name: str, scenes: dict[str, Path]) -> list[Path]:
    return (
        [scenes['before'], scenes['after']] if name == 'change' else [scenes['before']]
    )


def read(path: Path) -> tuple[np.ndarray, dict[str, Any], dict[str, str]]:
    with rasterio.open(path) as src:
        profile = {
            k: src.profile[k]
            for k in ('crs', 'transform', 'width', 'height', 'count', 'dtype')
        }
        return src.read(), {**profile, 'nodata': src.nodata}, src.tags()


def assert_same_profile(a: dict[str, Any], b: dict[str, Any]) -> None:
    nodata_a, nodata_b = a.pop('nodata'), b.pop('nodata')
    assert a == b
    assert nodata_a == nodata_b or (np.isnan(nodata_a) and np.isnan(nodata_b))


@pytest.mark.slow
@pytest.mark.parametrize('suffix', SUFFIXES)
@pytest.mark.parametrize('name', ['fcn', 'classification', 'change'])
def test_predict_equals_checkpoint(
    tmp_path: Path,
    checkpoints: Checkpoints,
    exported: Exported,
    scenes: dict[str, Path],
    name: str,
    suffix: str,
) -> None:
    model = exported(name, suffix)
    inputs = inputs_of(name, scenes)
    results = {}
    for route, source in (('ckpt', checkpoints(name)), ('exported', model)):
        for probabilities in (False, True):
            out = tmp_path / f'{route}_{probabilities}.tif'
            predict_scene(
                source,
                inputs,
                out,
                tile=TILE if route == 'ckpt' else None,  # the file's by default
                probabilities=probabilities,
                progress=False,
            )
            results[route, probabilities] = read(out)
    classes, profile, tags = results['exported', False]
    expected, expected_profile, _ = results['ckpt', False]
    assert_same_profile(profile, expected_profile)
    assert profile['crs'] == CRS_33N
    np.testing.assert_array_equal(classes, expected)
    assert (classes == 255).any()  # the nodata corner
    probs, profile, _ = results['exported', True]
    expected, expected_profile, _ = results['ckpt', True]
    assert_same_profile(profile, expected_profile)
    np.testing.assert_array_equal(np.isnan(probs), np.isnan(expected))
    np.testing.assert_allclose(probs, expected, atol=TOLERANCE, equal_nan=True)
    recorded = json.loads(tags['TORCHGEO_GFM_EXPORTED'])
    backend = 'onnxruntime' if suffix == '.onnx' else 'torch.export'
    assert recorded['path'] == str(model)
    assert recorded['backend'] == backend
    assert recorded['sha256'] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert recorded['source'] == checkpoints(name).name
    assert tags['TORCHGEO_GFM_PRECISION'] == 'fp32'
    assert 'TORCHGEO_GFM_CHECKPOINT' not in tags


def test_predict_from_a_loaded_model(
    tmp_path: Path, exported: Exported, scenes: dict[str, Path]
) -> None:
    path = exported('fcn', '.onnx')
    by_path, by_model = tmp_path / 'path.tif', tmp_path / 'model.tif'
    predict_scene(path, [scenes['before']], by_path, progress=False)
    model = load_exported(path)
    result = predict_scene(model, [scenes['before']], by_model, progress=False)
    np.testing.assert_array_equal(read(by_model)[0], read(by_path)[0])
    assert result.normalisation.startswith('in the exported graph')
    # 64 px tiles every 32 px (the overlap capped to half the tile), the last shifted
    # to the edge: 4 x 4; the first is nodata everywhere
    assert (result.stats.tiles, result.stats.skipped) == (16, 1)


def test_scene_smaller_than_the_tile_is_padded(
    tmp_path: Path, exported: Exported
) -> None:
    small = write_raster(
        tmp_path / 'small.tif', smooth_image(3, 40, 50), CRS_33N, TRANSFORM_33N
    )
    out = tmp_path / 'o.tif'
    result = predict_scene(exported('fcn', '.onnx'), [small], out, progress=False)
    classes, profile, _ = read(out)
    assert result.stats.tiles == 1
    assert (profile['height'], profile['width']) == (40, 50)
    assert profile['transform'] == TRANSFORM_33N
    assert (classes < 4).all()


@pytest.mark.slow
@pytest.mark.parametrize('suffix', SUFFIXES)
def test_embed_equals_weights(
    tmp_path: Path,
    checkpoints: Checkpoints,
    exported: Exported,
    scenes: dict[str, Path],
    suffix: str,
) -> None:
    model = exported('backbone', suffix)
    outputs: dict[str, Any] = {}
    for route, weights in (('ckpt', checkpoints('classification')), ('exp', model)):
        out, cog = tmp_path / f'{route}.parquet', tmp_path / f'{route}.tif'
        embed_scene(
            [scenes['before']],
            out,
            weights=weights,
            chip=TILE if route == 'ckpt' else None,
            stride=32,
            dense=cog,
            progress=False,
        )
        outputs[route] = (gpd.read_parquet(out), read(cog), out)
    rows, (dense, profile, tags), out = outputs['exp']
    expected_rows, (expected_dense, expected_profile, _), _ = outputs['ckpt']
    assert len(rows) == len(expected_rows) > 0
    for column in ('row', 'col', 'minx', 'miny', 'maxx', 'maxy', 'crs', 'source'):
        assert rows[column].tolist() == expected_rows[column].tolist()
    assert rows.geometry.geom_equals_exact(expected_rows.geometry, 1e-9).all()
    np.testing.assert_allclose(
        np.stack(rows['embedding'].to_list()),
        np.stack(expected_rows['embedding'].to_list()),
        atol=TOLERANCE,
    )
    assert_same_profile(profile, expected_profile)
    np.testing.assert_array_equal(np.isnan(dense), np.isnan(expected_dense))
    np.testing.assert_allclose(dense, expected_dense, atol=TOLERANCE, equal_nan=True)
    assert np.isnan(dense).any()  # the nodata corner
    meta = json.loads(pq.read_metadata(out).metadata[b'torchgeo_gfm'])
    assert meta['stage'] == 4
    assert meta['chip'] == TILE
    assert meta['exported']['backend'] == (
        'onnxruntime' if suffix == '.onnx' else 'torch.export'
    )
    assert json.loads(tags['TORCHGEO_GFM_EXPORTED']) == meta['exported']


def test_cli_predict_end_to_end(
    tmp_path: Path,
    exported: Exported,
    scenes: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = exported('fcn', '.onnx')
    out = tmp_path / 'out.tif'
    command = ['predict', str(model), str(scenes['before']), '-o', str(out)]
    assert main([*command, '--device', 'cpu']) == 0
    assert f'{out}: 16 tiles (1 nodata)' in capsys.readouterr().out
    expected = tmp_path / 'expected.tif'
    predict_scene(model, [scenes['before']], expected, progress=False)
    np.testing.assert_array_equal(read(out)[0], read(expected)[0])


@pytest.mark.slow
def test_cli_embed_end_to_end(
    tmp_path: Path,
    exported: Exported,
    scenes: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = exported('backbone', '.onnx')
    out = tmp_path / 'e.parquet'
    command = ['embed', str(scenes['before']), '-o', str(out), '--weights', str(model)]
    assert main([*command, '--device', 'cpu']) == 0
    assert f'{out}: ' in capsys.readouterr().out
    assert len(gpd.read_parquet(out)) == 8  # 3 x 3 chips of 64 px, one all nodata


def plain_onnx(path: Path) -> Path:
    """A valid ONNX model (image -> probabilities) without torchgeo-gfm's metadata."""
    image = helper.make_tensor_value_info('image', TensorProto.FLOAT, [None, 3, 64, 64])
    probs = helper.make_tensor_value_info(
        'probabilities', TensorProto.FLOAT, [None, 3, 64, 64]
    )
    node = helper.make_node('Sigmoid', ['image'], ['probabilities'])
    graph = helper.make_graph([node], 'plain', [image], [probs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    onnx.save(model, path)
    return path


BAD_PREDICT = [
    pytest.param('backbone', [], 'is an exported backbone', marks=pytest.mark.slow),
    ('fcn', ['--tile', '128'], '--tile 128: '),
    ('fcn', ['--bands', '1,2'], 'has 2 band(s)'),
    ('fcn', ['--mean', '1,2,3', '--std', '1,1,1'], '--mean: '),
    ('fcn', ['--normalize', 'unit'], '--normalize: '),
    ('fcn', ['--sensor', 's2'], '--sensor: '),
    ('fcn', ['--precision', 'bf16'], '--precision bf16: '),
    ('plain', [], "no 'torchgeo_gfm' metadata"),
]


@pytest.mark.parametrize(('name', 'options', 'message'), BAD_PREDICT)
def test_predict_bad_input(
    tmp_path: Path,
    exported: Exported,
    scenes: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    options: list[str],
    message: str,
) -> None:
    if name == 'plain':
        model = plain_onnx(tmp_path / 'plain.onnx')
    else:
        model = exported(name, '.onnx')
    out = tmp_path / 'out.tif'
    command = ['predict', str(model), str(scenes['before']), '-o', str(out)]
    assert main([*command, '--device', 'cpu', *options]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('torchgeo-gfm predict: error: ')
    assert len(error.splitlines()) == 1
    assert message in error
    assert str(model) in error
    assert list(tmp_path.iterdir()) == ([model] if name == 'plain' else [])


def test_predict_band_count_names_bands(
    tmp_path: Path, exported: Exported, scenes: dict[str, Path]
) -> None:
    out = tmp_path / 'out.tif'
    with pytest.raises(SceneError, match=r'four\.tif has 4 band\(s\).*--bands 1,2,3'):
        predict_scene(exported('fcn', '.onnx'), [scenes['four']], out, progress=False)
    assert not out.exists()


BAD_EMBED = [
    ('fcn', [], 'is an exported segmentation task, not a backbone'),
    ('backbone', ['--chip', '128'], '--chip 128: '),
    ('backbone', ['--stage', '3'], '--stage 3: '),
    ('backbone', ['--stride', '48'], '--stride 48: '),
    ('backbone', ['--mean', '1,2,3', '--std', '1,1,1'], '--mean: '),
    ('backbone', ['--precision', 'bf16'], '--precision bf16: '),
    ('backbone', ['--bands', '1'], 'has 1 band(s)'),
]


@pytest.mark.slow
@pytest.mark.parametrize(('name', 'options', 'message'), BAD_EMBED)
def test_embed_bad_input(
    tmp_path: Path,
    exported: Exported,
    scenes: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    options: list[str],
    message: str,
) -> None:
    model = exported(name, '.onnx')
    out, dense = tmp_path / 'e.parquet', tmp_path / 'd.tif'
    command = ['embed', str(scenes['before']), '-o', str(out), '--dense', str(dense)]
    assert main([*command, '--weights', str(model), '--device', 'cpu', *options]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('torchgeo-gfm embed: error: ')
    assert len(error.splitlines()) == 1
    assert message in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('suffix', SUFFIXES)
def test_device_auto_falls_back_to_the_cpu(exported: Exported, suffix: str) -> None:
    # as on a machine where PyTorch sees a GPU the runtime cannot use (onnxruntime
    # without CUDA) or where there is none (here): 'auto' runs on the CPU
    path = exported('fcn', suffix)
    cuda = torch.device('cuda')
    if suffix == '.pt2' and torch.cuda.is_available():
        pytest.skip('PyTorch runs the .pt2 on this GPU: nothing falls back')
    if suffix == '.onnx':
        import onnxruntime

        if 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
            pytest.skip('this onnxruntime runs on CUDA: nothing falls back')
    assert load_model(path, 'task', 'auto', cuda).device == torch.device('cpu')
    with pytest.raises(ExportError, match='--device cuda'):
        load_model(path, 'task', 'cuda', cuda)
