# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Prediction over whole scenes: a fine-tuned checkpoint, tiled, to a Cloud-Optimized GeoTIFF.

Per-pixel tasks (segmentation, change detection, super-resolution) run on overlapping
tiles blended without seams (:mod:`.tiling`); classification runs on non-overlapping
chips and writes one pixel per chip. The output has the input's CRS; per-pixel outputs
its transform and size too (super-resolution: ``scale`` times the size, the transform
scaled to match; classification: one pixel per chip). A raster without a CRS gives an
output in its pixel space (its transform, no CRS), with a warning.

Tiles (and classification chips) larger than the scene are capped to the smallest size
the model takes that covers it: the output is the same, without the padding (for
classification the one output pixel is the capped chip). The model runs in fp32 unless
``precision`` asks for bf16 (``'bf16'``, or ``'auto'`` where the hardware has it); the
precision used is logged, printed and written into the COG's metadata
(``TORCHGEO_GFM_PRECISION``).

A checkpoint that records the sensor of its inputs (multispectral tasks, 0.2) is
normalised with the sensor's statistics, and the raster's bands (after ``bands``) must be
the sensor's, in number; ``sensor`` gives one for a checkpoint that records none (and
must agree with a recorded one). The sensor's name is written as ``TORCHGEO_GFM_SENSOR``.

An exported model (``.onnx``, ``.pt2``: :func:`torchgeo_gfm.export.export_model`) runs
the same way, with the tile size, normalisation and fp32 fixed in the file
(:mod:`.exported`): its tile is the default and the only one taken (never capped: a
smaller scene is padded), and ``TORCHGEO_GFM_EXPORTED`` records the file (JSON: path,
backend, sha256, the checkpoint it came from).

.. versionadded:: 0.1
"""

import functools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from rasterio.transform import Affine
from rasterio.windows import Window

from .engine import (
    RunStats,
    Tile,
    check_device,
    check_integer,
    check_precision,
    resolve_precision,
    run_tiles,
)
from .errors import SceneError
from .exported import (
    ExportedModel,
    check_options,
    exported_precision,
    is_exported_model,
    load_model,
    provenance,
)
from .normalisation import SensorLike, check_sensor_bands, raster_bands
from .raster import Scene, open_scene, parse_bands
from .tiling import Blender, TileGrid, cap_tile, chip_grid, grid_shape
from .writers import COGWriter, check_scene_outputs, write_polygons

if TYPE_CHECKING:
    from .predictor import Predictor

    #: what predicts: a rebuilt checkpoint or an exported file
    Model = Predictor | ExportedModel

logger = logging.getLogger(__name__)

#: the overlap of tiles when none is given (at most half the tile)
DEFAULT_OVERLAP = 64
#: the tile of a checkpoint when none is given (an exported file's is its own)
DEFAULT_TILE = 512


@dataclass
class PredictResult:
    """What :func:`predict_scene` wrote.

    Attributes:
        output: the COG.
        vectors: the GeoPackage, if asked for.
        stats: tiles, skipped tiles, time.
        normalisation: where mean/std came from.
        precision: what the model ran in, 'fp32' or 'bf16'.

    .. versionadded:: 0.1
    """

    output: Path
    vectors: Path | None
    stats: RunStats
    normalisation: str
    precision: str = 'fp32'


def predict_scene(
    checkpoint: 'str | os.PathLike[str] | Predictor | ExportedModel',
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    bands: Sequence[int] | str | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    device: str = 'cpu',
    probabilities: bool = False,
    vectorize: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: str | None = None,
    progress: bool = True,
    precision: str = 'fp32',
    sensor: SensorLike | None = None,
) -> PredictResult:
    """Apply a fine-tuned model to whole scenes; write a Cloud-Optimized GeoTIFF.

    Args:
        checkpoint: a Lightning checkpoint, or an exported model (``.onnx``, ``.pt2``);
            or a :class:`Predictor` or :class:`~torchgeo_gfm.export.ExportedModel`
            already loaded.
        inputs: one raster (two co-registered ones for change detection).
        output: the COG to write.
        bands: 1-based bands to read ('3,2,1'), all by default.
        tile: tile size in input pixels (chip size for classification); default 512,
            capped to the scene (see above); an exported model's own (the only one it
            takes) by default.
        overlap: pixels shared by neighbouring tiles (ignored by classification);
            default 64, or half the tile if that is less.
        batch_size: tiles per model call.
        device: 'cpu', 'cuda', 'cuda:N' or 'auto' (a GPU if there is one).
        probabilities: write per-class probabilities (float32) instead of classes.
        vectorize: also write the classes as polygons to this GeoPackage.
        overwrite: replace existing outputs (never an input, the checkpoint, or the
            other output).
        mean: per-band mean, overriding the checkpoint's normalisation (not for an
            exported model, whose graph normalises; nor are *std*, *normalize* and
            *sensor*).
        std: per-band std, with *mean*.
        normalize: a named normalisation instead ('imagenet', 'unit', 'none').
        progress: show a progress bar.
        precision: 'fp32' (default: the same output on every machine), 'bf16' (forced
            bf16 autocast) or 'auto' (bf16 where the hardware computes it natively);
            an exported model runs fp32 ('bf16' is refused).
        sensor: the sensor of the model's inputs (a shipped name such as ``'s2'``, a
            YAML file, a dict or a Sensor) for a checkpoint that records none.

    Returns:
        What was written.

    Raises:
        SceneError: for bad input, before anything is written: among others a raster
            whose band count is not the sensor's (or the exported model's), a *sensor*
            that contradicts the recorded one; for an exported model
            (:class:`~torchgeo_gfm.export.ExportError`) a backbone, another tile, or
            normalisation options.
        OutputError: for an output that must not or cannot be written.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor*; a recorded sensor normalises and checks the bands. Exported
       models; *tile* defaults to None (512, or the exported model's).
    """
    _check_numbers(tile, overlap, batch_size)
    mode = check_precision(precision)
    out, vectors = check_scene_outputs(
        (output, '-o', 'cog'),
        (vectorize, '--vectorize', 'geopackage'),
        protect=[*inputs, *_files(checkpoint)],
        overwrite=overwrite,
    )
    if vectors and probabilities:
        raise SceneError('--vectorize writes classes: drop --probabilities to use it')
    target = check_device(device)
    if is_exported_model(checkpoint):
        where = os.fspath(_files(checkpoint)[0])
        check_options(where, mean=mean, std=std, normalize=normalize, sensor=sensor)
        used: str = exported_precision(mode, where)
        exported = load_model(checkpoint, 'task', device, target)
        predictor: Model = exported
        target = exported.device
    else:
        predictor = _checkpoint(checkpoint, mean, std, normalize, sensor)
        used = resolve_precision(mode, target)
        predictor.to(target)
    if vectors and predictor.kind == 'super_resolution':
        raise SceneError('--vectorize needs classes; a super-resolution model has none')
    if len(inputs) != predictor.images:
        raise SceneError(
            f'{[os.fspath(p) for p in inputs]}: the {predictor.kind} model takes '
            f'{predictor.images} raster(s) (change detection: before and after)'
        )
    chosen = parse_bands(bands)
    _check_bands(predictor, inputs, chosen)
    scene = open_scene(inputs, chosen, predictor.in_channels)
    tile, overlap = _tiling(predictor, scene, tile, overlap)
    tags = _tags(checkpoint, predictor, used)
    with _Output(out, scene, predictor, tile, probabilities, tags) as sink:
        stats = run_tiles(
            scene,
            sink.grid(overlap),
            predictor,
            sink.consume,
            predictor.mean.cpu().numpy(),
            batch_size,
            target,
            progress,
            desc=f'predict {out.name}',
            precision=used,
        )
    if vectors:
        write_polygons(out, vectors)
    return PredictResult(out, vectors, stats, predictor.source, used)


def _files(checkpoint: object) -> list[str | os.PathLike[str]]:
    """The model's file, protected from being overwritten by an output."""
    if isinstance(checkpoint, str | os.PathLike):
        return [checkpoint]
    return [checkpoint.path] if isinstance(checkpoint, ExportedModel) else []


def _checkpoint(
    checkpoint: 'str | os.PathLike[str] | Model',
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    normalize: str | None,
    sensor: SensorLike | None,
) -> 'Predictor':
    """The checkpoint's task, rebuilt (or the one given)."""
    if isinstance(checkpoint, str | os.PathLike):
        return load_predictor(checkpoint, mean, std, normalize, sensor=sensor)
    assert not isinstance(checkpoint, ExportedModel)  # dispatched before
    if sensor is not None:
        raise SceneError('sensor: give it to load_predictor, which normalises with it')
    return checkpoint


def _check_bands(
    predictor: 'Model', inputs: Sequence[str | os.PathLike[str]], chosen: Any
) -> None:
    """The sensor's or exported model's band check, before the generic one's message."""
    if isinstance(predictor, ExportedModel):
        check = predictor.check_bands
    elif predictor.sensor is not None:
        check = functools.partial(check_sensor_bands, predictor.sensor)
    else:
        return  # open_scene checks the count
    read = open_scene(inputs, chosen, None)
    check(len(read.bands), raster_bands(read.paths[0], read.bands, bool(chosen)))


def load_predictor(
    path: str | os.PathLike[str], *args: Any, **kwargs: Any
) -> 'Predictor':
    """:func:`torchgeo_gfm.scene.load_predictor`, imported on first use.

    Rebuilding a checkpoint's task needs Lightning, TorchGeo and timm; this module does
    not (an exported model runs without them).

    .. versionadded:: 0.2
    """
    from . import predictor

    return predictor.load_predictor(path, *args, **kwargs)


def _check_numbers(tile: int | None, overlap: int | None, batch_size: int) -> None:
    """Refuse sizes that are not integers in range, before anything is loaded."""
    if tile is not None:
        check_integer('--tile', tile, 1)
    if overlap is not None:
        check_integer('--overlap', overlap, 0)
    check_integer('--batch-size', batch_size, 1)


def _tiling(
    predictor: 'Model', scene: Scene, tile: int | None, overlap: int | None
) -> tuple[int, int]:
    """The tile (capped to the scene) and overlap to use; refuse what the model cannot."""
    if isinstance(predictor, ExportedModel):
        # the one size the graph takes: a smaller scene is padded by the engine
        tile = predictor.tile if tile is None else tile
        predictor.check_tile(tile)
        return tile, _overlap(predictor, tile, overlap)
    tile = DEFAULT_TILE if tile is None else tile
    m = predictor.multiple
    least = max(m, 16)
    if tile < least or tile % m:
        raise SceneError(
            f'--tile {tile}: the model takes tiles that are multiples of {m} pixels, at least '
            f'{least}; pass e.g. --tile {least * max(1, round(tile / least))}'
        )
    chosen = _overlap(predictor, tile, overlap)  # checked against the tile asked for
    capped = cap_tile(tile, scene.height, scene.width, m, least)
    if capped < tile:
        what = 'chip' if predictor.kind == 'classification' else 'tile'
        logger.info(
            '--tile %d: larger than the scene (%d x %d px); one %d px %s covers it',
            tile,
            scene.width,
            scene.height,
            capped,
            what,
        )
    return capped, min(chosen, capped // 2)


def _overlap(predictor: 'Model', tile: int, overlap: int | None) -> int:
    """The overlap of *tile*: given (at most half the tile), else the default."""
    tiled = predictor.kind != 'classification'
    if tiled and overlap is not None and overlap > tile // 2:
        raise SceneError(
            f'--overlap {overlap}: expected 0 to half the tile ({tile // 2})'
        )
    chosen = DEFAULT_OVERLAP if overlap is None else overlap
    return min(chosen, tile // 2)


def _tags(
    checkpoint: 'str | os.PathLike[str] | Model', predictor: 'Model', used: str
) -> dict[str, str]:
    """How the output was computed, for its metadata."""
    tags = {
        'TORCHGEO_GFM_PRECISION': used,
        'TORCHGEO_GFM_NORMALISATION': predictor.source,
    }
    if predictor.sensor is not None:
        tags['TORCHGEO_GFM_SENSOR'] = predictor.sensor.name
    if isinstance(predictor, ExportedModel):
        tags['TORCHGEO_GFM_EXPORTED'] = json.dumps(provenance(predictor))
    elif isinstance(checkpoint, str | os.PathLike):
        tags['TORCHGEO_GFM_CHECKPOINT'] = os.fspath(checkpoint)
    return tags


class _Output:
    """The output raster of one run: its grid, encoding and writer."""

    def __init__(
        self,
        out: Path,
        scene: Scene,
        predictor: 'Model',
        tile: int,
        probabilities: bool,
        tags: dict[str, str],
    ) -> None:
        self.out, self.scene, self.p, self.tile = out, scene, predictor, tile
        self.tags = tags
        self.probabilities = probabilities or predictor.kind == 'super_resolution'
        self.dtype, self.nodata, self.count = _encoding(predictor, self.probabilities)
        self.blender: Blender | None = None

    def __enter__(self) -> Self:
        s, p = self.scene, self.p
        if p.kind == 'classification':
            height, width = (
                grid_shape(s.height, self.tile),
                grid_shape(s.width, self.tile),
            )
            transform = s.transform @ Affine.scale(self.tile)
        else:
            height, width = s.height * p.scale, s.width * p.scale
            transform = s.transform @ Affine.scale(1 / p.scale)
        profile = {
            'count': self.count,
            'dtype': self.dtype,
            'nodata': self.nodata,
            'crs': s.crs,
            'transform': transform,
            'height': height,
            'width': width,
        }
        resampling = 'average' if self.probabilities else 'nearest'
        self.writer = COGWriter(self.out, profile, resampling, tags=self.tags)
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.writer.finish()
        else:
            self.writer.abort()

    def grid(self, overlap: int) -> TileGrid:
        s = self.scene
        if self.p.kind == 'classification':
            return chip_grid(s.height, s.width, self.tile, self.tile)
        self.blender = Blender(
            TileGrid(s.height, s.width, self.tile, overlap),
            self.p.outputs,
            self.p.scale,
        )
        return self.blender.grid

    def consume(self, tile: Tile, result: np.ndarray | None) -> None:
        i, j, window, valid = tile
        if self.blender is None:  # classification: one pixel per chip
            probs = np.zeros(self.p.outputs, np.float32) if result is None else result
            pixel = self.encode(probs[:, None, None], np.array([[result is not None]]))
            self.writer.write(Window(j, i, 1, 1), pixel)
            return
        k, h, w = self.p.scale, int(window.height), int(window.width)
        if result is None:
            result = np.zeros((self.p.outputs, h * k, w * k), np.float32)
        result = result[:, : h * k, : w * k]
        valid = valid.repeat(k, 0).repeat(k, 1) if k > 1 else valid
        for cell, values, ok in self.blender.add(window, result, valid):
            self.writer.write(cell, self.encode(values, ok))

    def encode(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Probabilities ``[K, h, w]`` -> the output's bands, nodata where not *valid*."""
        if self.probabilities:
            encoded = values.astype(np.float32)
        elif self.p.mode == 'multiclass':
            encoded = values.argmax(0)[None].astype(self.dtype)
        else:  # binary, multilabel
            encoded = (values >= 0.5).astype(self.dtype)
        encoded[:, ~valid] = self.nodata
        return encoded


def _encoding(predictor: 'Model', probabilities: bool) -> tuple[str, Any, int]:
    """(dtype, nodata, bands) of the output."""
    if probabilities:
        return 'float32', float('nan'), predictor.outputs
    bands = predictor.outputs if predictor.mode == 'multilabel' else 1
    if predictor.mode == 'multiclass' and predictor.outputs > 255:
        return 'uint16', 65535, bands
    return 'uint8', 255, bands
