# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A fine-tuned checkpoint, rebuilt offline, with the normalisation it was trained with.

The file is read once and checked by :mod:`.checkpoints`. What the checkpoint is comes
from the metadata this package's tasks write (and TorchGeo's, trained with the shipped
configs: :class:`~torchgeo_gfm.tasks.InferenceMetadata`): kind, mode, task class, bands,
the datamodule's per-band mean and std, class names, outputs, scale and size multiple,
and the sensor of its inputs (0.2), whose statistics then normalise the raster.
The task is rebuilt from the same dict: ``TaskClass(**hyper_parameters, weights=None)``
(nothing is downloaded), then its ``state_dict`` is loaded strictly.

Checkpoints without metadata (TorchGeo's tasks trained without the callback) fall back
to what Lightning recorded: the kind from ``_class_path`` (``torchgeo fit``) or the
hyper-parameter names, and the normalisation as :mod:`.normalisation` finds it (the
datamodule's hyper-parameters or the run's ``config.yaml``). Where that is impossible the
checkpoint is refused unless the caller gives ``mean``/``std`` (``--mean/--std``) or a
named normalisation (``--normalize imagenet`` for our datamodules' ImageNet statistics
on 0-255 data, ``--normalize unit`` for TorchGeo's default division by 255).

Only classes under ``torchgeo.`` and ``torchgeo_gfm.`` (and the packages trusted with
``trusted`` or :data:`~torchgeo_gfm.scene.checkpoints.TRUSTED_ENV`) are ever imported for
the class paths a checkpoint names.

.. versionadded:: 0.1
"""

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from .._deprecated import moved
from ..sensors import Sensor
from ..tasks.inference import Kind, inference_metadata, task_classes, task_kind
from . import checkpoints
from .checkpoints import (
    EXPECTED,
    NOT_FINE_TUNED,
    REWRITE,
    Checkpoint,
    import_trusted,
    parse_checkpoint,
)
from .errors import SceneError, first_line
from .normalisation import SensorLike, choose_sensor, normalisation, recorded_sensor

#: task classes the scene engine applies, most specific first
TASKS: dict[Kind, type[nn.Module]] = task_classes()


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
        classes: class names, where the checkpoint records them.
        bands: band names (or 0-based indexes) of the training data, where recorded.
        sensor: the sensor of its inputs, where recorded (or given); rasters must have
            its bands.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor*.
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
    classes: list[str] | None = None
    bands: list[str | int] | None = None
    sensor: Sensor | None = None

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
    *,
    trusted: Sequence[str] = (),
    checkpoint: Mapping[str, Any] | None = None,
    sensor: SensorLike | None = None,
) -> Predictor:
    """Rebuild a fine-tuned task from its Lightning checkpoint, offline.

    Args:
        path: the ``.ckpt`` file.
        mean: per-band mean (or one value), overriding the checkpoint's.
        std: per-band std (or one value), overriding the checkpoint's.
        normalize: a named normalisation ('imagenet', 'unit', 'none') instead.
        kind: the task kind, where the checkpoint does not say (no metadata, saved
            without ``torchgeo fit``: segmentation and change detection look alike).
        trusted: more packages whose classes the checkpoint may name (besides
            ``torchgeo``, ``torchgeo_gfm`` and those in
            :data:`~.checkpoints.TRUSTED_ENV`).
        checkpoint: the file's contents, if already read (the file is then not read
            again), e.g. by :func:`~.checkpoints.read_checkpoint_file`.
        sensor: the sensor of the model's inputs (a shipped name such as ``'s2'``, a YAML
            file, a dict or a :class:`~torchgeo_gfm.sensors.Sensor`) for a checkpoint
            that records none; its statistics normalise the raster.

    Returns:
        The predictor on the CPU, in eval mode.

    Raises:
        SceneError: if the file is not a checkpoint of a task the scene engine applies,
            its weights or statistics are not finite, it names a class outside the
            trusted packages, its normalisation cannot be known and none is given, or
            *sensor* contradicts the recorded one or has another band count than the
            model.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Added *sensor*; the recorded sensor's statistics normalise.
    """
    path = os.fspath(path)
    content = (
        checkpoints.read_checkpoint_file(path) if checkpoint is None else checkpoint
    )
    ckpt = parse_checkpoint(path, content)
    modules = checkpoints.trusted_modules(trusted)
    kind, cls = _kind_and_class(ckpt, kind, modules)
    channels = _in_channels(ckpt)
    chosen = _sensor(ckpt, sensor, channels)
    task = _build(ckpt, cls)
    mu, sigma, source = normalisation(
        ckpt, channels, mean, std, normalize, modules, chosen
    )
    # what the checkpoint records, else what the rebuilt task says (as it would record)
    derived = inference_metadata(task) or {}
    meta = {**derived, **{k: v for k, v in (ckpt.meta or {}).items() if v is not None}}
    return Predictor(
        task=task.eval(),
        kind=kind,
        mode=str(meta['mode']),
        in_channels=channels,
        outputs=int(meta['outputs']),
        scale=int(meta['scale']),
        multiple=int(meta['multiple']),
        mean=mu,
        std=sigma,
        source=source,
        classes=meta.get('classes'),
        bands=meta.get('bands'),
        sensor=chosen,
    )


def _sensor(ckpt: Checkpoint, given: SensorLike | None, channels: int) -> Sensor | None:
    """The recorded sensor (or the one given), which must have the model's bands."""
    recorded = recorded_sensor(ckpt)
    sensor = choose_sensor(recorded, given, ckpt.path)
    if sensor is not None and sensor.num_bands != channels:
        what = 'records' if recorded is not None else 'is given (--sensor)'
        raise SceneError(
            f'{ckpt.path}: sensor {sensor.name} {what} with {sensor.num_bands} bands, '
            f'its model takes {channels}; '
            + (
                REWRITE
                if recorded is not None
                else f'pass a sensor of {channels} bands'
            )
        )
    return sensor


def _kind_and_class(
    ckpt: Checkpoint, kind: Kind | None, trusted: Sequence[str]
) -> tuple[Kind, type[nn.Module]]:
    """The task kind and class to rebuild: the metadata's, else guessed."""
    path, meta = ckpt.path, ckpt.meta
    if meta is not None:
        if kind is not None and kind != meta['kind']:
            raise SceneError(
                f'{path}: is a {meta["kind"]} checkpoint (its metadata says so), not '
                f'{kind}; drop the kind argument'
            )
        return meta['kind'], _task_class(path, meta['task'], meta['kind'], trusted)
    class_path = ckpt.hparams.get('_class_path')
    if class_path is not None:
        cls = import_trusted(path, class_path, trusted)
        found = task_kind(cls) if isinstance(cls, type) else None
        if found is None:
            raise SceneError(
                f'{path}: is a checkpoint of {class_path}; the scene engine applies '
                'SemanticSegmentation, ChangeDetection, Classification (multi-label too) '
                f'and SuperResolution tasks ({NOT_FINE_TUNED})'
            )
        kind = kind or found
        return kind, _task_class(path, class_path, kind, trusted)
    kind = kind or _guess_kind(path, ckpt.hparams, ckpt.state_dict)
    return kind, TASKS[kind]


def _task_class(
    path: str, class_path: object, kind: Kind, trusted: Sequence[str]
) -> type[nn.Module]:
    """The recorded task class, which must be one of *kind*.

    A subclass may build its model from arguments the base class ignores (the Finetune*
    tasks pass ``model_kwargs`` such as ``window_size`` to timm): rebuilt as the base
    class, its weights would not fit.
    """
    cls = import_trusted(path, class_path, trusted)
    if not (isinstance(cls, type) and issubclass(cls, TASKS[kind])):
        raise SceneError(
            f'{path}: names {class_path} as its task, which is not a '
            f'{TASKS[kind].__name__} ({kind}); the checkpoint is inconsistent'
        )
    return cls


def _guess_kind(
    path: str, hparams: dict[str, Any], state_dict: dict[str, Tensor]
) -> Kind:
    """Which task wrote a checkpoint without metadata or class path: its arguments."""
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
        f'torchgeo_gfm SuperResolution task; expected {EXPECTED} ({NOT_FINE_TUNED})'
    )


def _first_conv_in(state_dict: dict[str, Tensor]) -> int | None:
    """Input channels of the first 4-D weight (the stem)."""
    for value in state_dict.values():
        if value.ndim == 4:
            return int(value.shape[1])
    return None


def _in_channels(ckpt: Checkpoint) -> int:
    given = ckpt.hparams.get('in_channels', 3)
    meta = ckpt.meta
    if meta is not None and meta['in_channels'] != given:
        raise SceneError(
            f'{ckpt.path}: its metadata says {meta["in_channels"]} bands, its '
            f'hyper_parameters {given!r}; {REWRITE}'
        )
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise SceneError(
            f'{ckpt.path}: in_channels {given!r} in its hyper_parameters is not a '
            f'positive int; expected {EXPECTED}'
        )
    return given


def _build(ckpt: Checkpoint, cls: type[nn.Module]) -> LightningModule:
    """The task from the checkpoint's dict, as Lightning's ``load_from_checkpoint``.

    ``weights=None``: every weight comes from the checkpoint, nothing is downloaded.
    Lightning's private keys (``_class_path``, ``_instantiator``) are not arguments.
    """
    params = inspect.signature(cls.__init__).parameters
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {
        k: v
        for k, v in ckpt.hparams.items()
        if not k.startswith('_') and (open_kwargs or k in params)
    }
    if open_kwargs or 'weights' in params:
        kwargs['weights'] = None
    try:
        task: Any = cls(**kwargs)
        task.configure_model()
        task.on_load_checkpoint(ckpt.content)
        task.load_state_dict(ckpt.state_dict, strict=True)
    except Exception as error:  # noqa: BLE001  (the task's own error, with the file)
        raise SceneError(
            f'{ckpt.path}: cannot be rebuilt as a {cls.__name__} ({type(error).__name__}: '
            f'{first_line(error)})'
        ) from None
    return task


#: public names that moved in 0.2 -> their module (deprecated here, removed in 0.3)
_MOVED = {
    **dict.fromkeys(
        (
            'TRUSTED_ENV',
            'TRUSTED_MODULES',
            'is_lightning_checkpoint',
            'read_checkpoint_file',
            'trusted_modules',
        ),
        'checkpoints',
    ),
    **dict.fromkeys(('NAMED', 'per_band'), 'normalisation'),
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return moved(__name__, f'torchgeo_gfm.scene.{_MOVED[name]}')(name)
