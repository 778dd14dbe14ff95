# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The PyTorch modules that are exported: normalisation inside, raw raster values in.

Each is built from what the scene engine already loads, and computes exactly what it
computes on the same tiles:

* :class:`TaskModule` wraps a :class:`~torchgeo_gfm.scene.Predictor` (a fine-tuned
  checkpoint): ``forward(image)`` (``forward(image1, image2)`` for change detection) of
  raw ``[B, C, T, T]`` tiles gives what ``Predictor.__call__`` gives for them stacked as
  ``[B, 1 or 2, C, T, T]``: the task's ``predict_step`` after the normalisation.
* :class:`BackboneModule` wraps a :class:`~torchgeo_gfm.scene.backbone.Backbone`:
  ``forward(image)`` gives the stage's feature map (as ``embed`` computes it) and its
  mean over the map (the embedding of a chip without nodata).

:func:`metadata_for` describes either as :class:`~.metadata.ExportMetadata`.

.. versionadded:: 0.2
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..scene.backbone import STAGE_STRIDE, Backbone
from ..scene.normalisation import per_band
from ..scene.predictor import Predictor
from .metadata import ExportMetadata

#: a Swin's total stride: the tile sizes a backbone takes are multiples of it
SWIN_MULTIPLE = 32


class TaskModule(nn.Module):
    """A fine-tuned task on raw tiles: normalisation, then its ``predict_step``.

    Change detection takes two tiles: :class:`ChangeModule` (:func:`task_module` picks
    the class of a predictor's kind); each input is an argument of its own, so that both
    formats name the inputs as the metadata does.

    .. versionadded:: 0.2
    """

    mean: Tensor
    std: Tensor

    def __init__(self, predictor: Predictor) -> None:
        """Wrap *predictor*'s task (shared, not copied) and statistics.

        Args:
            predictor: from :func:`~torchgeo_gfm.scene.load_predictor`.
        """
        super().__init__()
        self.change = predictor.kind == 'change'
        if self.change != isinstance(self, ChangeModule):
            raise TypeError(f'a {predictor.kind} predictor: use task_module(predictor)')
        self.predictor = predictor
        self.task = predictor.task.eval()
        # [C, 1, 1]: the same broadcast, so the same float32 arithmetic, as the Predictor
        self.register_buffer('mean', _column(predictor.mean))
        self.register_buffer('std', _column(predictor.std))

    @property
    def inputs(self) -> list[str]:
        """The names of the inputs."""
        return ['image1', 'image2'] if self.change else ['image']

    @property
    def outputs(self) -> list[str]:
        """The name of the output."""
        sr = self.predictor.kind == 'super_resolution'
        return ['values' if sr else 'probabilities']

    def forward(self, image: Tensor) -> Tensor:
        """Probabilities (SR: values) of raw tiles.

        Args:
            image: ``[B, C, T, T]`` raw values.

        Returns:
            ``[B, K, T * scale, T * scale]`` per pixel, or ``[B, K]`` per chip.
        """
        return self._predict(image[:, None])

    def _predict(self, images: Tensor) -> Tensor:
        """``Predictor.__call__`` of ``[B, T, C, H, W]``, without inference mode."""
        x = (images - self.mean) / self.std
        batch = {'image': x if self.change else x[:, 0]}
        out = self.task.predict_step(batch, 0)  # type: ignore[operator]
        if isinstance(out, dict):  # SemanticSegmentation returns bounds too
            out = out['probabilities']
        return out.float()


class ChangeModule(TaskModule):
    """A change detection task on two raw tiles (see :class:`TaskModule`).

    .. versionadded:: 0.2
    """

    def forward(self, image1: Tensor, image2: Tensor) -> Tensor:  # type: ignore[override]
        """Change probabilities of raw tiles.

        Args:
            image1: ``[B, C, T, T]`` raw values, before.
            image2: ``[B, C, T, T]`` raw values, after.

        Returns:
            ``[B, K, T, T]``.
        """
        return self._predict(torch.stack((image1, image2), dim=1))


def task_module(predictor: Predictor) -> TaskModule:
    """The module of *predictor*'s kind: a :class:`ChangeModule` or a :class:`TaskModule`.

    Args:
        predictor: from :func:`~torchgeo_gfm.scene.load_predictor`.

    Returns:
        The module, sharing the predictor's task.

    .. versionadded:: 0.2
    """
    return (ChangeModule if predictor.kind == 'change' else TaskModule)(predictor)


class BackboneModule(nn.Module):
    """A backbone on raw tiles: normalisation, the stage's features and their mean.

    .. versionadded:: 0.2
    """

    mean: Tensor
    std: Tensor

    def __init__(self, backbone: Backbone, in_channels: int | None = None) -> None:
        """Wrap *backbone*'s model (shared, not copied) and statistics.

        Args:
            backbone: from
                :func:`~torchgeo_gfm.scene.backbone.load_backbone_for_embedding`.
            in_channels: bands it takes, where the backbone does not say (GFM weights
                adapt to any): its sensor's, else 3.

        Raises:
            SceneError: if its mean or std do not fit *in_channels*.
        """
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model.eval()
        sensor = backbone.sensor
        self.in_channels = (
            backbone.in_channels
            or in_channels
            or (sensor.num_bands if sensor is not None else 3)
        )
        where = f'{backbone.name}: '
        mean = per_band(backbone.mean, self.in_channels, f'{where}mean')
        std = per_band(backbone.std, self.in_channels, f'{where}std')
        # [C, 1, 1], from float32 values: what embed_scene computes with
        self.register_buffer('mean', _column(mean))
        self.register_buffer('std', _column(std))
        self.stage = backbone.stage
        self.channels = int(self._probe().shape[1])

    @property
    def inputs(self) -> list[str]:
        """The name of the input."""
        return ['image']

    @property
    def outputs(self) -> list[str]:
        """The names of the outputs."""
        return ['features', 'embedding']

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """The stage's feature map of raw tiles and its mean over the map.

        Args:
            image: ``[B, C, T, T]`` raw values.

        Returns:
            ``features`` ``[B, D, T / stride, T / stride]`` and ``embedding`` ``[B, D]``.
        """
        features = self.backbone.features((image - self.mean) / self.std)
        return features, features.mean((2, 3))

    @torch.no_grad()
    def _probe(self) -> Tensor:
        """Features of one smallest tile (for the feature depth)."""
        x = self.mean.expand(self.in_channels, SWIN_MULTIPLE, SWIN_MULTIPLE)[None]
        return self.forward(x.contiguous())[0]


def _column(values: Tensor) -> Tensor:
    """Per-band statistics as ``[C, 1, 1]`` float32 (a copy)."""
    return values.detach().to(torch.float32).reshape(-1, 1, 1).clone()


#: what each output means, by kind and mode (classification: per chip, else per pixel)
_MEANING = {
    'multiclass': 'class probabilities (softmax over the classes)',
    'binary': 'probability of the positive class (sigmoid)',
    'multilabel': 'probability of each label (independent sigmoids)',
}


def _meaning(module: TaskModule | BackboneModule) -> str:
    if isinstance(module, BackboneModule):
        return (
            f'features: the Swin stage {module.stage} feature map [B, D, tile/stride, '
            'tile/stride] of the normalised input; embedding: its mean over the map '
            '[B, D]'
        )
    p = module.predictor
    if p.kind == 'super_resolution':
        return (
            f'super-resolved values at {p.scale}x the input resolution [B, K, '
            f'tile*{p.scale}, tile*{p.scale}], clipped to [0, 1]'
        )
    where = (
        'per chip [B, K]'
        if p.kind == 'classification'
        else 'per pixel [B, K, tile, tile]'
    )
    what = _MEANING[p.mode]
    if p.kind == 'change':
        what += ' of change from image1 to image2'
    return f'{where}: {what}'


def metadata_for(
    module: TaskModule | BackboneModule,
    *,
    tile: int,
    batch: int | None = None,
    source: str | os.PathLike[str] = '',
    source_sha256: str = '',
    multiple: int | None = None,
) -> ExportMetadata:
    """What an exported *module* takes and gives.

    Args:
        module: the module exported.
        tile: the tile size it is exported for.
        batch: the batch size it takes; None for any.
        source: the checkpoint or weights it was made from (its name is recorded).
        source_sha256: that file's SHA-256.
        multiple: the tile sizes it could take are multiples of this (default: the
            predictor's; 32 for a Swin backbone).

    Returns:
        The metadata, checked.

    .. versionadded:: 0.2
    """
    from .. import __version__

    common: dict[str, Any] = {
        'inputs': list(module.inputs),
        'outputs': list(module.outputs),
        'meaning': _meaning(module),
        'mean': module.mean.flatten().tolist(),
        'std': module.std.flatten().tolist(),
        'tile': tile,
        'batch': batch,
        'source': Path(os.fspath(source)).name if source else '',
        'source_sha256': source_sha256,
        'torchgeo_gfm': __version__,
    }
    if isinstance(module, BackboneModule):
        sensor = module.backbone.sensor
        meta = ExportMetadata(
            kind='backbone',
            mode='embedding',
            in_channels=module.in_channels,
            multiple=multiple or SWIN_MULTIPLE,
            channels=module.channels,
            stride=STAGE_STRIDE[module.stage],
            stage=module.stage,
            bands=_bands(sensor.bands if sensor is not None else None),
            sensor=sensor.to_dict() if sensor is not None else None,
            **common,
        )
    else:
        p = module.predictor
        meta = ExportMetadata(
            kind=p.kind,
            mode=p.mode,
            in_channels=p.in_channels,
            multiple=multiple or p.multiple,
            channels=p.outputs,
            scale=p.scale,
            bands=_bands(p.bands or (p.sensor.bands if p.sensor is not None else None)),
            sensor=p.sensor.to_dict() if p.sensor is not None else None,
            classes=list(p.classes) if p.classes is not None else None,
            **common,
        )
    meta.check('the exported model')
    return meta


def _bands(bands: Sequence[object] | None) -> list[str | int] | None:
    """Band names (or indexes) as JSON takes them."""
    if bands is None:
        return None
    return [b if isinstance(b, int) else str(b) for b in bands]
