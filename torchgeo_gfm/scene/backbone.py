# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The backbone ``embed`` runs: GFM weights, or the encoder of a fine-tuned checkpoint.

:func:`load_backbone_for_embedding` takes a ``GFM_Weights`` member, a weights file (the
authors' ``gfm.pth``, a ``torchgeo-gfm convert``/``export`` file) or a fine-tuned
Lightning checkpoint, whose timm encoder and normalisation are used; each file is read
once. :func:`stage_features` gives the feature map of one Swin stage.

The inputs are normalised with the statistics of the sensor the weights record (an
``export`` of a multispectral pretraining run, a checkpoint of a multispectral task), or
of the sensor given for weights that record none (``--sensor``: GFM's band rule fits RGB
weights to its bands). Weights that record none and are given none are RGB: ImageNet
statistics, for 3 bands only; RGB statistics are never applied to other bands.

The weights' readers (timm, Lightning, TorchGeo) are imported when weights are loaded:
``embed`` from an exported backbone uses only :data:`STAGE_STRIDE` and :class:`Backbone`.

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.embed`.
"""

import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..sensors import Sensor
from .errors import SceneError
from .normalisation import (
    NAMED,
    SensorLike,
    check_sensor_bands,
    choose_sensor,
    recorded_sensor,
)

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
        sensor: the sensor of its inputs, where recorded or given (its name is recorded
            in the outputs).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor*.
    """

    model: nn.Module
    stage: int
    in_channels: int | None
    mean: Sequence[float]
    std: Sequence[float]
    name: str
    sensor: Sensor | None = None

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
    *,
    sensor: SensorLike | None = None,
    where: str = 'the raster',
) -> Backbone:
    """The backbone to embed with, and its normalisation.

    *weights* is a GFM_Weights member, a weights file (GFM Swin-B), or a fine-tuned
    Lightning checkpoint, whose backbone and normalisation are used. The raster's band
    count is checked against the sensor before the weights are loaded.

    Args:
        weights: see above; None for ``GFM_Weights.GEOPILE_RGB_GFM``.
        stage: Swin stage whose features are embedded.
        in_channels: bands of the input (GFM's band rule adapts the patch embedding).
        mean: per-band mean, overriding the sensor's (or the default: ImageNet on
            0-255 data, for RGB weights that record no sensor).
        std: per-band std.
        sensor: the sensor of the input for weights that record none (a shipped name
            such as ``'s2'``, a YAML file, a dict or a Sensor).
        where: the raster, for messages (e.g. ``'in.tif (--bands 1,2,3)'``).

    Returns:
        The backbone in eval mode.

    Raises:
        SceneError: if the weights cannot be read or are not a backbone's, *sensor*
            contradicts the recorded one, or the input's band count is not the sensor's
            (RGB for weights that record none, unless *mean*/*std* are given).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor* and *where*; a recorded sensor normalises and checks the bands.
    """
    from ..models import GFM_Weights
    from .checkpoints import parse_checkpoint

    if weights is None:
        weights = GFM_Weights.GEOPILE_RGB_GFM
    checkpoint = None if isinstance(weights, GFM_Weights) else _lightning(weights)
    if checkpoint is not None:
        path = os.fspath(weights)
        recorded = recorded_sensor(parse_checkpoint(path, checkpoint))
        chosen = choose_sensor(recorded, sensor, path)
        if chosen is not None:
            check_sensor_bands(chosen, in_channels, where)
        return _from_task(path, stage, mean, std, checkpoint, chosen)
    chosen = choose_sensor(_file_sensor(weights), sensor, str(weights))
    if chosen is not None:
        check_sensor_bands(chosen, in_channels, where)
        m, s = chosen.mean, chosen.std
    elif mean is None and in_channels != 3:
        raise SceneError(
            f'{where} has {in_channels} band(s); {weights} records no sensor, so its '
            'inputs are RGB (3 bands, ImageNet statistics): pass --bands with the '
            "raster's red, green and blue band numbers (e.g. --bands 4,3,2 for "
            "Sentinel-2), or --sensor NAME|YAML with its sensor (GFM's band rule fits "
            'the RGB weights to its bands), or --mean/--std'
        )
    else:
        m, s = NAMED['imagenet']
    model = _gfm_swin(weights, in_channels, chosen)
    return Backbone(
        model, stage, None, mean or m, std or s, f'gfm_swin_base ({weights})', chosen
    )


def _file_sensor(weights: Any) -> Sensor | None:
    """The sensor a weights file records; None for the hub's and unreadable files."""
    if not isinstance(weights, str | os.PathLike):
        return None  # GFM_Weights: RGB
    from ..models.checkpoint import GFMCheckpointError, backbone_sensor

    try:
        return backbone_sensor(weights)
    except (OSError, GFMCheckpointError):  # gfm_swin_b says what is wrong
        return None


def _gfm_swin(weights: Any, in_channels: int, sensor: Sensor | None) -> nn.Module:
    """GFM Swin-B with *weights*, its RGB filters put on the sensor's red, green, blue."""
    from ..models import gfm_swin_b

    extra = {'rgb_indices': sensor.rgb} if sensor is not None else {}
    try:
        return gfm_swin_b(weights, in_chans=in_channels, num_classes=0, **extra).eval()
    except FileNotFoundError:
        raise SceneError(
            f'{weights}: no such file; expected GFM weights or a checkpoint'
        ) from None
    except Exception as error:  # noqa: BLE001  (any reading error: say which file)
        raise SceneError(f'{weights}: not usable as GFM weights ({error})') from None


def _lightning(path: Any) -> dict[str, Any] | None:
    """The Lightning checkpoint at *path*, or None for anything else; no tensor read twice.

    A torch zip file (what ``torch.save`` writes) is loaded memory-mapped: only its
    pickle is read here, so GFM weights (the authors' ``gfm.pth``) are read once, by
    ``gfm_swin_b``, and a Lightning checkpoint once, by :func:`load_predictor` (which
    takes these contents). Safetensors files are told by their header and not read; an
    old (non-zip) torch file is read in full; anything else (missing, unreadable, not a
    checkpoint) is left to ``gfm_swin_b``, which says what is wrong.
    """
    from .checkpoints import is_lightning_checkpoint, read_checkpoint_file

    try:
        if zipfile.is_zipfile(path):
            content = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        else:
            content = read_checkpoint_file(path)
    except Exception:  # noqa: BLE001  (not a Lightning checkpoint: gfm_swin_b explains)
        return None
    return dict(content) if is_lightning_checkpoint(content) else None


def _from_task(
    path: str,
    stage: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    checkpoint: dict[str, Any],
    sensor: Sensor | None,
) -> Backbone:
    from .predictor import load_predictor

    predictor = load_predictor(path, mean, std, checkpoint=checkpoint, sensor=sensor)
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
        predictor.sensor,
    )
