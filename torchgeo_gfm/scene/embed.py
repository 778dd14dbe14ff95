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

An exported backbone (``.onnx``, ``.pt2``: :func:`torchgeo_gfm.export.export_model`) as
*weights* runs the same way: its ``features`` output is the stage's map, pooled and
written as above; its chip size, stage and normalisation are fixed in the file
(:mod:`.exported`), and the outputs record it under ``exported`` (path, backend, sha256,
the checkpoint it came from).

.. versionadded:: 0.1
"""

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.transform import Affine
from rasterio.windows import Window
from torch import Tensor

from ..export.metadata import ExportError
from ..sensors import Sensor
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
from .exported import (
    ExportedModel,
    check_options,
    exported_precision,
    is_exported_model,
    load_model,
    provenance,
)
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


#: the chip and stage of weights when none is given (an exported file has its own)
DEFAULT_CHIP, DEFAULT_STAGE = 192, 4

#: what embeds: raw pixels ``[B, 1, C, H, W]`` -> the stage's map ``[B, D, h, w]``
Features = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class _Run:
    """The model and settings shared by every raster of one :func:`embed_scene` call."""

    model: Features
    name: str
    sensor: Sensor | None
    in_channels: int | None
    mean: list[float]
    std: list[float]
    chip: int
    stride: int
    stage: int
    step: int
    device: torch.device
    precision: str
    exported: dict[str, Any] | None = None

    @property
    def fixed(self) -> bool:
        """Whether the chip is the model's only size (exported): never capped."""
        return self.exported is not None


def embed_scene(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    weights: Any = None,
    bands: Sequence[int] | str | None = None,
    chip: int | None = None,
    stride: int | None = None,
    stage: int | None = None,
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
            file; or a fine-tuned checkpoint, whose backbone is used), or an exported
            backbone (``.onnx``, ``.pt2``, or an
            :class:`~torchgeo_gfm.export.ExportedModel`).
        bands: 1-based bands ('3,2,1'), all by default.
        chip: chip size in pixels (a multiple of 32); default 192, capped to the scene;
            an exported backbone's own (the only one it takes) by default.
        stride: step between chips (default: *chip*, no overlap).
        stage: Swin stage, 1-4 (default 4: the final 1024-d feature of Swin-B); an
            exported backbone's is fixed in the file.
        dense: also write the feature map of the (single) input as a COG here.
        batch_size: chips per model call.
        device: 'cpu', 'cuda', 'cuda:N' or 'auto' (a GPU if there is one).
        overwrite: replace existing outputs (never an input, the weights, or the other
            output).
        mean: per-band mean (default: the weights' normalisation; required for a
            raster whose band count differs from the weights' statistics); not for an
            exported backbone, whose graph normalises (nor is *sensor*).
        std: per-band std.
        backbone: a ready :class:`Backbone` instead of *weights*.
        progress: show a progress bar.
        precision: 'fp32' (default: the same output on every machine), 'bf16' (forced
            bf16 autocast) or 'auto' (bf16 where the hardware computes it natively);
            an exported backbone runs fp32 ('bf16' is refused).
        sensor: the sensor of the rasters (a shipped name such as ``'s2'``, a YAML file,
            a dict or a Sensor) for weights that record none; its statistics normalise.

    Returns:
        What was written.

    Raises:
        SceneError: for bad input, before anything is written: among others rasters
            whose band count is not the sensor's (or the exported backbone's), a
            *sensor* that contradicts the one the weights record; for an exported file
            (:class:`~torchgeo_gfm.export.ExportError`) a task, another chip or stage,
            or normalisation options.
        OutputError: for an output that must not or cannot be written.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor*; a recorded sensor normalises and checks the bands. Exported
       backbones; *chip* and *stage* default to None (192 and 4, or the file's).
    """
    exported = backbone is None and is_exported_model(weights)
    _check_args(inputs, chip, stride, stage, dense, batch_size, precision)
    # weights take any chip and stage: checked now; an exported file's when loaded
    sizes = None if exported else _weights_sizes(chip, stride, stage)
    out, dense_out = check_scene_outputs(
        (output, '-o', 'geoparquet'),
        (dense, '--dense', 'cog'),
        protect=[*inputs, *_files(weights)],
        overwrite=overwrite,
    )
    target = check_device(device)
    chosen = parse_bands(bands)
    scenes = _open_all(inputs, chosen)
    first = scenes[0]
    channels = len(first.bands)
    where = raster_bands(first.paths[0], first.bands, bool(chosen))
    options = {'mean': mean, 'std': std, 'sensor': sensor, 'precision': precision}
    if sizes is None:
        run = _exported_run(
            weights, (chip, stride, stage), options, device, target, channels, where
        )
    else:
        found = _backbone(weights, backbone, sizes[2], channels, where, options)
        run = _backbone_run(found, sizes, options, target, channels)
    for scene in scenes:
        open_scene(scene.paths, scene.bands, run.in_channels or channels)
    frames, stats = [], []
    for scene in scenes:
        rows, done = _embed_one(scene, run, dense_out, batch_size, progress)
        frames.append(rows)
        stats.append(done)
    n = write_geoparquet(out, frames, _metadata(run, scenes[0]))
    return EmbedResult(out, dense_out, n, stats, run.precision)


def _files(weights: object) -> list[str | os.PathLike[str]]:
    """The weights' file, protected from being overwritten by an output."""
    if isinstance(weights, str | os.PathLike):
        return [weights]
    return [weights.path] if isinstance(weights, ExportedModel) else []


def _backbone(
    weights: Any,
    backbone: Backbone | None,
    stage: int,
    channels: int,
    where: str,
    options: dict[str, Any],
) -> Backbone:
    """The backbone of *weights* (or the one given), its sensor's bands checked."""
    sensor = options['sensor']
    if backbone is None:
        return load_backbone_for_embedding(
            weights,
            stage,
            channels,
            options['mean'],
            options['std'],
            sensor=sensor,
            where=where,
        )
    if sensor is not None:
        raise SceneError('sensor: give it to load_backbone_for_embedding, not backbone')
    if backbone.sensor is not None:
        check_sensor_bands(backbone.sensor, channels, where)
    return backbone


def _backbone_run(
    backbone: Backbone,
    sizes: tuple[int, int, int],
    options: dict[str, Any],
    target: torch.device,
    channels: int,
) -> _Run:
    """Normalise, then the backbone's stage map."""
    chip, stride, stage = sizes
    mean, std = _statistics(backbone, channels, options['mean'] is not None)
    m = torch.tensor(mean, device=target)[:, None, None]
    s = torch.tensor(std, device=target)[:, None, None]
    backbone.model.to(target)

    @torch.inference_mode()
    def model(x: Tensor) -> Tensor:
        return backbone.features((x[:, 0] - m) / s)

    return _Run(
        model,
        backbone.name,
        backbone.sensor,
        backbone.in_channels,
        mean,
        std,
        chip,
        stride,
        stage,
        STAGE_STRIDE[stage],
        target,
        resolve_precision(options['precision'], target),
    )


def _exported_run(
    weights: str | os.PathLike[str] | ExportedModel,
    sizes: tuple[int | None, int | None, int | None],
    options: dict[str, Any],
    device: str,
    target: torch.device,
    channels: int,
    where_bands: str,
) -> _Run:
    """The exported backbone: its chip, stage and normalisation are the file's."""
    chip, stride, stage = sizes
    where = os.fspath(_files(weights)[0])
    check_options(
        where, mean=options['mean'], std=options['std'], sensor=options['sensor']
    )
    used = exported_precision(options['precision'], where)
    model = load_model(weights, 'backbone', device, target)
    model.check_bands(channels, where_bands)
    meta = model.meta
    if stage is not None and stage != meta.stage:
        raise ExportError(
            f'--stage {stage}: {where} gives the features of stage {meta.stage} (fixed '
            f'at export); drop --stage, or export the backbone again with --stage {stage}'
        )
    chip = model.tile if chip is None else chip
    model.check_tile(chip, '--chip')
    stride = chip if stride is None else stride
    _check_stride(stride, chip, meta.stride)
    return _Run(
        model,
        where,
        model.sensor,
        model.in_channels,
        model.mean.tolist(),
        model.std.tolist(),
        chip,
        stride,
        meta.stage or DEFAULT_STAGE,
        meta.stride,
        model.device,
        used,
        provenance(model),
    )


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
    chip: int | None,
    stride: int | None,
    stage: int | None,
    dense: object,
    batch_size: int,
    precision: str,
) -> None:
    """Refuse what no model takes, before anything is loaded or written."""
    if not inputs:
        raise SceneError('no input raster given')
    if chip is not None:
        check_integer('--chip', chip, 1)
    if stride is not None:
        check_integer('--stride', stride, 1)
    check_integer('--batch-size', batch_size, 1)
    check_precision(precision)
    if stage is not None and stage not in STAGE_STRIDE:
        raise SceneError(f'--stage {stage}: expected 1, 2, 3 or 4 (Swin stages)')
    if dense and len(inputs) != 1:
        raise SceneError('--dense writes one raster: pass one input with it')


def _weights_sizes(
    chip: int | None, stride: int | None, stage: int | None
) -> tuple[int, int, int]:
    """Chip, stride and stage for weights (defaults filled in), or a SceneError."""
    chip = DEFAULT_CHIP if chip is None else chip
    stride = chip if stride is None else stride
    stage = DEFAULT_STAGE if stage is None else stage
    step = STAGE_STRIDE[4]
    if chip < step or chip % step:
        raise SceneError(
            f"--chip {chip}: expected a multiple of {step} pixels (the backbone's stride), "
            f'e.g. --chip {max(step, round(chip / step) * step)}'
        )
    _check_stride(stride, chip, STAGE_STRIDE[stage])
    return chip, stride, stage


def _check_stride(stride: int, chip: int, step: int) -> None:
    """A stride is a multiple of the features' stride, at most the chip."""
    if stride < 1 or stride > chip or stride % step:
        raise SceneError(
            f'--stride {stride}: expected a multiple of {step} between {step} and '
            f'--chip ({chip})'
        )


class _Chips:
    """The writer side of one raster: pooled rows, and the dense COG if asked for."""

    def __init__(
        self, scene: Scene, step: int, dense: COGWriter | None, lonlat: LonLat
    ) -> None:
        self.scene, self.dense, self.lonlat = scene, dense, lonlat
        self.step = step
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
    scene: Scene, run: _Run, dense: Path | None, batch_size: int, progress: bool
) -> tuple[Any, RunStats]:
    import geopandas as gpd

    chip = run.chip
    if not run.fixed:
        chip = cap_tile(chip, scene.height, scene.width, STAGE_STRIDE[4], 32)
    stride = min(run.stride, chip)
    writer = None
    if dense:
        writer = _dense_writer(scene, dense, run, chip, _tags(_metadata(run, scene)))
    chips = _Chips(scene, run.step, writer, LonLat(scene))
    try:
        stats = run_tiles(
            scene,
            chip_grid(scene.height, scene.width, chip, stride),
            run.model,
            chips.consume,
            np.asarray(run.mean, np.float32),
            batch_size,
            run.device,
            progress,
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
    metadata = {
        'precision': run.precision,
        'weights': run.name,
        'stage': run.stage,
        'chip': run.chip,
        'stride': run.stride,
        'bands': list(scene.bands),
        'mean': run.mean,
        'std': run.std,
        'sensor': run.sensor.name if run.sensor else None,
    }
    if run.exported is not None:
        metadata['exported'] = run.exported
    return metadata


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
    scene: Scene, dense: Path, run: _Run, chip: int, tags: dict[str, str]
) -> COGWriter:
    # the depth of the features: of a chip at the mean (zeros once normalised)
    probe = torch.tensor(run.mean, device=run.device)[None, None, :, None, None]
    with torch.inference_mode():
        depth = run.model(probe.expand(1, 1, -1, chip, chip).contiguous()).shape[1]
    step = run.step
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
