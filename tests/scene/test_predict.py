# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from tests.scene.helpers import (
    UTM,
    UTM_TRANSFORM,
    WGS84,
    copy_band_checkpoint,
    save_checkpoint,
    smooth_image,
    write_raster,
)
from torchgeo_gfm.cli import main
from torchgeo_gfm.outputs import OutputError
from torchgeo_gfm.scene import SceneError, load_predictor, predict_scene, write_polygons

Checkpoints = Callable[[str], Path]


def test_georeferencing_and_cog(tmp_path: Path, checkpoints: Checkpoints) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 301, 277))
    out = tmp_path / 'out.tif'
    result = predict_scene(
        checkpoints('unet'), [image], out, tile=64, overlap=16, progress=False
    )
    assert result.normalisation.startswith(
        'torchgeo_gfm.datamodules.WHUBuildingDataModule'
    )
    with rasterio.open(out) as dst, rasterio.open(image) as src:
        assert dst.crs == src.crs == UTM
        assert dst.transform == src.transform
        assert (dst.height, dst.width) == (301, 277)
        assert dst.dtypes == ('uint8',)
        assert dst.nodata == 255
        assert dst.profile['tiled']
        assert dst.compression.value == 'DEFLATE'
        assert dst.overviews(1)  # larger than one 256 px block
        assert set(np.unique(dst.read(1))) <= {0, 1, 2}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []


def test_tiled_equals_whole_image(tmp_path: Path, checkpoints: Checkpoints) -> None:
    # FCN: five 3x3 convs, receptive field radius 5 <= overlap / 4
    data = smooth_image(3, 173, 150)
    image = write_raster(tmp_path / 'in.tif', data)
    out = tmp_path / 'p.tif'
    predict_scene(
        checkpoints('fcn'),
        [image],
        out,
        tile=64,
        overlap=24,
        batch_size=3,
        probabilities=True,
        progress=False,
    )
    predictor = load_predictor(checkpoints('fcn'))
    whole = predictor(torch.from_numpy(data.astype(np.float32))[None, None])[0].numpy()
    with rasterio.open(out) as dst:
        tiled = dst.read()
    assert tiled.dtype == np.float32
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() <= 1e-4


def test_nodata_holes_and_skipped_tiles(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    data = smooth_image(3, 200, 200)
    data[:, :100, :100] = 0  # a whole tile of nodata
    data[:, 150:160, 20:30] = 0  # a hole
    image = write_raster(tmp_path / 'in.tif', data, nodata=0)
    out = tmp_path / 'out.tif'
    result = predict_scene(
        checkpoints('unet'), [image], out, tile=64, overlap=16, progress=False
    )
    assert result.stats.skipped >= 1
    with rasterio.open(out) as dst:
        classes = dst.read(1)
    assert (classes[:100, :100] == 255).all()
    assert (classes[150:160, 20:30] == 255).all()
    assert (classes[100:, 100:] != 255).all()


def test_multispectral_binary_probabilities(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    data = smooth_image(13, 90, 70).astype(np.uint16) * 40
    image = write_raster(
        tmp_path / 'in.tif', data, crs=WGS84, transform=from_origin(-74, 41, 1e-4, 1e-4)
    )
    out = tmp_path / 'p.tif'
    predict_scene(
        checkpoints('binary13'),
        [image],
        out,
        tile=32,
        overlap=8,
        probabilities=True,
        normalize='unit',
        progress=False,
    )
    with rasterio.open(out) as dst:
        assert dst.count == 1
        assert dst.crs == WGS84
        assert (dst.width, dst.height) == (70, 90)
        p = dst.read(1)
    assert ((p >= 0) & (p <= 1)).all()


def test_change_detection_shifted_grid(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    before = write_raster(tmp_path / 'a.tif', smooth_image(3, 130, 120))
    # the second date: another grid (shifted by 35 m, 5 m pixels) over the same place
    shifted = from_origin(UTM_TRANSFORM.c - 35, UTM_TRANSFORM.f + 35, 5.0, 5.0)
    after = write_raster(
        tmp_path / 'b.tif', smooth_image(3, 280, 260, seed=1), transform=shifted
    )
    out = tmp_path / 'change.tif'
    predict_scene(
        checkpoints('change'), [before, after], out, tile=64, overlap=16, progress=False
    )
    with rasterio.open(out) as dst:
        assert dst.transform == UTM_TRANSFORM
        assert (dst.height, dst.width) == (130, 120)
        assert set(np.unique(dst.read(1))) <= {0, 1}


def test_classification_at_chip_resolution(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 100, 70))
    out = tmp_path / 'labels.tif'
    predict_scene(checkpoints('classification'), [image], out, tile=32, progress=False)
    with rasterio.open(out) as dst:
        assert (dst.height, dst.width) == (4, 3)
        assert dst.transform.a == 320.0
        assert dst.transform.c == UTM_TRANSFORM.c
        assert dst.read(1).max() < 5
    multi = tmp_path / 'multi.tif'
    predict_scene(checkpoints('multilabel'), [image], multi, tile=32, progress=False)
    with rasterio.open(multi) as dst:
        assert dst.count == 4
        assert set(np.unique(dst.read())) <= {0, 1}


def test_super_resolution_scale(tmp_path: Path, checkpoints: Checkpoints) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 70, 50))
    out = tmp_path / 'sr.tif'
    predict_scene(checkpoints('sr'), [image], out, tile=32, overlap=8, progress=False)
    with rasterio.open(out) as dst:
        assert (dst.height, dst.width, dst.count) == (140, 100, 3)
        assert dst.transform.a == 5.0
        assert dst.transform.c == UTM_TRANSFORM.c
        assert dst.dtypes[0] == 'float32'


def test_vectorize(tmp_path: Path, checkpoints: Checkpoints) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 64, 64))
    out, vectors = tmp_path / 'out.tif', tmp_path / 'out.gpkg'
    predict_scene(
        checkpoints('unet'),
        [image],
        out,
        tile=32,
        overlap=8,
        vectorize=vectors,
        progress=False,
    )
    frame = gpd.read_file(vectors)
    assert frame.crs == UTM
    assert len(frame)
    assert set(frame['class']) <= {0, 1, 2}
    assert frame.area.sum() == pytest.approx(64 * 64 * 100)


def test_more_than_255_classes_uint16(tmp_path: Path) -> None:
    # 300 classes: the model's class is band 1, so the output must reproduce it exactly
    checkpoint = copy_band_checkpoint(tmp_path / 'c300.ckpt', 300)
    y, x = np.mgrid[0:300, 0:280]
    classes = ((y + x) % 300).astype(np.uint16)  # every class 0..299, in stripes
    data = np.stack([classes, classes[::-1], classes[:, ::-1]])
    data[:, :64, :64] = 65535  # a whole tile of nodata (skipped)
    data[:, 200:210, 100:110] = 65535  # a hole
    image = write_raster(tmp_path / 'in.tif', data, nodata=65535)
    out = tmp_path / 'out.tif'
    args = ['predict', str(checkpoint), str(image), '-o', str(out), '--device', 'cpu']
    assert main([*args, '--tile', '64', '--overlap', '16']) == 0
    valid = data[0] != 65535
    with rasterio.open(out) as dst:
        assert dst.dtypes == ('uint16',)
        assert dst.nodata == 65535
        assert dst.tags(ns='IMAGE_STRUCTURE')['LAYOUT'] == 'COG'
        assert dst.tags(ns='IMAGE_STRUCTURE')['OVERVIEW_RESAMPLING'] == 'NEAREST'
        assert dst.overviews(1)
        result = dst.read(1)
    assert (result[valid] == classes[valid]).all()
    assert (result[valid] > 255).sum() == (classes[valid] > 255).sum() > 0
    assert (result[~valid] == 65535).all()


def test_vectorize_nodata(tmp_path: Path) -> None:
    # four quadrants of classes 0..3 (the model copies band 1), with two nodata areas
    checkpoint = copy_band_checkpoint(tmp_path / 'c4.ckpt', 4)
    classes = np.zeros((96, 80), np.uint8)
    classes[:48, 40:], classes[48:, :40], classes[48:, 40:] = 1, 2, 3
    data = np.stack([classes] * 3)
    holes = [Window(50, 10, 20, 20), Window(0, 60, 20, 36)]  # inside 1, on 2's edge
    for hole in holes:
        data[:, hole.toslices()[0], hole.toslices()[1]] = 255
    image = write_raster(tmp_path / 'in.tif', data, nodata=255)
    out, vectors = tmp_path / 'out.tif', tmp_path / 'out.gpkg'
    args = ['predict', str(checkpoint), str(image), '-o', str(out), '--device', 'cpu']
    assert (
        main([*args, '--tile', '32', '--overlap', '8', '--vectorize', str(vectors)])
        == 0
    )
    frame = gpd.read_file(vectors)
    assert frame.crs == UTM
    assert set(frame['class']) == {0, 1, 2, 3}  # no polygon of the nodata value
    nodata = shapely.union_all(
        [shapely.box(*window_bounds(hole, UTM_TRANSFORM)) for hole in holes]
    )
    assert frame.intersection(nodata).area.sum() == 0
    valid = data[0] != 255
    assert frame.area.sum() == pytest.approx(valid.sum() * 100)
    areas = frame.dissolve(by='class').area
    for value in range(4):
        assert areas[value] == pytest.approx(((data[0] == value) & valid).sum() * 100)
    # read in 32 px blocks: the polygons cut by block edges are merged back
    blocks = tmp_path / 'blocks.gpkg'
    write_polygons(out, blocks, block=32)
    merged = gpd.read_file(blocks).dissolve(by='class')
    assert merged.geometry.symmetric_difference(
        frame.dissolve(by='class').geometry
    ).area.max() == pytest.approx(0)


def test_cli(
    tmp_path: Path, checkpoints: Checkpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    # a 4th band that is not read (GDAL takes a 4-band uint8 raster's last for alpha)
    opaque = np.full((1, 50, 40), 255, np.uint8)
    data = np.concatenate([smooth_image(3, 50, 40), opaque])
    image = write_raster(tmp_path / 'in.tif', data)
    out = tmp_path / 'out.tif'
    args = [
        'predict',
        str(checkpoints('fcn')),
        str(image),
        '-o',
        str(out),
        '--bands',
        '3,2,1',
    ]
    assert main([*args, '--tile', '32', '--overlap', '8']) == 0
    assert 'tiles/s' in capsys.readouterr().out
    assert main([*args, '--tile', '32']) == 2  # exists
    assert 'exists; pass --overwrite' in capsys.readouterr().err
    assert main([*args, '--tile', '32', '--overlap', '8', '--overwrite']) == 0


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'bands': '1,2'}, 'the model takes 3'),
        ({'bands': '1,2,9'}, 'has 4 bands, --bands asks for band 9'),
        ({'bands': 'red'}, 'expected 1-based band numbers'),
        ({'tile': 8}, '--tile 8'),
        ({'overlap': 40, 'tile': 64}, '--overlap 40'),
    ],
)
def test_bad_arguments(
    tmp_path: Path, checkpoints: Checkpoints, kwargs: dict[str, Any], message: str
) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(4, 40, 40))
    out = tmp_path / 'out.tif'
    with pytest.raises(SceneError, match=message):
        predict_scene(
            checkpoints('unet'),
            [image],
            out,
            progress=False,
            **{'bands': '1,2,3', **kwargs},
        )
    assert list(tmp_path.iterdir()) == [image]


def test_bad_inputs(tmp_path: Path, checkpoints: Checkpoints) -> None:
    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 40, 40))
    out = tmp_path / 'out.tif'
    junk = tmp_path / 'junk.tif'
    junk.write_text('not a raster')
    with pytest.raises(SceneError, match=r'junk\.tif: cannot be read as a raster'):
        predict_scene(checkpoints('unet'), [junk], out, progress=False)
    with pytest.raises(
        SceneError, match=r'junk\.tif: cannot be read as a Lightning checkpoint'
    ):
        predict_scene(junk, [image], out, progress=False)
    weights = tmp_path / 'w.pt'
    torch.save({'conv.weight': torch.zeros(1)}, weights)
    with pytest.raises(SceneError, match='is not a Lightning checkpoint'):
        predict_scene(weights, [image], out, progress=False)
    far = write_raster(
        tmp_path / 'far.tif',
        smooth_image(3, 40, 40),
        transform=from_origin(0, 0, 10, 10),
    )
    with pytest.raises(SceneError, match='does not overlap'):
        predict_scene(checkpoints('change'), [image, far], out, progress=False)
    nocrs = write_raster(tmp_path / 'nocrs.tif', smooth_image(3, 40, 40), crs=None)
    with pytest.raises(SceneError, match='has no CRS'):
        predict_scene(checkpoints('change'), [image, nocrs], out, progress=False)
    with pytest.raises(SceneError, match='takes 2 raster'):
        predict_scene(checkpoints('change'), [image], out, progress=False)
    with pytest.raises(OutputError, match='cannot be written'):
        predict_scene(
            checkpoints('unet'), [image], tmp_path / 'no' / 'out.tif', progress=False
        )
    assert not out.exists()


def test_normalisation_unknown_is_refused(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    from torchgeo.tasks import SemanticSegmentation

    bare = save_checkpoint(
        SemanticSegmentation(model='fcn', num_classes=2, num_filters=2),
        tmp_path / 'b.ckpt',
    )
    with pytest.raises(SceneError, match='--normalize imagenet'):
        load_predictor(bare)
    predictor = load_predictor(bare, mean=[1, 2, 3], std=[4])
    assert predictor.mean.tolist() == [1, 2, 3]
    assert predictor.std.tolist() == [4, 4, 4]
    assert load_predictor(bare, normalize='imagenet').std[0] == pytest.approx(58.395)
    assert load_predictor(checkpoints('unet')).mean[0] == pytest.approx(
        123.675, rel=1e-4
    )


def test_other_task_is_refused(tmp_path: Path, checkpoints: Checkpoints) -> None:
    from torchgeo.tasks import SemanticSegmentation

    other = save_checkpoint(
        SemanticSegmentation(model='fcn', num_classes=2, num_filters=2),
        tmp_path / 'o.ckpt',
        class_path='torchgeo.tasks.ObjectDetection',
    )
    with pytest.raises(SceneError, match='ObjectDetection; the scene engine applies'):
        load_predictor(other, normalize='unit')


def test_interrupted_run_leaves_nothing(
    tmp_path: Path, checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchgeo_gfm.scene import predictor as module

    image = write_raster(tmp_path / 'in.tif', smooth_image(3, 100, 100))
    out = tmp_path / 'out.tif'

    def boom(self: object, images: torch.Tensor) -> torch.Tensor:
        raise KeyboardInterrupt

    monkeypatch.setattr(module.Predictor, '__call__', boom)
    with pytest.raises(KeyboardInterrupt):
        predict_scene(
            checkpoints('unet'), [image], out, tile=32, overlap=8, progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.tif']
