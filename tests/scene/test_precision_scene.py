# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The scene engine's precision: fp32 by default on every CPU, bf16 only when asked.

Every test patches the CPU detection, so each machine runs both branches (native bf16
and emulated) and no expected value depends on the CPU the suite runs on.
"""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import timm
import torch

from tests.models.fake_data import TINY_SWIN
from tests.scene.helpers import smooth_image, write_raster
from torchgeo_gfm import precision
from torchgeo_gfm.cli import main
from torchgeo_gfm.scene import (
    Backbone,
    TileGrid,
    embed_scene,
    open_scene,
    predict_scene,
    run_tiles,
)

Checkpoints = Callable[[str], Path]
#: what each kind of CPU reports
CPUS = {'native': ('avx2', 'avx512_bf16', 'amx_bf16'), 'emulated': ('avx2', 'avx512f')}


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make the engine believe it runs on a 'native' or 'emulated' bf16 CPU."""

    def set_cpu(kind: str) -> None:
        monkeypatch.setattr(precision, 'cpu_flags', lambda: frozenset(CPUS[kind]))

    return set_cpu


@pytest.mark.parametrize(
    ('mode', 'kind', 'expected'),
    [
        ('fp32', 'native', 'fp32'),
        ('fp32', 'emulated', 'fp32'),
        ('bf16', 'native', 'bf16'),
        ('bf16', 'emulated', 'bf16'),
        ('auto', 'native', 'bf16'),
        ('auto', 'emulated', 'fp32'),
    ],
)
def test_resolve_and_autocast(
    cpu: Callable[[str], None], mode: str, kind: str, expected: str
) -> None:
    cpu(kind)
    assert precision.resolve(mode, 'cpu') == expected
    assert precision.describe(mode, 'cpu').startswith(
        'bf16 autocast on cpu' if expected == 'bf16' else 'fp32 on cpu'
    )
    with precision.autocast('cpu', mode):
        assert torch.is_autocast_enabled('cpu') == (expected == 'bf16')


def test_resolve_refuses_unknown_mode() -> None:
    with pytest.raises(ValueError, match="precision 'fp16'"):
        precision.resolve('fp16', 'cpu')


@pytest.mark.parametrize('kind', ['native', 'emulated'])
@pytest.mark.parametrize('mode', ['fp32', 'bf16', 'auto'])
def test_engine_runs_the_model_as_asked(
    tmp_path: Path, cpu: Callable[[str], None], kind: str, mode: str
) -> None:
    cpu(kind)
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    scene = open_scene([image], None, 3)
    seen: list[bool] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.is_autocast_enabled('cpu'))
        return x[:, 0]

    run_tiles(
        scene,
        TileGrid(40, 40, 32, 8),
        model,
        lambda tile, out: None,
        np.zeros(3, np.float32),
        progress=False,
        precision=mode,
    )
    bf16 = mode == 'bf16' or (mode == 'auto' and kind == 'native')
    assert seen
    assert set(seen) == {bf16}


def test_default_is_fp32_on_every_cpu(
    tmp_path: Path,
    checkpoints: Checkpoints,
    cpu: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the same class map and probabilities whether bf16 is native or not
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 90, 70))
    maps = {}
    for kind in CPUS:
        cpu(kind)
        out = tmp_path / f'{kind}.tif'
        with caplog.at_level(logging.INFO, logger='torchgeo_gfm'):
            result = predict_scene(
                checkpoints('unet'),
                [image],
                out,
                tile=64,
                overlap=16,
                probabilities=True,
                progress=False,
            )
        assert result.precision == 'fp32'
        assert 'Precision: fp32 on cpu' in caplog.text
        with rasterio.open(out) as dst:
            assert dst.tags()['TORCHGEO_GFM_PRECISION'] == 'fp32'
            maps[kind] = dst.read()
    np.testing.assert_array_equal(maps['native'], maps['emulated'])


@pytest.mark.parametrize(
    ('args', 'kind', 'expected'),
    [
        ([], 'native', 'fp32'),
        (['--precision', 'fp32'], 'native', 'fp32'),
        (['--precision', 'bf16'], 'emulated', 'bf16'),
        (['--precision', 'auto'], 'native', 'bf16'),
        (['--precision', 'auto'], 'emulated', 'fp32'),
    ],
)
def test_predict_cli_records_precision(
    tmp_path: Path,
    checkpoints: Checkpoints,
    cpu: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    kind: str,
    expected: str,
) -> None:
    cpu(kind)
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    out = tmp_path / 'out.tif'
    command = ['predict', str(checkpoints('fcn')), str(image), '-o', str(out)]
    assert main([*command, '--tile', '32', '--device', 'cpu', *args]) == 0
    assert f'precision: {expected}' in capsys.readouterr().out
    with rasterio.open(out) as dst:
        assert dst.tags()['TORCHGEO_GFM_PRECISION'] == expected


def test_predict_refuses_unknown_precision(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchgeo_gfm.scene import SceneError

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    with pytest.raises(SceneError, match="--precision 'fp16'"):
        predict_scene(checkpoints('fcn'), [image], tmp_path / 'o.tif', precision='fp16')
    with pytest.raises(SystemExit):
        main(['predict', 'x.ckpt', 'in.tif', '-o', 'o.tif', '--precision', 'fp16'])
    assert 'invalid choice' in capsys.readouterr().err


@pytest.mark.parametrize(
    ('mode', 'kind', 'expected'),
    [
        ('fp32', 'native', 'fp32'),
        ('bf16', 'emulated', 'bf16'),
        ('auto', 'native', 'bf16'),
    ],
)
def test_embed_records_precision(
    tmp_path: Path, cpu: Callable[[str], None], mode: str, kind: str, expected: str
) -> None:
    cpu(kind)
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    model = timm.create_model(TINY_SWIN, in_chans=3, num_classes=0).eval()
    backbone = Backbone(model, 4, 3, [127.0], [64.0], 'tiny')
    out, dense = tmp_path / 'e.parquet', tmp_path / 'dense.tif'
    result = embed_scene(
        [image],
        out,
        backbone=backbone,
        chip=32,
        dense=dense,
        progress=False,
        precision=mode,
    )
    assert result.precision == expected
    meta = json.loads(pq.read_schema(out).metadata[b'torchgeo_gfm'])
    assert meta['precision'] == expected
    assert meta['weights'] == 'tiny'
    assert (meta['stage'], meta['chip'], meta['stride']) == (4, 32, 32)
    assert meta['mean'] == [127.0] * 3
    assert b'geo' in pq.read_schema(out).metadata  # still GeoParquet
    with rasterio.open(dense) as dst:
        assert dst.tags()['TORCHGEO_GFM_PRECISION'] == expected


def test_embed_default_is_fp32_on_every_cpu(
    tmp_path: Path, cpu: Callable[[str], None]
) -> None:
    import geopandas as gpd

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    model = timm.create_model(TINY_SWIN, in_chans=3, num_classes=0).eval()
    backbone = Backbone(model, 4, 3, [127.0], [64.0], 'tiny')
    embeddings = {}
    for kind in CPUS:
        cpu(kind)
        out = tmp_path / f'{kind}.parquet'
        embed_scene([image], out, backbone=backbone, chip=32, progress=False)
        embeddings[kind] = np.stack(gpd.read_parquet(out)['embedding'].to_list())
    np.testing.assert_array_equal(embeddings['native'], embeddings['emulated'])
