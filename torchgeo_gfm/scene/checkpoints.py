# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading a Lightning checkpoint once, safely, and trusting only the classes it may name.

The file is read once, with ``torch.load(weights_only=True)`` (nothing in it runs), by
:func:`read_checkpoint_file`; :func:`parse_checkpoint` checks its structure, weights and
inference metadata (:class:`~torchgeo_gfm.tasks.InferenceMetadata`). Only classes under
``torchgeo.`` and ``torchgeo_gfm.`` are ever imported for the class paths a checkpoint
names (task and datamodule); more packages are trusted with the ``trusted`` argument of
:func:`~torchgeo_gfm.scene.load_predictor` or the :data:`TRUSTED_ENV` environment variable
(comma-separated module names). Any other class path is refused before import
(:func:`import_trusted`).

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.predictor`.
"""

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import torch
from torch import Tensor

from ..models.checkpoint import GFMCheckpointError, read_checkpoint, sniff_format
from ..tasks.inference import INFERENCE_KEY, INFERENCE_VERSION, Kind
from .errors import SceneError, short

#: packages whose classes a checkpoint may name (the task's, the datamodule's)
TRUSTED_MODULES = ('torchgeo', 'torchgeo_gfm')
#: environment variable naming more trusted packages, comma-separated
TRUSTED_ENV = 'TORCHGEO_GFM_TRUSTED_MODULES'

#: what the scene engine applies, for messages
EXPECTED = (
    'the .ckpt of a fine-tuned SemanticSegmentation, ChangeDetection, Classification '
    'or SuperResolution task'
)
#: where backbone weights go instead, for messages
NOT_FINE_TUNED = (
    'for GFM backbone weights (safetensors, gfm.pth, a GFM pretraining checkpoint after '
    '`torchgeo-gfm export`) use `torchgeo-gfm embed`'
)
#: the remedy for damaged inference metadata
REWRITE = 'the metadata is damaged: save the checkpoint again with this torchgeo-gfm'


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
        raise SceneError(f'{path}: {what}; expected {EXPECTED}')
    if sniff_format(path) == 'safetensors':
        raise SceneError(
            f'{path}: is a safetensors weights file, not a Lightning checkpoint; '
            f'expected {EXPECTED} ({NOT_FINE_TUNED})'
        )
    try:
        return read_checkpoint(path, EXPECTED)
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


@dataclass
class Checkpoint:
    """The parts of a Lightning checkpoint the engine uses, checked.

    Attributes:
        path: the file, for messages.
        content: everything it holds.
        hparams: the task's ``hyper_parameters``.
        state_dict: the task's weights (finite).
        meta: its inference metadata (types checked), None if it records none.

    .. versionadded:: 0.2
    """

    path: str
    content: dict[str, Any]
    hparams: dict[str, Any]
    state_dict: dict[str, Tensor]
    meta: dict[str, Any] | None


def parse_checkpoint(path: str, content: object) -> Checkpoint:
    """Check the structure of a Lightning checkpoint, its weights and its metadata.

    Args:
        path: the file, for messages.
        content: what :func:`read_checkpoint_file` returned.

    Returns:
        The checked parts.

    Raises:
        SceneError: for anything but a Lightning checkpoint with finite tensor weights
            and well-typed inference metadata (or none).

    .. versionadded:: 0.2
    """
    if not isinstance(content, Mapping):
        raise SceneError(
            f'{path}: holds a {type(content).__name__}, not a Lightning checkpoint (a '
            f'dict with state_dict and hyper_parameters); expected {EXPECTED}'
        )
    state_dict = content.get('state_dict')
    if not isinstance(state_dict, Mapping) or not state_dict:
        found = sorted(map(str, content))[:8]
        raise SceneError(
            f'{path}: is not a Lightning checkpoint (no state_dict; keys {found}); '
            f'expected {EXPECTED} ({NOT_FINE_TUNED})'
        )
    hparams = content.get('hyper_parameters', {})
    if not isinstance(hparams, Mapping) or not all(isinstance(k, str) for k in hparams):
        raise SceneError(
            f'{path}: its hyper_parameters are a {type(hparams).__name__}, not a dict of '
            f"the task's arguments; expected {EXPECTED}"
        )
    _check_weights(path, state_dict)
    meta = _metadata(path, content.get(INFERENCE_KEY))
    return Checkpoint(path, dict(content), dict(hparams), dict(state_dict), meta)


def _check_weights(path: str, state_dict: Mapping[Any, Any]) -> None:
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise SceneError(
                f'{path}: state_dict[{key!r}] is a {type(value).__name__}, not a tensor; '
                'the file is damaged or not a checkpoint; expected ' + EXPECTED
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise SceneError(
                f'{path}: weight {key!r} holds NaN or Inf (the first such tensor); did '
                'the training diverge? Use an earlier checkpoint of the run'
            )


#: inference metadata fields by type, in the order they are checked; the lists may be
#: None (not recorded)
_FIELDS: tuple[tuple[tuple[str, ...], type], ...] = (
    (('version',), int),
    (('kind', 'mode', 'task'), str),
    (('in_channels', 'outputs', 'scale', 'multiple'), int),
    (('bands', 'mean', 'std', 'classes'), list),
)


def _metadata(path: str, meta: object) -> dict[str, Any] | None:
    """The checkpoint's inference metadata, its types checked; None if absent."""
    if meta is None:
        return None
    where = f'{path}: {INFERENCE_KEY}'
    if not isinstance(meta, Mapping):
        raise SceneError(f'{where} is a {type(meta).__name__}, not a dict; {REWRITE}')
    for name, kind in ((n, kind) for names, kind in _FIELDS for n in names):
        value = meta.get(name)
        if value is None and kind is list:
            continue
        ok = isinstance(value, kind)
        if isinstance(value, int):  # bool is an int; counts are positive
            ok = ok and not isinstance(value, bool) and value > 0
        if not ok:
            raise SceneError(
                f'{where}[{name!r}] is {short(value)}: expected a '
                f'{"positive int" if kind is int else kind.__name__}; {REWRITE}'
            )
    if meta['version'] > INFERENCE_VERSION:
        raise SceneError(
            f'{where} has version {meta["version"]}, newer than this torchgeo-gfm reads '
            f'({INFERENCE_VERSION}); upgrade torchgeo-gfm'
        )
    if meta['kind'] not in get_args(Kind):
        raise SceneError(
            f"{where}['kind'] is {meta['kind']!r}: expected one of {get_args(Kind)}; "
            + REWRITE
        )
    classes = meta.get('classes')
    if classes is not None and not all(isinstance(c, str) for c in classes):
        raise SceneError(f"{where}['classes'] holds non-strings; {REWRITE}")
    sensor = meta.get('sensor')  # 0.2: Sensor.to_dict(), read by normalisation
    if sensor is not None and not isinstance(sensor, Mapping):
        raise SceneError(
            f"{where}['sensor'] is {short(sensor)}: expected a dict; {REWRITE}"
        )
    return dict(meta)


def import_trusted(path: str, class_path: object, trusted: Sequence[str]) -> object:
    """Import a class the checkpoint names, only from a trusted package.

    Args:
        path: the checkpoint (or the config naming the class), for messages.
        class_path: ``package.module.Class``, as recorded.
        trusted: packages whose modules may be imported (:func:`trusted_modules`).

    Returns:
        What the module defines under that name.

    Raises:
        SceneError: for a class path outside *trusted* (not imported: importing runs
            its code) or one that cannot be imported.

    .. versionadded:: 0.2
    """
    text = str(class_path)
    parts = text.split('.') if isinstance(class_path, str) else []
    valid = len(parts) >= 2 and all(
        p.isidentifier() and not p.startswith('__') for p in parts
    )
    if not valid or not any(text.startswith(f'{m}.') for m in trusted):
        raise SceneError(
            f'{path}: names the class {short(class_path)}, outside the trusted packages '
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
