# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm embed``: GFM features of every chip of a scene, with their geography.

One GeoParquet row per chip, in the schema TorchGeo's
:class:`~torchgeo.datasets.ClayEmbeddings` reads: ``geometry`` (the chip's footprint in
EPSG:4326), ``embedding`` (the chosen stage's feature map averaged over the chip's valid
pixels; stage 4, 1024-d for Swin-B, by default), and ``datetime`` when the raster's
metadata holds one; plus ``minx, miny, maxx, maxy`` and ``crs`` (the footprint in the
raster's own CRS), ``source``, and the chip's pixel offsets ``row``, ``col``. Chips that
are nodata everywhere have no row. ``dense`` also writes the feature map itself as a
multi-band COG at the stage's stride (a TorchGeo ``RasterDataset`` reads it).

.. versionadded:: 0.1
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.transform import Affine
from rasterio.windows import Window
from torch import Tensor, nn

from .engine import RunStats, Tile, run_tiles
from .errors import SceneError
from .predictor import (
    NAMED,
    add_scene_arguments,
    is_lightning_checkpoint,
    load_predictor,
    read_checkpoint_file,
)
from .raster import COGWriter, Scene, atomic_path, check_output, open_scene, parse_bands
from .tiling import chip_grid

#: output stride of each Swin stage (patch 4, then x2 per stage)
STAGE_STRIDE = {1: 4, 2: 8, 3: 16, 4: 32}


@dataclass
class Backbone:
    """A feature extractor and the normalisation of its inputs.

    Attributes:
        model: a timm model (or a ``features_only`` one).
        stage: the Swin stage whose features are used.
        in_channels: bands it takes (None: any, e.g. GFM's band rule adapts).
        mean: per-band mean (or one value), on the raster's scale.
        std: per-band std.
        name: for messages.

    .. versionadded:: 0.1
    """

    model: nn.Module
    stage: int
    in_channels: int | None
    mean: Sequence[float]
    std: Sequence[float]
    name: str

    def features(self, x: Tensor) -> Tensor:
        """The stage's ``[B, D, h, w]`` feature map of normalised pixels ``[B, C, H, W]``.

        Args:
            x: the batch.

        Returns:
            The feature map.
        """
        return stage_features(self.model, self.stage)(x)


def stage_features(model: nn.Module, stage: int) -> Callable[[Tensor], Tensor]:
    """The feature map of Swin stage *stage* (1-4) of a timm model.

    Uses ``forward_intermediates`` (the final norm applied to the last stage, as timm's
    pooled features), or, for a ``features_only`` model (smp ``tu-`` encoders), the
    output whose reduction is the stage's stride.

    Args:
        model: a timm model.
        stage: 1 to 4.

    Returns:
        A function of a normalised batch.

    .. versionadded:: 0.1
    """
    net: Any = model
    if hasattr(net, 'forward_intermediates'):

        def features(x: Tensor) -> Tensor:
            out = net.forward_intermediates(
                x, indices=[stage - 1], norm=stage == 4, intermediates_only=True
            )
            return out[-1]

        return features
    index = list(net.feature_info.reduction()).index(STAGE_STRIDE[stage])
    return lambda x: net(x)[index]


def load_backbone_for_embedding(
    weights: Any,
    stage: int,
    in_channels: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Backbone:
    """The backbone to embed with, and its normalisation.

    *weights* is a GFM_Weights member, a weights file (GFM Swin-B), or a fine-tuned
    Lightning checkpoint, whose backbone and normalisation are used.

    Args:
        weights: see above; None for ``GFM_Weights.GEOPILE_RGB_GFM``.
        stage: Swin stage whose features are embedded.
        in_channels: bands of the input (GFM's band rule adapts the patch embedding).
        mean: per-band mean, overriding the default (ImageNet on 0-255 data).
        std: per-band std.

    Returns:
        The backbone in eval mode.

    Raises:
        SceneError: if the weights cannot be read or are not a backbone's.

    .. versionadded:: 0.1
    """
    from ..models import GFM_Weights, gfm_swin_b

    if weights is None:
        weights = GFM_Weights.GEOPILE_RGB_GFM
    checkpoint = None if isinstance(weights, GFM_Weights) else _lightning(weights)
    if checkpoint is not None:
        return _from_task(os.fspath(weights), stage, mean, std, checkpoint)
    try:
        model = gfm_swin_b(weights, in_chans=in_channels, num_classes=0).eval()
    except FileNotFoundError:
        raise SceneError(
            f'{weights}: no such file; expected GFM weights or a checkpoint'
        ) from None
    except Exception as error:  # noqa: BLE001  (any reading error: say which file)
        raise SceneError(f'{weights}: not usable as GFM weights ({error})') from None
    m, s = NAMED['imagenet']
    return Backbone(
        model, stage, None, mean or m, std or s, f'gfm_swin_base ({weights})'
    )


def _lightning(path: Any) -> dict[str, Any] | None:
    """The Lightning checkpoint at *path*, read once, or None for anything else.

    The contents go to :func:`load_predictor`, which does not read the file again.
    Safetensors files are told by their header and not read; anything else (GFM weights,
    missing or unreadable files) is left to ``gfm_swin_b``, which says what is wrong.
    """
    try:
        content = read_checkpoint_file(path)
    except (SceneError, TypeError):
        return None
    return dict(content) if is_lightning_checkpoint(content) else None


def _from_task(
    path: str,
    stage: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    checkpoint: dict[str, Any],
) -> Backbone:
    predictor = load_predictor(path, mean, std, checkpoint=checkpoint)
    model: Any = predictor.task.model
    if predictor.kind == 'super_resolution':
        model = model.backbone
    elif predictor.kind in ('segmentation', 'change'):
        model = getattr(getattr(model, 'encoder', None), 'model', None)
        if model is None:
            raise SceneError(
                f'{path}: its model has no timm (tu-) encoder to embed with'
            )
    return Backbone(
        model.eval(),
        stage,
        predictor.in_channels,
        predictor.mean.tolist(),
        predictor.std.tolist(),
        f'backbone of {path}',
    )


@dataclass
class EmbedResult:
    """What :func:`embed_scene` wrote.

    Attributes:
        output: the GeoParquet file.
        dense: the feature-map COG, if asked for.
        rows: chips embedded.
        stats: per input raster.

    .. versionadded:: 0.1
    """

    output: Path
    dense: Path | None
    rows: int
    stats: list[RunStats]


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
) -> EmbedResult:
    """Embed every chip of one or more rasters with GFM; write GeoParquet (and a COG).

    Args:
        inputs: rasters, each in its own CRS.
        output: the GeoParquet file.
        weights: GFM weights (a ``GFM_Weights`` member, default GEOPILE_RGB_GFM; a weights
            file; or a fine-tuned checkpoint, whose backbone is used).
        bands: 1-based bands ('3,2,1'), all by default.
        chip: chip size in pixels (a multiple of the stage's stride).
        stride: step between chips (default: *chip*, no overlap).
        stage: Swin stage, 1-4 (4: the final 1024-d feature of Swin-B).
        dense: also write the feature map of the (single) input as a COG here.
        batch_size: chips per model call.
        device: 'cpu' or 'cuda' (bf16 autocast where native).
        overwrite: replace existing outputs.
        mean: per-band mean (default: the weights' normalisation).
        std: per-band std.
        backbone: a ready :class:`Backbone` instead of *weights*.
        progress: show a progress bar.

    Returns:
        What was written.

    Raises:
        SceneError: for bad input, before anything is written.

    .. versionadded:: 0.1
    """
    stride = stride or chip
    out = check_output(output, overwrite)
    dense_out = check_output(dense, overwrite) if dense else None
    _check_args(inputs, chip, stride, stage, dense_out)
    chosen = parse_bands(bands)
    scenes = [open_scene([p], chosen, None) for p in inputs]
    channels = len(scenes[0].bands)
    backbone = backbone or load_backbone_for_embedding(
        weights, stage, channels, mean, std
    )
    for scene in scenes:
        open_scene(scene.paths, scene.bands, backbone.in_channels or len(scene.bands))
    frames, stats = [], []
    for scene in scenes:
        rows, run = _embed_one(
            scene,
            backbone,
            chip,
            stride,
            stage,
            dense_out,
            batch_size,
            device,
            progress,
        )
        frames.append(rows)
        stats.append(run)
    n = _write_parquet(out, frames)
    return EmbedResult(out, dense_out, n, stats)


def _check_args(
    inputs: Sequence[Any], chip: int, stride: int, stage: int, dense: Path | None
) -> None:
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
    if not inputs:
        raise SceneError('no input raster given')


class _Chips:
    """The writer side of one raster: pooled rows, and the dense COG if asked for."""

    def __init__(self, scene: Scene, stage: int, dense: COGWriter | None) -> None:
        self.scene, self.dense = scene, dense
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
        from shapely.geometry import box

        left, bottom, right, top = _window_bounds(self.scene.transform, window)
        return {
            'geometry': box(left, bottom, right, top),
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


def _window_bounds(
    transform: Affine, window: Window
) -> tuple[float, float, float, float]:
    from rasterio.windows import bounds

    left, bottom, right, top = bounds(window, transform)
    return left, bottom, right, top


def _embed_one(
    scene: Scene,
    backbone: Backbone,
    chip: int,
    stride: int,
    stage: int,
    dense: Path | None,
    batch_size: int,
    device: str,
    progress: bool,
) -> tuple[Any, RunStats]:
    import geopandas as gpd

    channels = len(scene.bands)
    mean = _per_band(backbone.mean, channels)
    std = _per_band(backbone.std, channels)
    m, s = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    backbone.model.to(device)

    @torch.inference_mode()
    def model(x: Tensor) -> Tensor:
        return backbone.features((x[:, 0] - m[:, None, None]) / s[:, None, None])

    writer = (
        _dense_writer(scene, dense, stage, backbone, chip, device, mean)
        if dense
        else None
    )
    chips = _Chips(scene, stage, writer)
    try:
        run = run_tiles(
            scene,
            chip_grid(scene.height, scene.width, chip, stride),
            model,
            chips.consume,
            np.asarray(mean, np.float32),
            batch_size,
            device,
            progress,
            desc=f'embed {Path(scene.paths[0]).name}',
        )
    except BaseException:
        if writer:
            writer.abort()
        raise
    if writer:
        writer.finish()
    frame = gpd.GeoDataFrame(chips.rows, geometry='geometry', crs=scene.crs)
    if len(frame):
        frame = frame.to_crs(4326)
    frame['crs'] = scene.crs.to_string() if scene.crs else ''
    frame['source'] = scene.paths[0]
    if scene.datetime is not None:
        frame['datetime'] = scene.datetime
    return frame, run


def _per_band(values: Sequence[float], channels: int) -> list[float]:
    values = list(values)
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if len(values) == 3:  # RGB statistics for multispectral input: their mean per band
        return [float(np.mean(values))] * channels
    raise SceneError(f'mean/std {values}: expected 1 or {channels} values')


def _dense_writer(
    scene: Scene,
    dense: Path,
    stage: int,
    backbone: Backbone,
    chip: int,
    device: str,
    mean: list[float],
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
    return COGWriter(dense, profile, 'average')


def _write_parquet(out: Path, frames: list[Any]) -> int:
    import geopandas as gpd
    import pandas as pd

    frame = gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), geometry='geometry', crs=4326
    )
    with atomic_path(out, '.parquet') as tmp:
        frame.to_parquet(tmp)
    return len(frame)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``torchgeo-gfm embed``'s arguments.

    Args:
        parser: the sub-command's parser.

    .. versionadded:: 0.1
    """
    parser.add_argument('inputs', nargs='+', help='raster(s), each in its own CRS')
    parser.add_argument('-o', '--output', required=True, help='output GeoParquet')
    parser.add_argument(
        '--weights',
        help='GFM weights file or fine-tuned checkpoint (default: GEOPILE_RGB_GFM)',
    )
    parser.add_argument('--chip', type=int, default=192, help='chip size (px)')
    parser.add_argument(
        '--stride', type=int, help='step between chips (default: --chip)'
    )
    parser.add_argument(
        '--stage', type=int, default=4, help='Swin stage 1-4 (default 4)'
    )
    parser.add_argument(
        '--dense', metavar='OUT.tif', help='also write the feature map (COG)'
    )
    add_scene_arguments(parser)  # --mean/--std default: the weights' normalisation


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm embed``.

    Args:
        args: parsed arguments.

    Returns:
        0 on success, 2 on bad input (the message is printed).

    .. versionadded:: 0.1
    """
    try:
        result = embed_scene(
            args.inputs,
            args.output,
            weights=args.weights,
            bands=args.bands,
            chip=args.chip,
            stride=args.stride,
            stage=args.stage,
            dense=args.dense,
            batch_size=args.batch_size,
            device=args.device,
            overwrite=args.overwrite,
            mean=args.mean,
            std=args.std,
        )
    except SceneError as error:
        print(f'torchgeo-gfm embed: error: {error}', file=sys.stderr)
        return 2
    print(f'{result.output}: {result.rows} chips')
    if result.dense:
        print(f'{result.dense}: dense features')
    return 0
