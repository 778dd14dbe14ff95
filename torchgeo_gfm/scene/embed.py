# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Embeddings of whole scenes: GFM features of every chip, with their geography.

One GeoParquet row per chip, in the schema TorchGeo's
:class:`~torchgeo.datasets.ClayEmbeddings` reads: ``geometry`` (the chip's footprint in
EPSG:4326), ``embedding`` (the chosen stage's feature map averaged over the chip's valid
pixels; stage 4, 1024-d for Swin-B, by default), and ``datetime`` when the raster's
metadata holds one; plus ``minx, miny, maxx, maxy`` and ``crs`` (the footprint in the
raster's own CRS), ``source``, and the chip's pixel offsets ``row``, ``col``. Chips that
are nodata everywhere have no row. ``dense`` also writes the feature map itself as a
multi-band COG at the stage's stride (a TorchGeo ``RasterDataset`` reads it).

How the embeddings were computed is recorded: the GeoParquet's file metadata holds key
``torchgeo_gfm`` (JSON: precision, weights, stage, chip, stride, bands, per-band
mean/std, sensor), the dense COG the same as ``TORCHGEO_GFM_*`` tags. Multispectral
weights (those that record a sensor, or any given ``sensor``) normalise with the
sensor's statistics, and every raster's band count (after ``bands``) must be the
sensor's (:mod:`.backbone`). The model runs in fp32 unless
``precision`` asks for bf16 (``'bf16'``, or ``'auto'`` where the hardware has it).
Footprints are right whatever the raster's orientation (south-up, rotated: the geometry
is the chip's outline, the bounds their min and max) and place on the globe (split at the
antimeridian, to the pole for a chip holding one: :class:`~.footprints.LonLat`). Rasters
without a CRS, with a CRS that cannot be transformed to EPSG:4326, or beyond the poles
are refused, as are rasters of another data type than the first (one set of
statistics); a chip larger than the scene is capped to the smallest multiple of 32 that
covers it.

.. versionadded:: 0.1
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.transform import Affine
from rasterio.windows import Window
from torch import Tensor

from .backbone import STAGE_STRIDE, Backbone, load_backbone_for_embedding
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
from .footprints import LonLat, footprint
from .normalisation import SensorLike, check_sensor_bands, per_band, raster_bands
from .raster import Scene, open_scene, parse_bands
from .tiling import cap_tile, chip_grid
from .writers import COGWriter, check_scene_outputs, write_geoparquet


@dataclass
class EmbedResult:
    """What :func:`embed_scene` wrote.

    Attributes:
        output: the GeoParquet file.
        dense: the feature-map COG, if asked for.
        rows: chips embedded.
        stats: per input raster.
        precision: what the model ran in, 'fp32' or 'bf16'.

    .. versionadded:: 0.1
    """

    output: Path
    dense: Path | None
    rows: int
    stats: list[RunStats]
    precision: str = 'fp32'


@dataclass(frozen=True)
class _Run:
    """The settings shared by every raster of one :func:`embed_scene` call."""

    backbone: Backbone
    chip: int
    stride: int
    stage: int
    batch_size: int
    device: torch.device
    precision: str
    progress: bool


def embed_scene(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    weights: Any = None,
    bands: Sequence[int] | str | None = None,
    chip: int = 192,
    stride: int | None = None,
    stage: int = 4,
    dense: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    device: str = 'cpu',
    overwrite: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    backbone: Backbone | None = None,
    progress: bool = True,
    precision: str = 'fp32',
    sensor: SensorLike | None = None,
) -> EmbedResult:
    """Embed every chip of one or more rasters with GFM; write GeoParquet (and a COG).

    Args:
        inputs: rasters, each in its own CRS.
        output: the GeoParquet file.
        weights: GFM weights (a ``GFM_Weights`` member, default GEOPILE_RGB_GFM; a weights
            file; or a fine-tuned checkpoint, whose backbone is used).
        bands: 1-based bands ('3,2,1'), all by default.
        chip: chip size in pixels (a multiple of 32); capped to the scene.
        stride: step between chips (default: *chip*, no overlap).
        stage: Swin stage, 1-4 (4: the final 1024-d feature of Swin-B).
        dense: also write the feature map of the (single) input as a COG here.
        batch_size: chips per model call.
        device: 'cpu', 'cuda', 'cuda:N' or 'auto' (a GPU if there is one).
        overwrite: replace existing outputs (never an input, the weights, or the other
            output).
        mean: per-band mean (default: the weights' normalisation; required for a
            raster whose band count differs from the weights' statistics).
        std: per-band std.
        backbone: a ready :class:`Backbone` instead of *weights*.
        progress: show a progress bar.
        precision: 'fp32' (default: the same output on every machine), 'bf16' (forced
            bf16 autocast) or 'auto' (bf16 where the hardware computes it natively).
        sensor: the sensor of the rasters (a shipped name such as ``'s2'``, a YAML file,
            a dict or a Sensor) for weights that record none; its statistics normalise.

    Returns:
        What was written.

    Raises:
        SceneError: for bad input, before anything is written: among others rasters
            whose band count is not the sensor's, or a *sensor* that contradicts the
            one the weights record.
        OutputError: for an output that must not or cannot be written.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor*; a recorded sensor normalises and checks the bands.
    """
    stride = chip if stride is None else stride
    _check_args(inputs, chip, stride, stage, dense, batch_size, precision)
    model = [weights] if isinstance(weights, str | os.PathLike) else []
    out, dense_out = check_scene_outputs(
        (output, '-o', 'geoparquet'),
        (dense, '--dense', 'cog'),
        protect=[*inputs, *model],
        overwrite=overwrite,
    )
    target = check_device(device)
    chosen = parse_bands(bands)
    scenes = _open_all(inputs, chosen)
    first = scenes[0]
    channels = len(first.bands)
    where = raster_bands(first.paths[0], first.bands, bool(chosen))
    if backbone is None:
        backbone = load_backbone_for_embedding(
            weights, stage, channels, mean, std, sensor=sensor, where=where
        )
    elif sensor is not None:
        raise SceneError('sensor: give it to load_backbone_for_embedding, not backbone')
    elif backbone.sensor is not None:
        check_sensor_bands(backbone.sensor, channels, where)
    for scene in scenes:
        open_scene(scene.paths, scene.bands, backbone.in_channels or channels)
    used = resolve_precision(precision, target)
    run = _Run(backbone, chip, stride, stage, batch_size, target, used, progress)
    frames, stats = [], []
    for scene in scenes:
        rows, done = _embed_one(scene, run, dense_out, mean is not None)
        frames.append(rows)
        stats.append(done)
    n = write_geoparquet(out, frames, _metadata(run, scenes[0]))
    return EmbedResult(out, dense_out, n, stats, used)


def _open_all(
    inputs: Sequence[str | os.PathLike[str]], bands: tuple[int, ...] | None
) -> list[Scene]:
    """Each raster (with a CRS), all with the same number of bands read."""
    scenes = [open_scene([p], bands, None, georeferenced=True) for p in inputs]
    for scene in scenes:
        LonLat(scene)  # located in EPSG:4326, checked before anything is computed
    first = scenes[0]
    kinds = [_dtypes(scene) for scene in scenes]
    for scene, kind in zip(scenes[1:], kinds[1:]):
        if kind != kinds[0]:
            raise SceneError(
                f'{scene.paths[0]}: holds {"/".join(kind)} values, {first.paths[0]} '
                f'{"/".join(kinds[0])}; they are normalised with the same statistics, so '
                'they must be on the same scale: convert one (gdal_translate -ot TYPE '
                '-scale ...) or embed them separately'
            )
        if len(scene.bands) != len(first.bands):
            raise SceneError(
                f'{scene.paths[0]}: has {len(scene.bands)} bands, {first.paths[0]} '
                f'{len(first.bands)}; one model embeds them all: pass --bands to read '
                'the same number from each, or embed them separately'
            )
    return scenes


def _dtypes(scene: Scene) -> list[str]:
    """The data types of the bands read from a scene's raster."""
    import rasterio

    with rasterio.open(scene.paths[0]) as src:
        return sorted({src.dtypes[b - 1] for b in scene.bands})


def _check_args(
    inputs: Sequence[Any],
    chip: int,
    stride: int,
    stage: int,
    dense: object,
    batch_size: int,
    precision: str,
) -> None:
    if not inputs:
        raise SceneError('no input raster given')
    check_integer('--chip', chip, 1)
    check_integer('--stride', stride, 1)
    check_integer('--batch-size', batch_size, 1)
    check_precision(precision)
    if stage not in STAGE_STRIDE:
        raise SceneError(f'--stage {stage}: expected 1, 2, 3 or 4 (Swin stages)')
    step = STAGE_STRIDE[4]
    if chip < step or chip % step:
        raise SceneError(
            f"--chip {chip}: expected a multiple of {step} pixels (the backbone's stride), "
            f'e.g. --chip {max(step, round(chip / step) * step)}'
        )
    if stride < 1 or stride > chip or stride % STAGE_STRIDE[stage]:
        raise SceneError(
            f'--stride {stride}: expected a multiple of {STAGE_STRIDE[stage]} between '
            f'{STAGE_STRIDE[stage]} and --chip ({chip})'
        )
    if dense and len(inputs) != 1:
        raise SceneError('--dense writes one raster: pass one input with it')


class _Chips:
    """The writer side of one raster: pooled rows, and the dense COG if asked for."""

    def __init__(
        self, scene: Scene, stage: int, dense: COGWriter | None, lonlat: LonLat
    ) -> None:
        self.scene, self.dense, self.lonlat = scene, dense, lonlat
        self.step = STAGE_STRIDE[stage]
        self.rows: list[dict[str, Any]] = []

    def consume(self, tile: Tile, features: np.ndarray | None) -> None:
        _, _, window, valid = tile
        if features is None:  # nodata everywhere: no row, nodata in the dense map
            return
        small = _downsample(valid, self.step, features.shape[1:])
        pooled = features[:, small].mean(1) if small.any() else features.mean((1, 2))
        self.rows.append(self._row(window, pooled))
        if self.dense is not None:
            self._write_dense(window, features, small)

    def _row(self, window: Window, pooled: np.ndarray) -> dict[str, Any]:
        left, bottom, right, top = footprint(self.scene.transform, window)
        return {
            'geometry': self.lonlat.polygon(window),
            'embedding': pooled.astype(np.float32),
            'minx': left,
            'miny': bottom,
            'maxx': right,
            'maxy': top,
            'row': int(window.row_off),
            'col': int(window.col_off),
        }

    def _write_dense(
        self, window: Window, features: np.ndarray, valid: np.ndarray
    ) -> None:
        assert self.dense is not None
        y, x = int(window.row_off) // self.step, int(window.col_off) // self.step
        h = min(features.shape[1], self.dense.dst.height - y)
        w = min(features.shape[2], self.dense.dst.width - x)
        block = features[:, :h, :w].astype(np.float32)
        block[:, ~valid[:h, :w]] = np.nan
        self.dense.write(Window(x, y, w, h), block)


def _downsample(valid: np.ndarray, step: int, shape: tuple[int, ...]) -> np.ndarray:
    """Feature pixels with any valid input pixel (the chip padded to the map's size)."""
    h, w = shape[0] * step, shape[1] * step
    padded = np.zeros((h, w), bool)
    padded[: valid.shape[0], : valid.shape[1]] = valid
    return padded.reshape(shape[0], step, shape[1], step).any((1, 3))


def _embed_one(
    scene: Scene, run: _Run, dense: Path | None, given: bool
) -> tuple[Any, RunStats]:
    import geopandas as gpd

    backbone, device = run.backbone, run.device
    mean, std = _statistics(backbone, len(scene.bands), given)
    m, s = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    backbone.model.to(device)

    @torch.inference_mode()
    def model(x: Tensor) -> Tensor:
        return backbone.features((x[:, 0] - m[:, None, None]) / s[:, None, None])

    chip = cap_tile(run.chip, scene.height, scene.width, STAGE_STRIDE[4], 32)
    stride = min(run.stride, chip)
    writer = None
    if dense:
        tags = _tags(_metadata(run, scene))
        writer = _dense_writer(
            scene, dense, run.stage, backbone, chip, device, mean, tags
        )
    chips = _Chips(scene, run.stage, writer, LonLat(scene))
    try:
        stats = run_tiles(
            scene,
            chip_grid(scene.height, scene.width, chip, stride),
            model,
            chips.consume,
            np.asarray(mean, np.float32),
            run.batch_size,
            device,
            run.progress,
            desc=f'embed {Path(scene.paths[0]).name}',
            precision=run.precision,
        )
    except BaseException:
        if writer:
            writer.abort()
        raise
    if writer:
        writer.finish()
    frame = gpd.GeoDataFrame(chips.rows, geometry='geometry', crs=4326)
    frame['crs'] = scene.crs.to_string() if scene.crs else ''
    frame['source'] = scene.paths[0]
    if scene.datetime is not None:
        frame['datetime'] = scene.datetime
    return frame, stats


def _statistics(
    backbone: Backbone, channels: int, given: bool
) -> tuple[list[float], list[float]]:
    """Per-band mean and std, checked; never invented for bands they do not describe."""
    where = '--' if given else f'{backbone.name}: '
    mean = per_band(backbone.mean, channels, f'{where}mean')
    std = per_band(backbone.std, channels, f'{where}std')
    return mean.tolist(), std.tolist()


def _metadata(run: _Run, scene: Scene) -> dict[str, Any]:
    """How the embeddings are computed, for the outputs' metadata."""
    mean, std = _statistics(run.backbone, len(scene.bands), True)
    return {
        'precision': run.precision,
        'weights': run.backbone.name,
        'stage': run.stage,
        'chip': run.chip,
        'stride': run.stride,
        'bands': list(scene.bands),
        'mean': mean,
        'std': std,
        'sensor': run.backbone.sensor.name if run.backbone.sensor else None,
    }


def _tags(metadata: dict[str, Any]) -> dict[str, str]:
    """The metadata as GeoTIFF tags (``TORCHGEO_GFM_PRECISION=fp32``, ...)."""
    return {
        f'TORCHGEO_GFM_{key.upper()}': value
        if isinstance(value, str)
        else json.dumps(value)
        for key, value in metadata.items()
        if value is not None
    }


def _dense_writer(
    scene: Scene,
    dense: Path,
    stage: int,
    backbone: Backbone,
    chip: int,
    device: torch.device,
    mean: list[float],
    tags: dict[str, str],
) -> COGWriter:
    step = STAGE_STRIDE[stage]
    probe = torch.tensor(mean, device=device)[None, :, None, None].expand(
        1, -1, chip, chip
    )
    with torch.inference_mode():
        depth = backbone.features(probe.contiguous()).shape[1]
    profile = {
        'count': depth,
        'dtype': 'float32',
        'nodata': float('nan'),
        'crs': scene.crs,
        'transform': scene.transform @ Affine.scale(step),
        'height': -(-scene.height // step),
        'width': -(-scene.width // step),
    }
    return COGWriter(dense, profile, 'average', tags=tags)
