# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""A fine-tuned checkpoint, rebuilt offline, with the normalisation it was trained with.

The file is read once, with ``torch.load(weights_only=True)`` (nothing in it runs), by
:func:`read_checkpoint_file`. What the checkpoint is comes from the metadata this
package's tasks write (and TorchGeo's, trained with the shipped configs:
:class:`~torchgeo_gfm.tasks.InferenceMetadata`): kind, mode, task class, bands, the
datamodule's per-band mean and std, class names, outputs, scale and size multiple. The
task is rebuilt from the same dict: ``TaskClass(**hyper_parameters, weights=None)``
(nothing is downloaded), then its ``state_dict`` is loaded strictly.

Checkpoints without metadata (TorchGeo's tasks trained without the callback) fall back
to what Lightning recorded: the kind from ``_class_path`` (``torchgeo fit``) or the
hyper-parameter names, and the normalisation from the datamodule's hyper-parameters
(``datamodule_hyper_parameters``, for datamodules that call ``save_hyperparameters()``)
or the ``config.yaml`` that LightningCLI wrote to the run's log folder (the parent of
``checkpoints/``), used only when its model is the checkpoint's; the datamodule is
rebuilt from its arguments (a TorchGeo datamodule reads no data in ``__init__``) and its
``mean``/``std`` are read. Where that is impossible the checkpoint is refused unless the
caller gives ``mean``/``std`` (``--mean/--std``) or a named normalisation
(``--normalize imagenet`` for our datamodules' ImageNet statistics on 0-255 data,
``--normalize unit`` for TorchGeo's default division by 255).

Only classes under ``torchgeo.`` and ``torchgeo_gfm.`` are ever imported for the class
paths a checkpoint names (task and datamodule); more packages are trusted with the
``trusted`` argument of :func:`load_predictor` or the :data:`TRUSTED_ENV` environment
variable (comma-separated module names). Any other class path is refused before import.

.. versionadded:: 0.1
"""

import argparse
import importlib
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch import Tensor, nn

from .._utils import plain
from ..models.checkpoint import GFMCheckpointError, read_checkpoint, sniff_format
from ..tasks.inference import (
    INFERENCE_KEY,
    INFERENCE_VERSION,
    Kind,
    inference_metadata,
    task_classes,
    task_kind,
)
from .errors import SceneError

#: task classes the scene engine applies, most specific first
TASKS: dict[Kind, type[nn.Module]] = task_classes()

#: packages whose classes a checkpoint may name (the task's, the datamodule's)
TRUSTED_MODULES = ('torchgeo', 'torchgeo_gfm')
#: environment variable naming more trusted packages, comma-separated
TRUSTED_ENV = 'TORCHGEO_GFM_TRUSTED_MODULES'

#: named normalisations (mean, std per band, on the data's own scale)
NAMED = {
    # our datamodules: ImageNet statistics on 0-255 data (torchgeo_gfm.datamodules.utils)
    'imagenet': ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    # TorchGeo's default (BaseDataModule): divide by 255
    'unit': ((0.0,), (255.0,)),
    'none': ((0.0,), (1.0,)),
}

_EXPECTED = (
    'the .ckpt of a fine-tuned SemanticSegmentation, ChangeDetection, Classification '
    'or SuperResolution task'
)
_NOT_FINE_TUNED = (
    'for GFM backbone weights (safetensors, gfm.pth, a GFM pretraining checkpoint after '
    '`torchgeo-gfm export`) use `torchgeo-gfm embed`'
)
_HINT = (
    'pass the statistics the model was trained with: --mean M1,M2,.. --std S1,S2,.. '
    "(on the raster's own scale), or --normalize imagenet (torchgeo_gfm datamodules: "
    'ImageNet mean/std on 0-255 data) or --normalize unit (TorchGeo default: / 255); '
    'checkpoints of runs with torchgeo_gfm.tasks.InferenceMetadata in trainer.callbacks '
    '(the shipped configs) record them'
)


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
    classes: list[str] | None = None
    bands: list[str | int] | None = None

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


@dataclass
class _Checkpoint:
    """The parts of a Lightning checkpoint the engine uses, checked."""

    path: str
    content: dict[str, Any]
    hparams: dict[str, Any]
    state_dict: dict[str, Tensor]
    meta: dict[str, Any] | None


def load_predictor(
    path: str | os.PathLike[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: str | None = None,
    kind: Kind | None = None,
    *,
    trusted: Sequence[str] = (),
    checkpoint: Mapping[str, Any] | None = None,
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
            ``torchgeo`` and ``torchgeo_gfm``, and those in :data:`TRUSTED_ENV`).
        checkpoint: the file's contents, if already read by :func:`read_checkpoint_file`
            (the file is then not read again).

    Returns:
        The predictor on the CPU, in eval mode.

    Raises:
        SceneError: if the file is not a checkpoint of a task the scene engine applies,
            its weights or statistics are not finite, it names a class outside the
            trusted packages, or its normalisation cannot be known and none is given.

    .. versionadded:: 0.1
    """
    path = os.fspath(path)
    content = read_checkpoint_file(path) if checkpoint is None else checkpoint
    ckpt = _parse(path, content)
    modules = trusted_modules(trusted)
    kind, cls = _kind_and_class(ckpt, kind, modules)
    channels = _in_channels(ckpt)
    task = _build(ckpt, cls)
    mu, sigma, source = _normalisation(ckpt, channels, mean, std, normalize, modules)
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
    )


def read_checkpoint_file(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint once, with ``torch.load(weights_only=True)``; nothing in it runs.

    Args:
        path: the file.

    Returns:
        What the torch file holds (a Lightning checkpoint is a dict).

    Raises:
        SceneError: if the file is missing, a folder, a safetensors file (backbone
            weights), empty, truncated, not a torch file, or asks to run code.

    .. versionadded:: 0.1
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = 'is a folder' if os.path.isdir(path) else 'no such file'
        raise SceneError(f'{path}: {what}; expected {_EXPECTED}')
    if sniff_format(path) == 'safetensors':
        raise SceneError(
            f'{path}: is a safetensors weights file, not a Lightning checkpoint; '
            f'expected {_EXPECTED} ({_NOT_FINE_TUNED})'
        )
    try:
        return read_checkpoint(path, _EXPECTED)
    except (GFMCheckpointError, OSError) as error:
        reason = str(error).removeprefix(f'{path}: ').removeprefix(f'{path} ')
        raise SceneError(
            f'{path}: cannot be read as a Lightning checkpoint: {reason}'
        ) from None


def is_lightning_checkpoint(content: object) -> bool:
    """Whether what :func:`read_checkpoint_file` returned is a Lightning checkpoint.

    Args:
        content: the file's contents.

    Returns:
        True for a dict with ``state_dict`` and ``hyper_parameters``.

    .. versionadded:: 0.1
    """
    return (
        isinstance(content, Mapping)
        and 'state_dict' in content
        and 'hyper_parameters' in content
    )


def trusted_modules(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Packages whose classes a checkpoint may name, and so may be imported.

    Args:
        extra: more package or module names (e.g. ``('mypackage',)``).

    Returns:
        ``torchgeo``, ``torchgeo_gfm``, *extra* and those in :data:`TRUSTED_ENV`.

    .. versionadded:: 0.1
    """
    env = os.environ.get(TRUSTED_ENV, '').split(',')
    names = [*TRUSTED_MODULES, *extra, *env]
    return tuple(dict.fromkeys(n.strip().strip('.') for n in names if n.strip()))


def per_band(
    values: object, channels: int, name: str, *, std: bool | None = None
) -> Tensor:
    """Per-band statistics, checked: one value per band, finite, std normal and > 0.

    One value is repeated for every band; ``2 * channels`` equal halves (change
    detection datamodules repeat them per date) are taken once.

    Args:
        values: numbers (a sequence, a tensor, an array).
        channels: bands of the input.
        name: what they are, for messages, ending in ``mean`` or ``std`` (e.g.
            ``'--std'``, ``'model.ckpt: metadata mean'``).
        std: whether they are a std; default: *name* ends in ``std``.

    Returns:
        ``[channels]`` float32.

    Raises:
        SceneError: for values that are not numbers, of another length, non-finite (or
            beyond float32), or for a std that is not a normal float > 0 (zero,
            negative, subnormal).

    .. versionadded:: 0.1
    """
    is_std = name.endswith('std') if std is None else std
    remedy = (
        f'pass {name.split()[0]} with {channels} values (or one)'
        if name.startswith('--')
        else 'pass --mean and --std with the statistics the model was trained with'
    )
    wanted = f'{channels} finite values (or one){", each > 0" if is_std else ""}'
    try:
        t = torch.as_tensor(values, dtype=torch.float64).flatten().float()
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise SceneError(
            f'{name} {_short(values)}: not numbers; expected {wanted}; {remedy}'
        ) from None
    half = t[:channels]
    if t.numel() == 2 * channels and torch.equal(half, t[channels:]):
        t = half
    if t.numel() == 1:
        t = t.repeat(channels)
    if t.numel() != channels:
        raise SceneError(
            f'{name} {_short(t.tolist())}: {t.numel()} values, the model takes '
            f'{channels} bands; expected {wanted}; {remedy}'
        )
    bad = ~torch.isfinite(t)
    if is_std:
        bad |= t < torch.finfo(torch.float32).tiny  # zero, negative or subnormal
    if bool(bad.any()):
        which = bad.nonzero().flatten().tolist()
        raise SceneError(
            f'{name} {_short(t.tolist())}: band(s) {which} are '
            f'{"not normal floats > 0" if is_std else "not finite"}; expected {wanted}; '
            f'{remedy}'
        )
    return t


def _short(values: object) -> str:
    text = repr(values)
    return text if len(text) <= 120 else f'{text[:117]}...'


def _parse(path: str, content: object) -> _Checkpoint:
    """Check the structure of a Lightning checkpoint and its weights."""
    if not isinstance(content, Mapping):
        raise SceneError(
            f'{path}: holds a {type(content).__name__}, not a Lightning checkpoint (a '
            f'dict with state_dict and hyper_parameters); expected {_EXPECTED}'
        )
    state_dict = content.get('state_dict')
    if not isinstance(state_dict, Mapping) or not state_dict:
        found = sorted(map(str, content))[:8]
        raise SceneError(
            f'{path}: is not a Lightning checkpoint (no state_dict; keys {found}); '
            f'expected {_EXPECTED} ({_NOT_FINE_TUNED})'
        )
    hparams = content.get('hyper_parameters', {})
    if not isinstance(hparams, Mapping) or not all(isinstance(k, str) for k in hparams):
        raise SceneError(
            f'{path}: its hyper_parameters are a {type(hparams).__name__}, not a dict of '
            f"the task's arguments; expected {_EXPECTED}"
        )
    _check_weights(path, state_dict)
    meta = _metadata(path, content.get(INFERENCE_KEY))
    return _Checkpoint(path, dict(content), dict(hparams), dict(state_dict), meta)


def _check_weights(path: str, state_dict: Mapping[Any, Any]) -> None:
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise SceneError(
                f'{path}: state_dict[{key!r}] is a {type(value).__name__}, not a tensor; '
                'the file is damaged or not a checkpoint; expected ' + _EXPECTED
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise SceneError(
                f'{path}: weight {key!r} holds NaN or Inf (the first such tensor); did '
                'the training diverge? Use an earlier checkpoint of the run'
            )


#: metadata fields: (type, whether None is allowed)
_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    'version': (int, False),
    'kind': (str, False),
    'mode': (str, False),
    'task': (str, False),
    'in_channels': (int, False),
    'outputs': (int, False),
    'scale': (int, False),
    'multiple': (int, False),
    'bands': (list, True),
    'mean': (list, True),
    'std': (list, True),
    'classes': (list, True),
}


def _metadata(path: str, meta: object) -> dict[str, Any] | None:
    """The checkpoint's inference metadata, its types checked; None if absent."""
    if meta is None:
        return None
    where = f'{path}: {INFERENCE_KEY}'
    if not isinstance(meta, Mapping):
        raise SceneError(f'{where} is a {type(meta).__name__}, not a dict; {_REWRITE}')
    for name, (types, optional) in _FIELDS.items():
        value = meta.get(name)
        if value is None and optional:
            continue
        ok = isinstance(value, types)
        if ok and types is int:  # bool is an int; counts are positive
            ok = not isinstance(value, bool) and value > 0  # type: ignore[operator]
        if not ok:
            raise SceneError(
                f'{where}[{name!r}] is {_short(value)}: expected a '
                f'{"positive int" if types is int else types.__name__}; {_REWRITE}'  # type: ignore[union-attr]
            )
    if meta['version'] > INFERENCE_VERSION:
        raise SceneError(
            f'{where} has version {meta["version"]}, newer than this torchgeo-gfm reads '
            f'({INFERENCE_VERSION}); upgrade torchgeo-gfm'
        )
    if meta['kind'] not in get_args(Kind):
        raise SceneError(
            f"{where}['kind'] is {meta['kind']!r}: expected one of {get_args(Kind)}; "
            + _REWRITE
        )
    classes = meta.get('classes')
    if classes is not None and not all(isinstance(c, str) for c in classes):
        raise SceneError(f"{where}['classes'] holds non-strings; {_REWRITE}")
    return dict(meta)


_REWRITE = 'the metadata is damaged: save the checkpoint again with this torchgeo-gfm'


def _kind_and_class(
    ckpt: _Checkpoint, kind: Kind | None, trusted: Sequence[str]
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
        cls = _import(path, class_path, trusted)
        found = task_kind(cls) if isinstance(cls, type) else None
        if found is None:
            raise SceneError(
                f'{path}: is a checkpoint of {class_path}; the scene engine applies '
                'SemanticSegmentation, ChangeDetection, Classification (multi-label too) '
                f'and SuperResolution tasks ({_NOT_FINE_TUNED})'
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
    cls = _import(path, class_path, trusted)
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
        f'torchgeo_gfm SuperResolution task; expected {_EXPECTED} ({_NOT_FINE_TUNED})'
    )


def _first_conv_in(state_dict: dict[str, Tensor]) -> int | None:
    """Input channels of the first 4-D weight (the stem)."""
    for value in state_dict.values():
        if value.ndim == 4:
            return int(value.shape[1])
    return None


def _import(path: str, class_path: object, trusted: Sequence[str]) -> object:
    """Import a class the checkpoint names, only from a trusted package."""
    text = str(class_path)
    parts = text.split('.') if isinstance(class_path, str) else []
    valid = len(parts) >= 2 and all(
        p.isidentifier() and not p.startswith('__') for p in parts
    )
    if not valid or not any(text.startswith(f'{m}.') for m in trusted):
        raise SceneError(
            f'{path}: names the class {_short(class_path)}, outside the trusted packages '
            f'{list(trusted)}; it was not imported (importing runs its code). If you '
            f'trust it, add its package to {TRUSTED_ENV} (comma-separated) or to '
            '`trusted=`'
        )
    module, _, name = text.rpartition('.')
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise SceneError(
            f'{path}: names the class {text}, which cannot be imported; install the '
            'package that defines it'
        ) from None


def _in_channels(ckpt: _Checkpoint) -> int:
    given = ckpt.hparams.get('in_channels', 3)
    meta = ckpt.meta
    if meta is not None and meta['in_channels'] != given:
        raise SceneError(
            f'{ckpt.path}: its metadata says {meta["in_channels"]} bands, its '
            f'hyper_parameters {given!r}; {_REWRITE}'
        )
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise SceneError(
            f'{ckpt.path}: in_channels {given!r} in its hyper_parameters is not a '
            f'positive int; expected {_EXPECTED}'
        )
    return given


def _build(ckpt: _Checkpoint, cls: type[nn.Module]) -> LightningModule:
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
            f'{_first_line(error)})'
        ) from None
    return task


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0][:300] if lines else ''


def _normalisation(
    ckpt: _Checkpoint,
    channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    normalize: str | None,
    trusted: Sequence[str],
) -> tuple[Tensor, Tensor, str]:
    """Mean and std per band: given, named, recorded, or the training datamodule's."""
    path = ckpt.path
    if (mean is None) != (std is None):
        raise SceneError('--mean and --std go together: pass both, or neither')
    names = ('--mean', '--std')
    pair: tuple[object, object]
    if mean is not None and std is not None:
        pair, source = (mean, std), 'given --mean/--std'
    elif normalize is not None:
        if normalize not in NAMED:
            raise SceneError(
                f'--normalize {normalize!r}: expected one of {sorted(NAMED)}'
            )
        pair, source = NAMED[normalize], f'--normalize {normalize}'
    elif ckpt.meta is not None and ckpt.meta.get('mean') is not None:
        pair = (ckpt.meta['mean'], ckpt.meta['std'])
        names = (f'{path}: {INFERENCE_KEY} mean', f'{path}: {INFERENCE_KEY} std')
        datamodule = ckpt.meta.get('datamodule')
        source = f'checkpoint metadata ({datamodule or "datamodule"}.mean/std)'
    else:
        pair, source = _from_datamodule(ckpt, trusted)
        names = (f'{path}: {source} mean', f'{path}: {source} std')
    return (
        per_band(pair[0], channels, names[0]),
        per_band(pair[1], channels, names[1]),
        source,
    )


def _from_datamodule(
    ckpt: _Checkpoint, trusted: Sequence[str]
) -> tuple[tuple[object, object], str]:
    path = ckpt.path
    hparams = ckpt.content.get('datamodule_hyper_parameters') or {}
    if not isinstance(hparams, Mapping):
        raise SceneError(
            f'{path}: its datamodule_hyper_parameters are a {type(hparams).__name__}, '
            f'not a dict; {_HINT}'
        )
    hparams = dict(hparams)
    if 'mean' in hparams and 'std' in hparams:  # e.g. GeoPileDataModule
        return (hparams['mean'], hparams['std']), 'datamodule hyper_parameters'
    class_path = hparams.pop('_class_path', None)
    config = None
    if not class_path:
        # datamodules without save_hyperparameters() (TorchGeo's, ours): `torchgeo fit`
        # records them only in the run's config.yaml
        found = _run_config(path, ckpt.hparams)
        if found is None:
            raise SceneError(
                f'{path}: does not record the normalisation it was trained with (no '
                'inference metadata, no datamodule in the checkpoint, and no config.yaml '
                f'of its `torchgeo fit` run in {Path(path).parent.parent} or '
                f"{Path(path).parent} with the checkpoint's model); {_HINT}"
            )
        config, class_path, hparams = found
    cls = _import(config or path, class_path, trusted)
    if not (isinstance(cls, type) and issubclass(cls, LightningDataModule)):
        raise SceneError(
            f'{config or path}: datamodule {class_path} is not a LightningDataModule; '
            + _HINT
        )
    hparams = {k: v for k, v in hparams.items() if isinstance(k, str)}
    hparams.pop('_instantiator', None)
    try:
        # TorchGeo datamodules read no data in __init__
        datamodule: Any = cls(**hparams)
        stats = (datamodule.mean, datamodule.std)
    except Exception as error:  # noqa: BLE001  (a datamodule that needs more than its hparams)
        raise SceneError(
            f'{config or path}: the normalisation of its datamodule {class_path} cannot '
            f'be recovered ({type(error).__name__}: {_first_line(error)}); {_HINT}'
        ) from None
    return stats, f'{class_path}.mean/std' + (f' (from {config})' if config else '')


#: where LightningCLI's SaveConfigCallback (``torchgeo fit``) leaves the run's config,
#: from a checkpoint's folder: the log folder above ``checkpoints/``, or beside it
_CONFIG_PLACES = ('..', '.')


def _run_config(
    path: str, model_hparams: dict[str, Any]
) -> tuple[str, str, dict[str, Any]] | None:
    """The datamodule of the ``config.yaml`` saved by the run that wrote *path*.

    Args:
        path: the checkpoint.
        model_hparams: its ``hyper_parameters``.

    Returns:
        (config file, datamodule class path, its arguments), or None if no config.yaml
        beside the run names a datamodule and the checkpoint's model.
    """
    import yaml

    folder = Path(path).resolve().parent
    for place in _CONFIG_PLACES:
        candidate = (folder / place / 'config.yaml').resolve()
        try:
            config = yaml.safe_load(candidate.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(config, dict):
            continue
        model, data = config.get('model'), config.get('data')
        if not (isinstance(data, dict) and isinstance(data.get('class_path'), str)):
            continue
        # `fit` overwrites config.yaml where runs share a folder (no logger): use it only
        # if its model is the checkpoint's
        if not (isinstance(model, dict) and _same_model(model, model_hparams)):
            continue
        args = [data.get('init_args') or {}, data.get('dict_kwargs') or {}]
        if not all(isinstance(a, dict) for a in args):
            continue
        return str(candidate), data['class_path'], {**args[0], **args[1]}
    return None


def _same_model(model: dict[str, Any], hparams: dict[str, Any]) -> bool:
    """Whether a config's ``model`` section describes the checkpoint's task."""
    class_path = hparams.get('_class_path')
    if class_path and model.get('class_path') != class_path:
        return False
    args = model.get('init_args') or {}
    if not isinstance(args, dict):
        return False
    shared = [k for k in hparams if k in args and not k.startswith('_')]
    return bool(shared) and all(plain(args[k]) == plain(hparams[k]) for k in shared)


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options ``predict`` and ``embed`` share: bands, batch, device, outputs, stats.

    Args:
        parser: the sub-command's parser.

    .. versionadded:: 0.1
    """
    parser.add_argument(
        '--bands', help="1-based bands to read, e.g. '3,2,1' (default: all)"
    )
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
    )
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing outputs'
    )
    parser.add_argument(
        '--mean', type=_floats, help="per-band mean, e.g. '123.7,116.3,103.5'"
    )
    parser.add_argument('--std', type=_floats, help='per-band std (with --mean)')
    parser.add_argument(
        '--precision',
        choices=('fp32', 'bf16', 'auto'),
        default='fp32',
        help='fp32 (default: the same output on every machine), bf16, or auto (bf16 '
        'where the hardware computes it natively); recorded in the output',
    )


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected finite numbers separated by commas'
        )
    return values
