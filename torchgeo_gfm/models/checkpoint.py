# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading the authors' GFM checkpoint safely, and the exported backbone format.

The authors' ``gfm.pth`` is a full training checkpoint of their SimMIM + distillation model:
a dict with ``model`` (``encoder.*`` the student and ``encoder.mask_token``, ``teacher.*``,
``decoder.0.*``, ``projector.*``, all in Microsoft Swin key names), ``optimizer``,
``lr_scheduler``, ``max_accuracy``, ``epoch``, ``amp`` and ``config``, a pickled
``yacs.config.CfgNode``. It is read with ``torch.load(weights_only=True)``: the config class is
allow-listed under its pickled name, bound to a stand-in that builds a plain ``OrderedDict``,
so nothing from the file is ever imported or called.

The exported format is a safetensors file of the student in timm ``gfm_swin_base`` key names,
with metadata saying what it is.

.. versionadded:: 0.1
"""

import os
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor

#: metadata ``format`` value of the files :func:`save_backbone` writes
BACKBONE_FORMAT = 'torchgeo-gfm-backbone'
#: version of that format
BACKBONE_FORMAT_VERSION = '1'

_UPSTREAM_KEYS = ('model', 'config')
_STUDENT_PROBE = 'encoder.patch_embed.proj.weight'
# buffers Microsoft's Swin saves but recomputes from the window size
_NON_PERSISTENT = ('relative_position_index', 'attn_mask')
_MS_DOWNSAMPLE = re.compile(r'^layers\.(\d+)\.downsample\.')


class GFMCheckpointError(ValueError):
    """A file is not the checkpoint or backbone file it was expected to be.

    The message names the file and what was expected.

    .. versionadded:: 0.1
    """


class _YacsCfgNode:
    """Stand-in for ``yacs.config.CfgNode`` when unpickling.

    ``CfgNode`` is a ``dict`` subclass; the weights-only unpickler fills only exact
    ``dict``/``OrderedDict`` instances, so the stand-in builds an ``OrderedDict`` (whose
    ``__dict__`` also takes yacs' bookkeeping attributes). No yacs code runs.
    """

    def __new__(cls, *args: Any) -> 'OrderedDict[str, Any]':  # type: ignore[misc]
        """Return an empty ``OrderedDict`` for the unpickler to fill."""
        return OrderedDict()


def _plain(obj: Any) -> Any:
    """Turn the unpickled config tree into plain dicts (drops yacs bookkeeping)."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _torch_load(path: str) -> Any:
    """``torch.load(weights_only=True)`` with only the yacs config class allow-listed."""
    with torch.serialization.safe_globals([(_YacsCfgNode, 'yacs.config.CfgNode')]):
        return torch.load(path, map_location='cpu', weights_only=True, mmap=False)


def _check_file(path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such file (expected a GFM checkpoint)')
    return path


def _is_torch_file(path: str) -> bool:
    """Zip-based (torch >= 1.6) or legacy pickle-based torch file."""
    with open(path, 'rb') as f:
        head = f.read(4)
    return head.startswith(b'PK\x03\x04') or head[:1] == b'\x80'


def load_upstream_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the authors' ``gfm.pth`` without running any code from it.

    Args:
        path: the authors' checkpoint.

    Returns:
        The checkpoint dict; ``config`` is returned as nested plain dicts.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if the file is truncated, not a torch file, refers to code that
            is not allow-listed, or is not a GFM (SimMIM + teacher) checkpoint.

    .. versionadded:: 0.1
    """
    path = _check_file(path)
    expected = (
        "the authors' GFM checkpoint (gfm.pth: a dict with 'model' holding "
        "'encoder.*' Swin weights and a yacs 'config')"
    )
    try:
        ckpt = _torch_load(path)
    except pickle.UnpicklingError as e:
        raise GFMCheckpointError(
            f'{path}: refused to unpickle ({e}). Expected {expected}; this file asks '
            'for code that a GFM checkpoint does not need and was not loaded.'
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise GFMCheckpointError(
            f'{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); '
            f'truncated or corrupt download? Expected {expected}.'
        ) from None
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in _UPSTREAM_KEYS):
        found = sorted(ckpt)[:4] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise GFMCheckpointError(f'{path}: found {found}; expected {expected}.')
    model = ckpt['model']
    if not isinstance(model, Mapping) or _STUDENT_PROBE not in model:
        keys = sorted(model)[:5] if isinstance(model, Mapping) else type(model).__name__
        raise GFMCheckpointError(
            f"{path}: 'model' has no {_STUDENT_PROBE!r} (found {keys}); expected {expected}."
        )
    ckpt['config'] = _plain(ckpt['config'])
    return ckpt


def ms_swin_to_timm(
    state_dict: Mapping[str, Tensor], prefix: str = ''
) -> dict[str, Tensor]:
    """Rename a Microsoft Swin state dict to timm's ``SwinTransformer`` key names.

    Microsoft's Swin merges patches at the *end* of stage ``i``, timm at the *start* of stage
    ``i + 1``; the classifier is ``head`` there and ``head.fc`` in timm. The
    ``relative_position_index`` and ``attn_mask`` buffers are dropped (timm recomputes them).

    Args:
        state_dict: a state dict holding a Microsoft Swin.
        prefix: only keys starting with it are taken, with it removed (e.g. ``'teacher.'``).

    Returns:
        The renamed state dict (same tensors).

    .. versionadded:: 0.1
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix) :]
        if key.rsplit('.', 1)[-1] in _NON_PERSISTENT:
            continue
        key = _MS_DOWNSAMPLE.sub(lambda m: f'layers.{int(m[1]) + 1}.downsample.', key)
        if key.startswith('head.'):
            key = 'head.fc.' + key[len('head.') :]
        out[key] = value
    return out


def student_state_dict(upstream: Mapping[str, Any]) -> dict[str, Tensor]:
    """The GFM student (``encoder.*`` without ``mask_token``) in timm key names.

    Args:
        upstream: the dict :func:`load_upstream_checkpoint` returns (or its ``model``).

    Returns:
        The student's state dict for ``gfm_swin_base``.

    .. versionadded:: 0.1
    """
    model = upstream.get('model', upstream)
    student = ms_swin_to_timm(model, prefix='encoder.')
    student.pop('mask_token', None)
    return student


def teacher_state_dict(upstream: Mapping[str, Any]) -> dict[str, Tensor]:
    """The frozen teacher (``teacher.*``, a Swin-B, window 7) in timm key names.

    Args:
        upstream: the dict :func:`load_upstream_checkpoint` returns (or its ``model``).

    Returns:
        The teacher's state dict for timm's ``swin_base_patch4_window7_224``
        (``num_classes=0``: the authors' teacher has no head).

    .. versionadded:: 0.1
    """
    return ms_swin_to_timm(upstream.get('model', upstream), prefix='teacher.')


def upstream_mask_token(upstream: Mapping[str, Any]) -> Tensor:
    """The student's learned SimMIM mask token, shape ``[1, 1, embed_dim]``.

    Args:
        upstream: the dict :func:`load_upstream_checkpoint` returns (or its ``model``).

    Returns:
        The mask token.

    .. versionadded:: 0.1
    """
    return upstream.get('model', upstream)['encoder.mask_token']


def save_backbone(
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write backbone weights (timm ``gfm_swin_base`` key names) as safetensors.

    Args:
        state_dict: the backbone's state dict in timm key names.
        path: output file (``.safetensors``).
        metadata: extra string metadata (e.g. where the weights came from).

    .. versionadded:: 0.1
    """
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    meta = {
        'format': BACKBONE_FORMAT,
        'format_version': BACKBONE_FORMAT_VERSION,
        'architecture': 'gfm_swin_base',
        'key_names': 'timm',
        **(metadata or {}),
    }
    safetensors.torch.save_file(tensors, os.fspath(path), metadata=meta)


def load_backbone(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a file written by :func:`save_backbone`.

    Args:
        path: the safetensors file.

    Returns:
        The state dict in timm ``gfm_swin_base`` key names.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is not a torchgeo-gfm backbone file.

    .. versionadded:: 0.1
    """
    path = _check_file(path)
    expected = f'a torchgeo-gfm backbone file (safetensors with metadata format={BACKBONE_FORMAT!r})'
    try:
        with safetensors.safe_open(path, framework='pt') as f:
            meta = f.metadata() or {}
            if meta.get('format') != BACKBONE_FORMAT:
                raise GFMCheckpointError(
                    f'{path}: metadata format is {meta.get("format")!r}; expected {expected}.'
                )
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except safetensors.SafetensorError as e:
        raise GFMCheckpointError(
            f'{path}: not a readable safetensors file ({e}); expected {expected}.'
        ) from None


def load_student_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Student weights in timm names from the authors' ``gfm.pth`` or an exported file.

    Args:
        path: the authors' checkpoint or a file written by :func:`save_backbone`.

    Returns:
        The student's state dict for ``gfm_swin_base``.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is neither.

    .. versionadded:: 0.1
    """
    path = _check_file(path)
    if _is_torch_file(path):
        return student_state_dict(load_upstream_checkpoint(path))
    return load_backbone(path)
