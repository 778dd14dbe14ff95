# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Unusual and bad inputs to the scene engine: right output, or one clear line, never both.

One test (or a hypothesis property) per class of input: partial coverage of the second
date, non-finite pixels, south-up and rotated rasters, statistics and second dates that do
not fit, integer options, rasters without a CRS, all-nodata scenes, truncated files,
devices, tiles larger than the scene, outputs that are inputs.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import timm
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine, from_origin

from tests.models.fake_data import TINY_SWIN
from tests.scene.helpers import (
    UTM_TRANSFORM,
    copy_band_checkpoint,
    save_checkpoint,
    smooth_image,
    write_raster,
)
from torchgeo_gfm.cli import main
from torchgeo_gfm.outputs import OutputError
from torchgeo_gfm.scene import Backbone, SceneError, embed_scene, predict_scene
from torchgeo_gfm.scene.engine import check_device, check_integer
from torchgeo_gfm.scene.footprints import footprint
from torchgeo_gfm.scene.raster import parse_bands
from torchgeo_gfm.scene.tiling import cap_tile

Checkpoints = Callable[[str], Path]
FEW = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def tiny(channels: int = 3, mean: list[float] | None = None) -> Backbone:
    model = timm.create_model(TINY_SWIN, in_chans=channels, num_classes=0).eval()
    return Backbone(model, 4, channels, mean or [127.0], [64.0], 'tiny')


def one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The error a CLI run printed: exactly one line, no traceback."""
    err = capsys.readouterr().err
    lines = [
        line for line in err.splitlines() if 'error' in line or 'Traceback' in line
    ]
    assert len(lines) == 1, err
    assert lines[0].startswith(f'torchgeo-gfm {command}: error: ')
    return lines[0]


@pytest.fixture(scope='module')
def copy4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose class at each pixel is band 1's value (0..3)."""
    return copy_band_checkpoint(tmp_path_factory.mktemp('c') / 'c4.ckpt', 4)


# ---------------------------------------------------------------------------------------
# nothing silently wrong


@pytest.mark.parametrize('nodata', [None, 0])
def test_second_date_covering_part_of_the_first(
    tmp_path: Path, checkpoints: Checkpoints, nodata: int | None
) -> None:
    before = write_raster(tmp_path / 'a.tif', smooth_image(3, 64, 80) | 1)
    # the second date: 5 m pixels over the left 30 of 80 columns only
    grid = from_origin(UTM_TRANSFORM.c, UTM_TRANSFORM.f, 5.0, 5.0)
    after = write_raster(
        tmp_path / 'b.tif',
        smooth_image(3, 128, 60, seed=1) | 1,
        transform=grid,
        nodata=nodata,
    )
    out = tmp_path / 'change.tif'
    predict_scene(
        checkpoints('change'), [before, after], out, tile=32, overlap=8, progress=False
    )
    with rasterio.open(out) as dst:
        classes = dst.read(1)
    assert (classes[:, 31:] == 255).all()  # not covered: nodata, not a class
    assert (classes[:, :29] != 255).all()


@FEW
@given(
    st.lists(
        st.tuples(
            st.integers(0, 39),
            st.integers(0, 47),
            st.sampled_from([np.nan, np.inf, -np.inf]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([None, np.nan]),
)
def test_non_finite_pixels_are_nodata(
    copy4: Path, bad: list[tuple[int, int, float]], nodata: float | None
) -> None:
    y, x = np.mgrid[0:40, 0:48]
    classes = ((y // 10 + x // 12) % 4).astype(np.float32)
    data = np.stack([classes, classes, classes])
    for row, col, value in bad:
        data[row % 3, row, col] = value  # any band, any position
    invalid = ~np.isfinite(data).all(0)
    with tempfile.TemporaryDirectory() as folder:
        image = write_raster(Path(folder) / 'in.tif', data, nodata=nodata)
        out = Path(folder) / 'out.tif'
        predict_scene(copy4, [image], out, tile=16, overlap=4, progress=False)
        with rasterio.open(out) as dst:
            result = dst.read(1)
    assert (result[invalid] == 255).all()
    assert (result[~invalid] == classes[~invalid]).all()  # neighbours unaffected


def test_non_finite_pixels_never_reach_the_model(
    tmp_path: Path, copy4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchgeo_gfm.scene import predictor as module

    data = np.ones((3, 40, 40), np.float32)
    data[1, 5:9, 7:30] = np.nan
    data[2, 20, 20] = np.inf
    image = write_raster(tmp_path / 'in.tif', data)
    seen = []
    call = module.Predictor.__call__

    def spy(self: module.Predictor, images: torch.Tensor) -> torch.Tensor:
        seen.append(bool(torch.isfinite(images).all()))
        return call(self, images)

    monkeypatch.setattr(module.Predictor, '__call__', spy)
    predict_scene(copy4, [image], tmp_path / 'o.tif', tile=16, progress=False)
    assert seen
    assert all(seen)


@pytest.mark.parametrize(
    'transform',
    [
        from_origin(583_000.0, 4_507_000.0, 10.0, 10.0),  # north-up
        Affine(10.0, 0.0, 583_000.0, 0.0, 10.0, 4_506_000.0),  # south-up
        Affine(-10.0, 0.0, 583_640.0, 0.0, -10.0, 4_507_000.0),  # east-left
        Affine.translation(583_000.0, 4_507_000.0)
        @ Affine.rotation(30)
        @ Affine.scale(10, -10),
    ],
)
def test_footprints_whatever_the_orientation(tmp_path: Path, transform: Affine) -> None:
    image = write_raster(
        tmp_path / 'in.tif', smooth_image(3, 64, 64), transform=transform
    )
    out = tmp_path / 'e.parquet'
    embed_scene([image], out, backbone=tiny(), chip=32, progress=False)
    frame = gpd.read_parquet(out)
    assert len(frame) == 4
    assert (frame['minx'] < frame['maxx']).all()
    assert (frame['miny'] < frame['maxy']).all()
    native = frame.to_crs(32618)
    for chip, geometry in zip(frame.itertuples(), native.geometry):
        window = rasterio.windows.Window(chip.col, chip.row, 32, 32)
        assert (chip.minx, chip.miny, chip.maxx, chip.maxy) == pytest.approx(
            footprint(transform, window)
        )
        assert geometry.area == pytest.approx(320.0 * 320.0, rel=1e-6)
        assert geometry.bounds == pytest.approx(
            (chip.minx, chip.miny, chip.maxx, chip.maxy), abs=1e-3
        )
    # the chips tile the scene: their union's area is the scene's
    assert native.union_all().area == pytest.approx(640.0 * 640.0, rel=1e-6)


def test_mean_with_more_values_than_bands(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    stats = ['--mean', '1,2,3,4', '--std', '5']
    args = [
        'predict',
        str(checkpoints('fcn')),
        str(image),
        '-o',
        str(tmp_path / 'o.tif'),
    ]
    assert main([*args, '--tile', '32', *stats]) == 2
    assert '4 values' in one_line_error(capsys, 'predict')
    out = str(tmp_path / 'e.parquet')
    weights = str(checkpoints('classification'))
    assert main(['embed', str(image), '-o', out, '--weights', weights, *stats]) == 2
    assert '4 values' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


def test_statistics_of_other_bands_are_not_invented(tmp_path: Path) -> None:
    # RGB statistics for a 13-band raster: refused, asking for --mean/--std
    image = write_raster(tmp_path / 'in.tif', smooth_image(13, 64, 64))
    rgb = tiny(13, mean=[123.675, 116.28, 103.53])
    with pytest.raises(SceneError, match='--mean and --std'):
        embed_scene([image], tmp_path / 'e.parquet', backbone=rgb, chip=32)
    assert not (tmp_path / 'e.parquet').exists()


@pytest.mark.parametrize(
    ('second', 'bands', 'message'),
    [
        (smooth_image(3, 40, 40).astype(np.uint16) * 40, None, 'uint16 values'),
        (smooth_image(4, 40, 40), None, 'has 4 bands'),
        (smooth_image(3, 40, 40).astype(np.float32), '1,2,3', 'float32 values'),
    ],
)
def test_second_date_of_another_kind(
    tmp_path: Path,
    checkpoints: Checkpoints,
    second: np.ndarray,
    bands: str | None,
    message: str,
) -> None:
    before = write_raster(tmp_path / 'a.tif', smooth_image(3, 40, 40))
    after = write_raster(tmp_path / 'b.tif', second)
    out = tmp_path / 'o.tif'
    with pytest.raises(SceneError, match=message):
        predict_scene(checkpoints('change'), [before, after], out, bands=bands)
    assert not out.exists()


def test_second_date_with_more_bands_and_bands_chosen(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    before = write_raster(tmp_path / 'a.tif', smooth_image(3, 40, 40))
    after = write_raster(tmp_path / 'b.tif', smooth_image(4, 40, 40, seed=2))
    out = tmp_path / 'o.tif'
    predict_scene(
        checkpoints('change'),
        [before, after],
        out,
        bands='1,2,3',
        tile=32,
        progress=False,
    )
    assert out.exists()


@pytest.mark.parametrize(
    ('option', 'value'),
    [
        ('--batch-size', '0'),
        ('--stride', '0'),
        ('--stride', '-32'),
        ('--chip', '-32'),
        ('--batch-size', '-1'),
        ('--chip', '0'),
    ],
)
def test_embed_integer_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    out = tmp_path / 'e.parquet'
    assert main(['embed', str(image), '-o', str(out), option, value]) == 2
    assert f'{option} {value}' in one_line_error(capsys, 'embed')
    assert not out.exists()


@FEW
@given(
    tile=st.integers(-40, 600),
    overlap=st.one_of(st.none(), st.integers(-10, 300)),
    batch=st.integers(-3, 20),
)
def test_predict_integer_options(
    checkpoints: Checkpoints, tile: int, overlap: int | None, batch: int
) -> None:
    # every combination: a result of the scene's size, or a SceneError and no file
    with tempfile.TemporaryDirectory() as folder:
        image = write_raster(Path(folder) / 'in.tif', smooth_image(3, 50, 45))
        out = Path(folder) / 'o.tif'
        valid = (
            tile >= 16 and batch >= 1 and (overlap is None or 0 <= overlap <= tile // 2)
        )
        try:
            predict_scene(
                checkpoints('fcn'),
                [image],
                out,
                tile=tile,
                overlap=overlap,
                batch_size=batch,
                progress=False,
            )
        except SceneError:
            assert not valid
            assert not out.exists()
            return
        assert valid
        with rasterio.open(out) as dst:
            assert (dst.height, dst.width) == (50, 45)


@given(st.integers(-5, 5) | st.booleans() | st.floats(-2, 2) | st.text(max_size=3))
def test_check_integer(value: object) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if ok:
        assert check_integer('--x', value, 1) == value
    else:
        with pytest.raises(SceneError, match='--x'):
            check_integer('--x', value, 1)


@given(st.lists(st.integers(-3, 300), max_size=5) | st.text(max_size=8))
def test_parse_bands(value: list[int] | str) -> None:
    items = value.split(',') if isinstance(value, str) else value
    try:
        numbers = [int(v) for v in items]
    except ValueError:
        numbers = []
    if numbers and min(numbers) >= 1:
        assert parse_bands(value) == tuple(numbers)
    else:
        with pytest.raises(SceneError, match='--bands'):
            parse_bands(value)


def test_default_overlap_fits_a_small_tile(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 100, 90))
    args = ['predict', str(checkpoints('unet')), str(image), '--device', 'cpu']
    assert main([*args, '-o', str(tmp_path / 'a.tif'), '--tile', '64']) == 0
    assert (
        main([*args, '-o', str(tmp_path / 'b.tif'), '--tile', '64', '--overlap', '64'])
        == 2
    )
    assert '--overlap 64' in one_line_error(capsys, 'predict')


# ---------------------------------------------------------------------------------------
# everyday inputs, clear errors


def test_raster_without_crs(
    tmp_path: Path,
    checkpoints: Checkpoints,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    png = tmp_path / 'photo.png'
    with rasterio.open(
        png, 'w', driver='PNG', count=3, height=50, width=40, dtype='uint8'
    ) as dst:
        dst.write(smooth_image(3, 50, 40))
    out = tmp_path / 'out.tif'
    with caplog.at_level('WARNING', logger='torchgeo_gfm'):
        predict_scene(checkpoints('fcn'), [png], out, tile=32, progress=False)
    assert 'photo.png: has no CRS' in caplog.text
    with rasterio.open(out) as dst:  # pixel space: no CRS, the raster's own grid
        assert dst.crs is None
        assert (dst.height, dst.width) == (50, 40)
        assert set(np.unique(dst.read(1))) <= {0, 1, 2, 3}
    assert main(['embed', str(png), '-o', str(tmp_path / 'e.parquet')]) == 2
    assert 'has no CRS, and embeddings are located in EPSG:4326' in one_line_error(
        capsys, 'embed'
    )


def test_all_nodata_scene(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_raster(tmp_path / 'in.tif', np.zeros((3, 70, 60), np.uint8), nodata=0)
    args = [str(image), '-o', str(tmp_path / 'o.tif')]
    assert main(['predict', str(checkpoints('fcn')), *args, '--tile', '32']) == 2
    assert 'every pixel is nodata' in one_line_error(capsys, 'predict')
    embed = ['embed', str(image), '-o', str(tmp_path / 'e.parquet')]
    weights = ['--weights', str(checkpoints('classification')), '--chip', '32']
    assert main([*embed, *weights, '--dense', str(tmp_path / 'd.tif')]) == 2
    assert 'every pixel is nodata' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


def test_truncated_raster(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = write_raster(tmp_path / 'whole.tif', smooth_image(3, 300, 200))
    data = whole.read_bytes()
    broken = tmp_path / 'broken.tif'
    broken.write_bytes(
        data[: len(data) // 2]
    )  # the header is there, later rows are not
    whole.unlink()
    out = tmp_path / 'o.tif'
    args = ['predict', str(checkpoints('fcn')), str(broken), '-o', str(out)]
    assert main([*args, '--tile', '64', '--overlap', '8']) == 2
    line = one_line_error(capsys, 'predict')
    assert 'broken.tif: cannot read the window at column' in line
    assert 'truncated or corrupt' in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ['broken.tif']
    weights = ['--weights', str(checkpoints('classification')), '--chip', '64']
    assert (
        main(['embed', str(broken), '-o', str(tmp_path / 'e.parquet'), *weights]) == 2
    )
    assert 'broken.tif: cannot read the window' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['broken.tif']


@pytest.mark.parametrize(
    ('device', 'message'),
    [
        ('cuda', 'CUDA GPU'),
        ('cuda:3', 'CUDA GPU'),
        ('nonsense', 'not a device name'),
        ('meta', "runs on 'cpu', 'cuda'"),
    ],
)
def test_devices_refused_before_loading(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    message: str,
) -> None:
    from torchgeo_gfm.scene import embed as embed_module
    from torchgeo_gfm.scene import predict as predict_module

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)  # as on any CPU box

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError('loaded before the device was checked')

    monkeypatch.setattr(predict_module, 'load_predictor', never)
    monkeypatch.setattr(embed_module, 'load_backbone_for_embedding', never)
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    out = str(tmp_path / 'o.tif')
    assert (
        main(
            [
                'predict',
                str(checkpoints('fcn')),
                str(image),
                '-o',
                out,
                '--device',
                device,
            ]
        )
        == 2
    )
    assert message in one_line_error(capsys, 'predict')
    assert (
        main(
            ['embed', str(image), '-o', str(tmp_path / 'e.parquet'), '--device', device]
        )
        == 2
    )
    assert message in one_line_error(capsys, 'embed')
    with pytest.raises(SceneError, match=message):
        check_device(device)
    assert check_device('cpu') == torch.device('cpu')


def test_tile_larger_than_the_scene(tmp_path: Path, checkpoints: Checkpoints) -> None:
    # the case: a 100 x 90 scene with --tile 32768 (12 GiB if not capped)
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 100, 90))
    out = tmp_path / 'o.tif'
    result = predict_scene(
        checkpoints('unet'), [image], out, tile=32768, batch_size=64, progress=False
    )
    assert result.stats.tiles == 1
    with rasterio.open(out) as dst:
        assert (dst.height, dst.width) == (100, 90)
    labels = tmp_path / 'labels.tif'
    predict_scene(
        checkpoints('classification'), [image], labels, tile=32768, progress=False
    )
    with rasterio.open(
        labels
    ) as dst:  # one chip, capped to 128 px: it covers the scene
        assert (dst.height, dst.width) == (1, 1)
        assert dst.transform.a == 1280.0
    rows = embed_scene(
        [image], tmp_path / 'e.parquet', backbone=tiny(), chip=32768, progress=False
    )
    assert rows.rows == 1


@FEW
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    tile=st.sampled_from([32, 64, 96, 512, 32768]),
)
@pytest.mark.slow
def test_raster_shapes_against_tile_sizes(
    checkpoints: Checkpoints, height: int, width: int, tile: int
) -> None:
    # scenes smaller than the model's minimum tile too (padded, never refused)
    with tempfile.TemporaryDirectory() as folder:
        image = write_raster(Path(folder) / 'in.tif', smooth_image(3, height, width))
        out = Path(folder) / 'o.tif'
        predict_scene(checkpoints('unet'), [image], out, tile=tile, progress=False)
        with rasterio.open(out) as dst:
            assert (dst.height, dst.width) == (height, width)
            assert (dst.read(1) != 255).all()


@given(
    size=st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
    multiple=st.sampled_from([1, 8, 32]),
    tile=st.integers(16, 40000),
)
def test_cap_tile(size: tuple[int, int], multiple: int, tile: int) -> None:
    least = max(multiple, 16)
    tile = max(least, tile // multiple * multiple)
    capped = cap_tile(tile, *size, multiple, least)
    assert least <= capped <= tile
    assert capped % multiple == 0
    if capped < tile:  # the smallest allowed size that covers the scene
        assert capped >= max(size)
        assert capped - multiple < max(max(size), least)


def test_outputs_are_never_inputs(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    before = image.read_bytes()
    ckpt = str(checkpoints('fcn'))
    predict = ['predict', ckpt, str(image), '--tile', '32', '--overwrite']
    x = str(tmp_path / 'x.tif')
    for args in (['-o', str(image)], ['-o', ckpt], ['-o', x, '--vectorize', x]):
        assert main([*predict, *args]) == 2
        one_line_error(capsys, 'predict')
    embed = ['embed', str(image), '--overwrite', '--weights', ckpt]
    for args in (['-o', str(image)], ['-o', x, '--dense', x], ['-o', ckpt]):
        assert main([*embed, *args]) == 2
        one_line_error(capsys, 'embed')
    assert image.read_bytes() == before
    with pytest.raises(OutputError):
        embed_scene([image], image, backbone=tiny(), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


def test_batches_that_cannot_fit_memory(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torchgeo_gfm.scene import engine
    from torchgeo_gfm.scene import predictor as module

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 200, 200))
    args = ['predict', str(checkpoints('fcn')), str(image), '--tile', '64']
    # more tiles per batch than the grid has: capped to the grid, and it runs
    assert (
        main([*args, '-o', str(tmp_path / 'a.tif'), '--batch-size', '100000000']) == 0
    )
    # a batch whose pixels alone exceed half the memory: refused before reading
    monkeypatch.setattr(engine, '_memory', lambda: 2**20)
    assert main([*args, '-o', str(tmp_path / 'b.tif'), '--batch-size', '16']) == 2
    assert 'more than half' in one_line_error(capsys, 'predict')
    monkeypatch.undo()

    def no_memory(self: object, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: 12 GB")

    monkeypatch.setattr(module.Predictor, '__call__', no_memory)
    assert main([*args, '-o', str(tmp_path / 'c.tif')]) == 2
    assert 'out of memory' in one_line_error(capsys, 'predict')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.tif', 'in.tif']


# ---------------------------------------------------------------------------------------
# found by probing: overflow, long nodata stretches, footprints on the globe, transforms


@FEW
@given(
    std=st.floats(1e-37, 1e-25), mean=st.floats(-1e3, 1e3), probabilities=st.booleans()
)
@pytest.mark.slow
def test_overflowing_statistics_never_write_non_finite(
    checkpoints: Checkpoints, std: float, mean: float, probabilities: bool
) -> None:
    # statistics that pass the checks (finite, std a normal float) but overflow the model
    with tempfile.TemporaryDirectory() as folder:
        image = write_raster(Path(folder) / 'in.tif', smooth_image(3, 40, 40))
        for run in ('predict', 'embed'):
            out = Path(folder) / f'{run}.out'
            try:
                if run == 'predict':
                    predict_scene(
                        checkpoints('fcn'),
                        [image],
                        out,
                        tile=32,
                        mean=[mean],
                        std=[std],
                        probabilities=probabilities,
                        progress=False,
                    )
                    with rasterio.open(out) as dst:
                        values = dst.read()
                else:
                    embed_scene(
                        [image],
                        out,
                        backbone=tiny(),
                        chip=32,
                        mean=[mean],
                        std=[std],
                        progress=False,
                    )
                    values = np.stack(gpd.read_parquet(out)['embedding'].to_numpy())
            except SceneError as error:
                message = str(error)
                assert 'NaN or Inf' in message
                assert not out.exists()
                continue
            assert np.isfinite(values).all()


def test_overflow_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    ckpt = tmp_path / 'c.ckpt'

    from torchgeo.tasks import Classification

    task = Classification(model=TINY_SWIN, in_channels=3, num_classes=5)
    save_checkpoint(task, ckpt, {'mean': [0.0], 'std': [1.0]})
    args = ['--mean', '100', '--std', '1e-30', '--device', 'cpu']
    out = tmp_path / 'e.parquet'
    embed = [
        'embed',
        str(image),
        '-o',
        str(out),
        '--weights',
        str(ckpt),
        '--chip',
        '32',
    ]
    assert main([*embed, *args, '--dense', str(tmp_path / 'd.tif')]) == 2
    assert 'NaN or Inf' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c.ckpt', 'in.tif']


def test_long_nodata_stretches_are_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    # a mostly-nodata scene: batches carry at most _MOST_SKIPPED tiles (memory and time
    # stay linear in the grid), and a stop set elsewhere ends the reading at once
    import queue
    import threading

    from torchgeo_gfm.scene import engine
    from torchgeo_gfm.scene.raster import Scene
    from torchgeo_gfm.scene.tiling import TileGrid

    reads = []

    class Empty:
        def __init__(self, scene: Scene) -> None:
            pass

        def read(self, window: object) -> tuple[np.ndarray, np.ndarray]:
            reads.append(window)
            valid = np.zeros((32, 32), bool)
            if len(reads) % 1000 == 0:
                valid[0, 0] = True
            return np.zeros((1, 3, 32, 32), np.float32), valid

        def close(self) -> None:
            pass

    monkeypatch.setattr(engine, 'WindowReader', Empty)
    scene = Scene(('x',), (1, 2, 3), None, UTM_TRANSFORM, 3200, 3200, (False,))
    grid = TileGrid(3200, 3200, 32, 0)
    batches: queue.Queue[object] = queue.Queue()
    stop = threading.Event()
    engine._read(scene, grid, np.zeros(3, np.float32), 8, batches, stop)
    items = list(batches.queue)
    assert items[-1] is engine._DONE
    sizes = [len(item[0]) for item in items[:-1]]  # type: ignore[index]
    assert sum(sizes) == len(grid) == 10_000
    assert max(sizes) <= engine._MOST_SKIPPED
    reads.clear()
    stop.set()
    engine._read(scene, grid, np.zeros(3, np.float32), 8, queue.Queue(), stop)
    assert not reads


def lonlat_raster(
    folder: Path, name: str, crs: object, transform: Affine, size: int = 64
) -> Path:
    return write_raster(
        folder / name, smooth_image(3, size, size), crs=crs, transform=transform
    )


@FEW
@given(
    west=st.floats(150.0, 200.0),
    north=st.floats(-80.0, 89.0),
    pixel=st.floats(0.001, 0.5),
)
def test_footprints_in_lon_lat(west: float, north: float, pixel: float) -> None:
    # geographic rasters near and across the antimeridian (also past 180): every
    # geometry lies in [-180, 180] x [-90, 90], split at 180, and covers the chip
    from rasterio.crs import CRS

    height = 64 * pixel
    north = max(north, -90 + height)
    with tempfile.TemporaryDirectory() as folder:
        image = lonlat_raster(
            Path(folder),
            'in.tif',
            CRS.from_epsg(4326),
            from_origin(west, north, pixel, pixel),
        )
        out = Path(folder) / 'e.parquet'
        embed_scene([image], out, backbone=tiny(), chip=32, progress=False)
        frame = gpd.read_parquet(out)
    assert len(frame) == 4
    for geometry in frame.geometry:
        assert geometry.is_valid
        left, bottom, right, top = geometry.bounds
        assert -180 <= left <= right <= 180
        assert -90 <= bottom <= top <= 90
        for part in getattr(geometry, 'geoms', [geometry]):
            assert part.bounds[2] - part.bounds[0] <= 32 * pixel + 1e-9
        assert geometry.area == pytest.approx((32 * pixel) ** 2, rel=1e-6)


def test_footprints_across_the_antimeridian_in_utm(tmp_path: Path) -> None:
    from rasterio.crs import CRS

    # UTM zone 60N, 150 to 214 km east of its central meridian (177 E): 179.3 E to 179.8 W
    image = lonlat_raster(
        tmp_path,
        'in.tif',
        CRS.from_epsg(32660),
        from_origin(650_000.0, 6_000_000.0, 1000.0, 1000.0),
    )
    out = tmp_path / 'e.parquet'
    embed_scene([image], out, backbone=tiny(), chip=32, progress=False)
    frame = gpd.read_parquet(out)
    kinds = set(frame.geometry.geom_type)
    assert 'MultiPolygon' in kinds  # the chips across 180 are split there
    for geometry in frame.geometry:
        for part in getattr(geometry, 'geoms', [geometry]):
            assert part.bounds[2] - part.bounds[0] < 5
    native = frame.to_crs(32660)  # back in UTM: the chips still tile the scene
    assert native.union_all().area == pytest.approx(64_000.0**2, rel=1e-4)


def test_footprint_holding_a_pole(tmp_path: Path) -> None:
    from rasterio.crs import CRS
    from shapely.geometry import Point

    # NSIDC polar stereographic north: the pole is the point (0, 0)
    image = lonlat_raster(
        tmp_path, 'in.tif', CRS.from_epsg(3413), from_origin(-100, 100, 3, 3)
    )
    out = tmp_path / 'e.parquet'
    embed_scene([image], out, backbone=tiny(), chip=32, progress=False)
    frame = gpd.read_parquet(out)
    holding = [g for g in frame.geometry if g.intersects(Point(0, 90))]
    assert holding
    for geometry in frame.geometry:
        left, bottom, right, _ = geometry.bounds
        assert -180 <= left <= right <= 180
        assert bottom >= 89.99


@pytest.mark.parametrize(
    ('crs', 'transform', 'message'),
    [
        (4326, from_origin(0, 95.0, 0.5, 0.5), 'beyond the poles'),
        (4326, from_origin(-400, 200, 10, 10), 'beyond the poles'),
        ('LOCAL_CS["arbitrary",UNIT["metre",1]]', UTM_TRANSFORM, 'EPSG:4326'),
    ],
)
def test_footprints_not_on_the_globe(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    crs: object,
    transform: Affine,
    message: str,
) -> None:
    from rasterio.crs import CRS

    image = lonlat_raster(tmp_path, 'in.tif', CRS.from_user_input(crs), transform)
    out = tmp_path / 'e.parquet'
    assert main(['embed', str(image), '-o', str(out), '--chip', '32']) == 2
    assert message in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


@pytest.mark.parametrize(
    'transform', [Affine(0, 0, 583_000, 0, 0, 4_507_000), Affine(10, 20, 0, 5, 10, 0)]
)
def test_degenerate_transform(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    transform: Affine,
) -> None:
    image = write_raster(
        tmp_path / 'in.tif', smooth_image(3, 40, 40), transform=transform
    )
    out = str(tmp_path / 'o.tif')
    assert main(['predict', str(checkpoints('fcn')), str(image), '-o', out]) == 2
    assert 'degenerate' in one_line_error(capsys, 'predict')
    assert main(['embed', str(image), '-o', str(tmp_path / 'e.parquet')]) == 2
    assert 'degenerate' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


def test_interrupt_is_one_line_and_leaves_nothing(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torchgeo_gfm.scene import predictor as module

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))

    def interrupted(*args: object) -> torch.Tensor:
        raise KeyboardInterrupt

    monkeypatch.setattr(module.Predictor, '__call__', interrupted)
    args = [str(image), '-o', str(tmp_path / 'o.tif'), '--device', 'cpu']
    assert main(['predict', str(checkpoints('fcn')), *args, '--tile', '32']) == 130
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert 'torchgeo-gfm predict: interrupted; nothing was written' in err
    monkeypatch.setattr(Backbone, 'features', interrupted)
    embed = ['embed', str(image), '-o', str(tmp_path / 'e.parquet'), '--chip', '32']
    dense = ['--dense', str(tmp_path / 'd.tif')]
    weights = ['--weights', str(checkpoints('classification'))]
    assert main([*embed, *weights, *dense, '--device', 'cpu']) == 130
    assert 'embed: interrupted' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


@pytest.mark.slow
def test_mostly_nodata_output_stays_small(tmp_path: Path) -> None:
    from torchgeo_gfm.scene.writers import COGWriter

    profile = {
        'count': 1,
        'dtype': 'uint8',
        'nodata': 255,
        'crs': 'EPSG:32618',
        'transform': UTM_TRANSFORM,
        'height': 40_000,
        'width': 40_000,
    }
    out = tmp_path / 'o.tif'
    writer = COGWriter(out, profile)
    writer.write(rasterio.windows.Window(0, 0, 300, 300), np.full((1, 300, 300), 255))
    writer.write(rasterio.windows.Window(0, 0, 10, 10), np.ones((1, 10, 10), np.uint8))
    assert writer.tmp.stat().st_blocks * 512 < 2**20  # not 1.6 GB of nodata
    writer.finish()
    with rasterio.open(out) as dst:
        corner = dst.read(1, window=rasterio.windows.Window(0, 0, 20, 20))
        far = dst.read(1, window=rasterio.windows.Window(30_000, 30_000, 5, 5))
    assert (corner[:10, :10] == 1).all()
    assert (corner[10:] == 255).all()
    assert (far == 255).all()


@pytest.mark.parametrize('where', ['write', 'finish'])
def test_failed_writes_are_one_line(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    from rasterio.errors import RasterioIOError

    def full(*args: object, **kwargs: object) -> None:
        raise RasterioIOError('No space left on device')

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    target = rasterio.io.DatasetWriter if where == 'write' else rasterio.shutil
    monkeypatch.setattr(target, 'write' if where == 'write' else 'copy', full)
    args = [str(image), '-o', str(tmp_path / 'o.tif'), '--device', 'cpu']
    assert main(['predict', str(checkpoints('fcn')), *args, '--tile', '32']) == 2
    line = one_line_error(capsys, 'predict')
    assert 'o.tif: cannot write it (No space left on device)' in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


def test_failed_table_writes_are_one_line(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    import pyarrow.parquet as pq

    write_table = pq.write_table

    def full(*args: object, **kwargs: object) -> None:
        if isinstance(args[1], io.BytesIO):  # geopandas' own, in memory
            return write_table(*args, **kwargs)  # type: ignore[arg-type]
        raise OSError(28, 'No space left on device')

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    monkeypatch.setattr(pq, 'write_table', full)
    monkeypatch.setattr(gpd.GeoDataFrame, 'to_file', full)
    ckpt = str(checkpoints('classification'))
    out = ['-o', str(tmp_path / 'e.parquet'), '--device', 'cpu', '--chip', '32']
    assert main(['embed', str(image), *out, '--weights', ckpt]) == 2
    assert 'No space left on device' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']
    vectors = ['--vectorize', str(tmp_path / 'v.gpkg'), '--tile', '32']
    args = [str(image), '-o', str(tmp_path / 'o.tif'), *vectors, '--device', 'cpu']
    assert main(['predict', str(checkpoints('fcn')), *args]) == 2
    assert 'v.gpkg: cannot write it' in one_line_error(capsys, 'predict')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif', 'o.tif']


def test_raster_with_ground_control_points_only(
    tmp_path: Path,
    checkpoints: Checkpoints,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rasterio.control import GroundControlPoint

    gcps = [
        GroundControlPoint(0, 0, 583_000, 4_507_000),
        GroundControlPoint(0, 40, 583_400, 4_507_000),
        GroundControlPoint(40, 0, 583_000, 4_506_600),
    ]
    image = tmp_path / 'gcps.tif'
    with rasterio.open(
        image, 'w', driver='GTiff', count=3, height=40, width=40, dtype='uint8',
        gcps=gcps, crs='EPSG:32618',
    ) as dst:  # fmt: skip
        dst.write(smooth_image(3, 40, 40))
    with caplog.at_level('WARNING', logger='torchgeo_gfm'):
        predict_scene(checkpoints('fcn'), [image], tmp_path / 'o.tif', progress=False)
    assert 'ground control points only' in caplog.text
    out = str(tmp_path / 'e.parquet')
    assert main(['embed', str(image), '-o', out]) == 2
    assert 'gdalwarp' in one_line_error(capsys, 'embed')


def test_complex_rasters_are_refused(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    # reading complex SAR as float32 would keep the real part only, silently
    data = smooth_image(3, 40, 40).astype(np.complex64) * (1 + 1j)
    image = write_raster(tmp_path / 'slc.tif', data)
    out = str(tmp_path / 'o.tif')
    assert main(['predict', str(checkpoints('fcn')), str(image), '-o', out]) == 2
    assert 'complex' in one_line_error(capsys, 'predict')
    assert main(['embed', str(image), '-o', str(tmp_path / 'e.parquet')]) == 2
    assert 'complex' in one_line_error(capsys, 'embed')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['slc.tif']


@pytest.mark.parametrize(
    ('command', 'option', 'name'),
    [
        ('predict', '-o', 'o.gpkg'),
        ('predict', '-o', 'o.parquet'),
        ('predict', '-o', 'o.PNG'),
        ('predict', '--vectorize', 'v.shp'),
        ('predict', '--vectorize', 'v.tif'),
        ('predict', '--vectorize', 'v.geojson'),
        ('embed', '-o', 'e.tif'),
        ('embed', '-o', 'e.gpkg'),
        ('embed', '-o', 'e.csv'),
        ('embed', '--dense', 'd.parquet'),
        ('embed', '--dense', 'd.jpg'),
    ],
)
def test_output_extensions_of_other_formats(
    tmp_path: Path,
    checkpoints: Checkpoints,
    capsys: pytest.CaptureFixture[str],
    command: str,
    option: str,
    name: str,
) -> None:
    # a COG named .gpkg, a GeoPackage named .shp: refused, not written under a wrong name
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    if command == 'predict':
        args = ['predict', str(checkpoints('fcn')), str(image), '-o', 'o.tif']
    else:
        args = ['embed', str(image), '-o', 'e.parquet']
    path = str(tmp_path / name)
    args = [path if a in ('o.tif', 'e.parquet') and option == '-o' else a for a in args]
    args = [a if a not in ('o.tif', 'e.parquet') else str(tmp_path / a) for a in args]
    if option != '-o':
        args += [option, path]
    assert main(args) == 2
    assert f'{option} {path}: its extension' in one_line_error(capsys, command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']


def test_embed_rasters_of_other_data_types(tmp_path: Path) -> None:
    # one set of statistics for uint8 and uint16 rasters: refused, not silently off-scale
    a = write_raster(tmp_path / 'a.tif', smooth_image(3, 40, 40))
    b = write_raster(tmp_path / 'b.tif', smooth_image(3, 40, 40).astype(np.uint16) * 40)
    out = tmp_path / 'e.parquet'
    with pytest.raises(SceneError, match='uint16 values'):
        embed_scene([a, b], out, backbone=tiny(), chip=32, progress=False)
    assert not out.exists()
    embed_scene([a, a], out, backbone=tiny(), chip=32, progress=False)
    assert out.exists()
