# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A fine-tuned checkpoint, rebuilt offline, with the normalisation it was trained with.

What the checkpoint is comes from Lightning's checkpoint: ``hyper_parameters`` (the task's
``__init__`` arguments; ``_class_path`` too when trained with ``torchgeo fit``) and the
weights. The task is rebuilt with ``weights=None`` (nothing is downloaded; every weight
comes from the checkpoint) by ``TaskClass.load_from_checkpoint(..., weights_only=True)``.

The normalisation is what the datamodule's ``on_after_batch_transfer`` applied,
``(x - mean) / std``. ``torchgeo fit`` stores the datamodule's arguments and class under
``datamodule_hyper_parameters`` (``_class_path``); the datamodule is rebuilt from them (a
TorchGeo datamodule reads no data in ``__init__``) and its ``mean``/``std`` are read.
Where that is impossible (a checkpoint saved without a datamodule, an unknown class) the
checkpoint is refused unless the caller gives ``mean``/``std`` (``--mean/--std``) or a
named normalisation (``--normalize imagenet`` for our datamodules' ImageNet statistics on
0-255 data, ``--normalize unit`` for TorchGeo's default division by 255).

.. versionadded:: 0.1
"""

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor, nn
from torchgeo.tasks import ChangeDetection, Classification, SemanticSegmentation

from ..tasks import SuperResolution
from .errors import SceneError

Kind = Literal['segmentation', 'change', 'classification', 'super_resolution']

#: task classes the scene engine applies, most specific first
TASKS: dict[Kind, type[nn.Module]] = {
    'super_resolution': SuperResolution,
    'change': ChangeDetection,
    'classification': Classification,
    'segmentation': SemanticSegmentation,
}

#: named normalisations (mean, std per band, on the data's own scale)
NAMED = {
    # our datamodules: ImageNet statistics on 0-255 data (torchgeo_gfm.datamodules.utils)
    'imagenet': ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    # TorchGeo's default (BaseDataModule): divide by 255
    'unit': ((0.0,), (255.0,)),
    'none': ((0.0,), (1.0,)),
}


@dataclass
class Predictor:
    """A rebuilt task, ready to predict normalised tiles.

    Attributes:
        task: the Lightning task (eval mode).
        kind: 'segmentation', 'change', 'classification' or 'super_resolution'.
        mode: 'binary', 'multiclass' or 'multilabel' ('regression' for SR).
        in_channels: bands per image.
        outputs: channels of the probabilities (classes, labels, 1 for binary; SR bands).
        scale: output pixels per input pixel (SR), else 1.
        multiple: tile sizes must be multiples of this (the model's total stride).
        mean: per-band mean ``[C]``.
        std: per-band std ``[C]``.
        source: where the normalisation came from (for the log).

    .. versionadded:: 0.1
    """

    task: nn.Module
    kind: Kind
    mode: str
    in_channels: int
    outputs: int
    scale: int
    multiple: int
    mean: Tensor
    std: Tensor
    source: str

    @property
    def images(self) -> int:
        """Rasters the model takes (2 for change detection)."""
        return 2 if self.kind == 'change' else 1

    def to(self, device: torch.device) -> 'Predictor':
        """Move the task and statistics to *device*.

        Args:
            device: the target device.

        Returns:
            self
        """
        self.task.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        """Probabilities (or SR values) of a batch of raw tiles.

        Args:
            images: ``[B, T, C, H, W]`` raw values (T = 1, or 2 for change detection).

        Returns:
            ``[B, K, H * scale, W * scale]`` per pixel, or ``[B, K]`` per chip
            (classification), float32.
        """
        x = (images - self.mean[:, None, None]) / self.std[:, None, None]
        batch = {'image': x if self.kind == 'change' else x[:, 0]}
        out = self.task.predict_step(batch, 0)  # type: ignore[operator]
        if isinstance(out, dict):  # SemanticSegmentation returns bounds too
            out = out['probabilities']
        return out.float()


def load_predictor(
    path: str | os.PathLike[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: str | None = None,
    kind: Kind | None = None,
) -> Predictor:
    """Rebuild a fine-tuned task from its Lightning checkpoint, offline.

    Args:
        path: the ``.ckpt`` file.
        mean: per-band mean (or one value), overriding the checkpoint's.
        std: per-band std (or one value), overriding the checkpoint's.
        normalize: a named normalisation ('imagenet', 'unit', 'none') instead.
        kind: the task kind, where the checkpoint does not say (saved without
            ``torchgeo fit``, and segmentation and change detection cannot be told apart).

    Returns:
        The predictor on the CPU, in eval mode.

    Raises:
        SceneError: if the file is not a checkpoint of a task the scene engine applies,
            or its normalisation cannot be known and none is given.

    .. versionadded:: 0.1
    """
    path = os.fspath(path)
    checkpoint = _read(path)
    hparams = dict(checkpoint.get('hyper_parameters') or {})
    kind = kind or _kind(path, hparams, checkpoint['state_dict'])
    task = _load_task(path, TASKS[kind])
    channels = int(hparams.get('in_channels', 3))
    mu, sigma, source = _normalisation(path, checkpoint, channels, mean, std, normalize)
    return Predictor(
        task=task.eval(),
        kind=kind,
        mode=str(hparams.get('task', 'regression')),
        in_channels=channels,
        outputs=_outputs(kind, hparams),
        scale=int(hparams.get('scale', 1)) if kind == 'super_resolution' else 1,
        multiple=1 if hparams.get('model') == 'fcn' else 32,
        mean=mu,
        std=sigma,
        source=source,
    )


def _read(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise SceneError(
            f'{path}: no such file; expected a Lightning checkpoint (.ckpt)'
        )
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001  (any unpickling error: name the file)
        raise SceneError(
            f'{path}: cannot be read as a Lightning checkpoint ({type(error).__name__}: '
            f'{str(error).splitlines()[0][:200]}); expected the .ckpt of a fine-tuned task'
        ) from None
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise SceneError(
            f'{path}: is not a Lightning checkpoint (no state_dict); expected the .ckpt '
            'of a fine-tuned SemanticSegmentation, ChangeDetection, Classification or '
            'SuperResolution task (for backbone weights use `torchgeo-gfm embed`)'
        )
    return checkpoint


def _kind(path: str, hparams: dict[str, Any], state_dict: dict[str, Tensor]) -> Kind:
    """Which task wrote the checkpoint: its class path, else its arguments."""
    class_path = hparams.get('_class_path')
    if class_path:
        cls = _import(class_path)
        for kind, base in TASKS.items():
            if isinstance(cls, type) and issubclass(cls, base):
                return kind
        raise SceneError(
            f'{path}: is a checkpoint of {class_path}; the scene engine applies '
            'SemanticSegmentation, ChangeDetection, Classification (multi-label too) '
            'and SuperResolution tasks'
        )
    if {'scale', 'out_channels', 'backbone'} <= hparams.keys():
        return 'super_resolution'
    if 'model' in hparams and 'backbone' not in hparams and 'task' in hparams:
        return 'classification'
    if {'model', 'backbone', 'task'} <= hparams.keys():
        model = str(hparams['model'])
        if model.startswith('fcsiam') or model == 'changevit':
            return 'change'
        return (
            'change'
            if _first_conv_in(state_dict) == 2 * hparams.get('in_channels', 3)
            else 'segmentation'
        )
    raise SceneError(
        f'{path}: its hyper_parameters ({sorted(hparams)[:8]}) are not those of a '
        'TorchGeo SemanticSegmentation, ChangeDetection, Classification or a '
        'torchgeo_gfm SuperResolution task; pass the checkpoint of one of them'
    )


def _first_conv_in(state_dict: dict[str, Tensor]) -> int | None:
    """Input channels of the first 4-D weight (the stem)."""
    for value in state_dict.values():
        if value.ndim == 4:
            return int(value.shape[1])
    return None


def _import(class_path: str) -> object:
    module, _, name = class_path.rpartition('.')
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise SceneError(
            f'{class_path}: named by the checkpoint, cannot be imported; install the '
            'package that defines it'
        ) from None


def _load_task(path: str, cls: type[nn.Module]) -> nn.Module:
    # weights=None: every weight comes from the checkpoint, nothing is downloaded
    try:
        return cls.load_from_checkpoint(  # type: ignore[attr-defined]
            path, map_location='cpu', weights_only=True, weights=None
        )
    except Exception as error:  # noqa: BLE001  (the task's own error, with the file)
        raise SceneError(
            f'{path}: cannot be rebuilt as a {cls.__name__} ({type(error).__name__}: '
            f'{str(error).splitlines()[0][:300]})'
        ) from None


def _outputs(kind: Kind, hparams: dict[str, Any]) -> int:
    if kind == 'super_resolution':
        return int(hparams['out_channels'])
    if hparams.get('task') == 'binary':
        return 1
    return int(hparams.get('num_classes') or hparams.get('num_labels') or 1)


def _normalisation(
    path: str,
    checkpoint: dict[str, Any],
    channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    normalize: str | None,
) -> tuple[Tensor, Tensor, str]:
    """Mean and std per band: given, named, or the training datamodule's."""
    if (mean is None) != (std is None):
        raise SceneError('--mean and --std go together: pass both, or neither')
    if mean is not None and std is not None:
        pair, source = (mean, std), 'given --mean/--std'
    elif normalize is not None:
        if normalize not in NAMED:
            raise SceneError(
                f'--normalize {normalize!r}: expected one of {sorted(NAMED)}'
            )
        pair, source = NAMED[normalize], f'--normalize {normalize}'
    else:
        pair, source = _from_datamodule(path, checkpoint)
    return (
        _per_band(path, pair[0], channels, 'mean'),
        _per_band(path, pair[1], channels, 'std'),
        source,
    )


def _from_datamodule(
    path: str, checkpoint: dict[str, Any]
) -> tuple[tuple[Sequence[float], Sequence[float]], str]:
    hparams = dict(checkpoint.get('datamodule_hyper_parameters') or {})
    hint = (
        'pass the statistics the model was trained with: --mean M1,M2,.. --std S1,S2,.. '
        "(on the raster's own scale), or --normalize imagenet (torchgeo_gfm datamodules: "
        'ImageNet mean/std on 0-255 data) or --normalize unit (TorchGeo default: / 255)'
    )
    if 'mean' in hparams and 'std' in hparams:  # e.g. GeoPileDataModule
        return (hparams['mean'], hparams['std']), 'datamodule hyper_parameters'
    class_path = hparams.pop('_class_path', None)
    if not class_path:
        raise SceneError(
            f'{path}: does not record the normalisation it was trained with (no datamodule '
            f'class in the checkpoint; train with `torchgeo fit` to record it); {hint}'
        )
    cls = _import(class_path)
    if not (isinstance(cls, type) and issubclass(cls, LightningDataModule)):
        raise SceneError(
            f'{path}: datamodule {class_path} is not a LightningDataModule; {hint}'
        )
    hparams.pop('_instantiator', None)
    try:
        datamodule = cls(**hparams)  # TorchGeo datamodules read no data in __init__
        stats = (_values(datamodule.mean), _values(datamodule.std))  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001  (a datamodule that needs more than its hparams)
        raise SceneError(
            f'{path}: the normalisation of its datamodule {class_path} cannot be '
            f'recovered ({type(error).__name__}: {error}); {hint}'
        ) from None
    return stats, f'{class_path}.mean/std'


def _values(x: object) -> list[float]:
    return [float(v) for v in torch.as_tensor(x).flatten()]


def _per_band(path: str, values: Sequence[float], channels: int, name: str) -> Tensor:
    t = torch.as_tensor(list(values), dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.repeat(channels)
    if t.numel() == 2 * channels:  # change-detection datamodules repeat them per date
        t = t[:channels]
    if t.numel() != channels:
        raise SceneError(
            f'{path}: {name} has {t.numel()} values, the model takes {channels} bands; '
            f'pass --{name} with {channels} values (or one)'
        )
    if name == 'std' and bool((t <= 0).any()):
        raise SceneError(f'--std {t.tolist()}: every value must be > 0')
    return t
