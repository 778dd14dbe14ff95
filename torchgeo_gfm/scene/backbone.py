# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The backbone ``embed`` runs: GFM weights, or the encoder of a fine-tuned checkpoint.

:func:`load_backbone_for_embedding` takes a ``GFM_Weights`` member, a weights file (the
authors' ``gfm.pth``, a ``torchgeo-gfm convert``/``export`` file) or a fine-tuned
Lightning checkpoint, whose timm encoder and normalisation are used; each file is read
once. :func:`stage_features` gives the feature map of one Swin stage.

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

from .checkpoints import is_lightning_checkpoint, read_checkpoint_file
from .errors import SceneError
from .normalisation import NAMED
from .predictor import load_predictor

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
    """The Lightning checkpoint at *path*, or None for anything else; no tensor read twice.

    A torch zip file (what ``torch.save`` writes) is loaded memory-mapped: only its
    pickle is read here, so GFM weights (the authors' ``gfm.pth``) are read once, by
    ``gfm_swin_b``, and a Lightning checkpoint once, by :func:`load_predictor` (which
    takes these contents). Safetensors files are told by their header and not read; an
    old (non-zip) torch file is read in full; anything else (missing, unreadable, not a
    checkpoint) is left to ``gfm_swin_b``, which says what is wrong.
    """
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
