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
with metadata saying what it is; :func:`save_backbone` writes it atomically and reads it back.

Every reader goes through one path: :func:`sniff_format` tells the format from the content,
torch files are read with ``weights_only=True`` only, and :func:`check_tensors` refuses
non-tensor values, non-floating weights and NaN/Inf. Errors name the file, say what was
expected and what to do.

.. versionadded:: 0.1
"""

import contextlib
import json
import os
import pickle
import re
import struct
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from .._utils import plain, sha256sum
from ..outputs import OutputError, atomic_output, check_output

if TYPE_CHECKING:
    from ..sensors import Sensor

#: metadata ``format`` value of the files :func:`save_backbone` writes
BACKBONE_FORMAT = 'torchgeo-gfm-backbone'
#: version of that format
BACKBONE_FORMAT_VERSION = '1'
#: metadata key of the sensor a backbone file's inputs come from (JSON of
#: :meth:`~torchgeo_gfm.sensors.Sensor.to_dict`); files without it are RGB
SENSOR_KEY = 'sensor'

#: file formats :func:`sniff_format` recognises
WeightsFormat = Literal['safetensors', 'torch-zip', 'torch-pickle']

_UPSTREAM_KEYS = ('model', 'config')
_STUDENT_PROBE = 'encoder.patch_embed.proj.weight'
# integer buffers a weights file may legitimately hold; every other tensor is a weight
_INTEGER_BUFFERS = ('relative_position_index', 'num_batches_tracked')
# safetensors refuses headers above 100 MB
_MAX_SAFETENSORS_HEADER = 100_000_000
_UPSTREAM_EXPECTED = (
    "the authors' GFM checkpoint (gfm.pth: a dict with 'model' holding "
    "'encoder.*' Swin weights and a yacs 'config')"
)
_BACKBONE_EXPECTED = (
    f'a torchgeo-gfm backbone file (safetensors with metadata format={BACKBONE_FORMAT!r}, '
    'written by `torchgeo-gfm convert` or `torchgeo-gfm export`)'
)
_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')
_SHA256 = re.compile(r'[0-9a-f]{64}')
_AGAIN = 'Download or write the file again; check the path.'


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


def _check_file(path: str | os.PathLike[str], expected: str) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise GFMCheckpointError(
            f'{path} is a directory; expected {expected}. Give the path of the file.'
        )
    if not os.path.lexists(path):
        raise FileNotFoundError(f'{path}: no such file (expected {expected})')
    if not os.path.isfile(path):  # a FIFO would block, a device never end
        what = (
            'a link to a missing file'
            if not os.path.exists(path)
            else 'not a regular file (a device, FIFO or socket is never read)'
        )
        raise GFMCheckpointError(
            f'{path}: is {what}; expected {expected}. Give the path of the file.'
        )
    return path


def _is_safetensors(f: BinaryIO, head: bytes) -> bool:
    """Whether *f* (read up to *head*) has a safetensors header: length, JSON object.

    Hand-written on purpose: ``safetensors.safe_open`` also checks that the tensors cover
    the file, so it refuses a truncated download, which would then be taken for a pickle
    or a zip by its first bytes (the header length) and get a misleading error.
    """
    if len(head) < 9 or head[8:9] != b'{':
        return False
    (n,) = struct.unpack('<Q', head[:8])
    size = os.fstat(f.fileno()).st_size
    if not 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER):
        return False
    try:
        header = json.loads(b'{' + f.read(n - 1))
    except ValueError:  # also UnicodeDecodeError
        return False
    return isinstance(header, dict)


def sniff_format(path: str | os.PathLike[str]) -> WeightsFormat | None:
    r"""Tell a weights file's format from its content (never from its name).

    safetensors is recognised first, by its whole header (8-byte little-endian length
    within the file, then that many bytes of a JSON object), because the length's low
    byte can be anything, including the first byte of a zip file or a pickle. Then the zip
    magic ``PK\x03\x04`` (torch >= 1.6) and a pickle of protocol 2-5 (legacy torch).

    Args:
        path: the file.

    Returns:
        The format, or None if the file is none of them (empty, truncated, other).

    .. versionadded:: 0.1
    """
    with open(path, 'rb') as f:
        head = f.read(9)
        if _is_safetensors(f, head):
            return 'safetensors'
    if head.startswith(b'PK\x03\x04'):
        return 'torch-zip'
    if head[:1] == b'\x80' and head[1:2] in (b'\x02', b'\x03', b'\x04', b'\x05'):
        return 'torch-pickle'
    return None


def _sniffed(path: str, expected: str) -> WeightsFormat:
    """:func:`sniff_format`, raising a clear error for anything unknown."""
    fmt = sniff_format(path)
    if fmt is None:
        size = os.path.getsize(path)
        what = 'the file is empty' if not size else f'{size} bytes of neither format'
        raise GFMCheckpointError(
            f'{path}: not a readable torch checkpoint or safetensors file ({what}); '
            f'truncated or corrupt? Expected {expected}. {_AGAIN}'
        )
    return fmt


def _torch_load(path: str, expected: str) -> Any:
    """``torch.load(weights_only=True)`` with only the yacs config class allow-listed."""
    try:
        with torch.serialization.safe_globals([(_YacsCfgNode, 'yacs.config.CfgNode')]):
            return torch.load(path, map_location='cpu', weights_only=True, mmap=False)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' not in str(e):
            raise GFMCheckpointError(
                f'{path}: not a readable torch checkpoint (corrupt pickle: {e}); '
                f'expected {expected}. {_AGAIN}'
            ) from None
        asked = _GLOBAL.search(str(e))
        raise GFMCheckpointError(
            f'{path}: refused to unpickle: it asks for '
            f'{asked[1] if asked else "code that is not allow-listed"}, which a weights '
            f'file does not need; nothing was run. Expected {expected}. Use files from a '
            'source you trust.'
        ) from None
    except Exception as e:  # noqa: BLE001  (damaged files raise many types)
        raise GFMCheckpointError(
            f'{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); truncated or '
            f'corrupt download? Expected {expected}. {_AGAIN}'
        ) from None


def _read_safetensors(
    path: str, expected: str
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors and the metadata of a safetensors file."""
    try:
        with safetensors.safe_open(path, framework='pt') as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118
    except Exception as e:  # noqa: BLE001  (SafetensorError, torch's for odd dtypes)
        raise GFMCheckpointError(
            f'{path}: not a readable safetensors file ({e}); truncated or corrupt? '
            f'Expected {expected}. {_AGAIN}'
        ) from None


def read_checkpoint(path: str | os.PathLike[str], expected: str) -> Any:
    """Read a weights file of any supported format, without running code from it.

    Args:
        path: a safetensors file, a torch zip file or a legacy torch file.
        expected: what the file should be, for error messages (a noun phrase).

    Returns:
        The tensors of a safetensors file (a dict), or the object a torch file holds
        (read with ``weights_only=True``; the yacs config of the authors' ``gfm.pth`` is
        read as an ``OrderedDict``).

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if the file is empty, truncated, of another format or asks
            to run code.

    .. versionadded:: 0.1
    """
    path = _check_file(path, expected)
    if _sniffed(path, expected) == 'safetensors':
        return _read_safetensors(path, expected)[0]
    return _torch_load(path, expected)


def check_tensors(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], expected: str
) -> dict[str, Tensor]:
    """Refuse anything but finite floating-point weights (integer index buffers aside).

    Args:
        tensors: a state dict read from *path*.
        path: the file, for error messages.
        expected: what the file should be, for error messages.

    Returns:
        *tensors* as a dict.

    Raises:
        GFMCheckpointError: on a non-tensor value, a non-floating weight (int, bool: it
            would load as garbage) or NaN/Inf values, naming the first offending tensors.

    .. versionadded:: 0.1
    """
    path = os.fspath(path)
    if not tensors:
        raise GFMCheckpointError(f'{path}: holds no tensors; expected {expected}.')
    others = [k for k, v in tensors.items() if not isinstance(v, Tensor)]
    if others:
        raise GFMCheckpointError(
            f'{path}: {others[:3]} are not tensors (e.g. {type(tensors[others[0]]).__name__}); '
            f'expected {expected}.'
        )
    weights = {k: v for k, v in tensors.items() if not k.endswith(_INTEGER_BUFFERS)}
    wrong = [
        f'{k} ({v.dtype})' for k, v in weights.items() if not v.is_floating_point()
    ]
    if wrong:
        raise GFMCheckpointError(
            f'{path}: {len(wrong)} weights are not floating point (first: {wrong[:3]}); '
            f'they would load as garbage. Expected {expected}; write the file from a '
            'float model.'
        )
    bad = [k for k, v in weights.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise GFMCheckpointError(
            f'{path}: {len(bad)} tensors hold NaN or Inf (first: {bad[:3]}); did the '
            f'training diverge, or is the file corrupt? Expected {expected}; use an '
            'earlier checkpoint or download the file again.'
        )
    return dict(tensors)


def state_dict_from(
    obj: Any, path: str | os.PathLike[str], expected: str
) -> dict[str, Tensor]:
    """The checked state dict in what :func:`read_checkpoint` returned.

    Args:
        obj: the file's contents: a state dict, or a mapping whose ``state_dict`` or
            ``model`` entry is one (a Lightning or the authors' checkpoint).
        path: the file, for error messages.
        expected: what the file should be, for error messages.

    Returns:
        The state dict, checked by :func:`check_tensors`.

    Raises:
        GFMCheckpointError: if there is no state dict or :func:`check_tensors` refuses it.

    .. versionadded:: 0.1
    """
    if not isinstance(obj, Mapping):
        raise GFMCheckpointError(
            f'{path}: holds a {type(obj).__name__}, not a state dict; expected {expected}.'
        )
    for key in ('state_dict', 'model'):
        if isinstance(obj.get(key), Mapping):
            return check_tensors(obj[key], path, expected)
    return check_tensors(obj, path, expected)


def read_state_dict(path: str | os.PathLike[str], expected: str) -> dict[str, Tensor]:
    """Read tensors from a weights file of any supported format, safely.

    Sniffs the format (:func:`sniff_format`), loads torch files with
    ``weights_only=True`` (the stand-in for the yacs config of the authors' ``gfm.pth``
    allow-listed), unwraps a top-level ``state_dict`` or ``model`` mapping if present and
    checks the values (:func:`check_tensors`).

    Args:
        path: the file.
        expected: what the file should be, for error messages (a noun phrase, e.g.
            ``'ImageNet-22k Swin-B teacher weights'``).

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: anything else (empty, truncated, foreign or malicious file,
            non-tensor values, non-floating weights, NaN/Inf); the message names the file
            and *expected*.

    .. versionadded:: 0.1
    """
    return state_dict_from(read_checkpoint(path, expected), path, expected)


def _read_torch_only(path: str, expected: str, hint: str) -> Any:
    """A torch file's contents; a safetensors file is refused with *hint*."""
    if _sniffed(path, expected) == 'safetensors':
        raise GFMCheckpointError(
            f'{path}: is a safetensors file; expected {expected}. {hint}'
        )
    return _torch_load(path, expected)


def load_upstream_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the authors' ``gfm.pth`` without running any code from it.

    Args:
        path: the authors' checkpoint.

    Returns:
        The checkpoint dict; ``config`` is returned as nested plain dicts.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if the file is empty, truncated, not a torch file, refers to
            code that is not allow-listed, is not a GFM (SimMIM + teacher) checkpoint, or
            its weights are not finite floating-point tensors.

    .. versionadded:: 0.1
    """
    expected = _UPSTREAM_EXPECTED
    path = _check_file(path, expected)
    ckpt = _read_torch_only(
        path,
        expected,
        'A backbone file loads with load_backbone or gfm_swin_b(weights=...).',
    )
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in _UPSTREAM_KEYS):
        found = (
            sorted(map(str, ckpt))[:4]
            if isinstance(ckpt, dict)
            else type(ckpt).__name__
        )
        raise GFMCheckpointError(f'{path}: found {found}; expected {expected}.')
    model = ckpt['model']
    if not isinstance(model, Mapping) or _STUDENT_PROBE not in model:
        keys = sorted(model)[:5] if isinstance(model, Mapping) else type(model).__name__
        raise GFMCheckpointError(
            f"{path}: 'model' has no {_STUDENT_PROBE!r} (found {keys}); expected {expected}."
        )
    check_tensors(model, path, expected)
    ckpt['config'] = plain(ckpt['config'])  # drops yacs bookkeeping
    return ckpt


def prepare_output(
    output: str | os.PathLike[str], source: str | os.PathLike[str], *, force: bool
) -> str:
    """Check where a weights file is about to be written; create its folder.

    The package's output check (:func:`torchgeo_gfm.outputs.check_output`): never
    *source* (whatever the spelling: symlinks, hard links), a folder, a device or FIFO;
    an existing file only with *force*.

    Args:
        output: the file to write.
        source: the file it is made from.
        force: overwrite an existing *output*.

    Returns:
        *output* as a string.

    Raises:
        OutputError: (a ValueError) if *output* is refused; the message says why.
        OSError: if its folder cannot be created.

    .. versionadded:: 0.1
    """
    out = os.fspath(output)
    if not out:
        raise OutputError('the output path is empty; give a file name (.safetensors)')
    created = _make_folders(out)
    try:
        check_output(out, overwrite=force, protect=[source], option='--force')
    except OutputError:
        for folder in created:  # refused: leave the disk as it was
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return out


def _make_folders(path: str) -> list[Path]:
    """Create *path*'s missing folders; return those created, deepest first."""
    folder = Path(path).absolute().parent
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f'{path}: cannot create its folder {folder} ({e.strerror}); choose another '
            'output path'
        ) from None
    return created


def save_backbone(
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write backbone weights (timm ``gfm_swin_base`` key names) as safetensors.

    The file is written under a temporary name in the same folder, read back with
    :func:`load_backbone` and compared, then renamed to *path*: an interrupted or failed
    write never leaves a partial file at *path*.

    Args:
        state_dict: the backbone's state dict in timm key names.
        path: output file (``.safetensors``); its folder must exist.
        metadata: extra string metadata (e.g. where the weights came from);
            ``format`` and ``format_version`` are always this module's.

    Raises:
        GFMCheckpointError: if the weights are not finite floating-point tensors, or the
            written file does not read back the same.

    .. versionadded:: 0.1
    """
    path = os.fspath(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    check_tensors(tensors, path, 'backbone weights to save')
    meta = {
        'architecture': 'gfm_swin_base',
        'key_names': 'timm',
        **(metadata or {}),
        'format': BACKBONE_FORMAT,
        'format_version': BACKBONE_FORMAT_VERSION,
    }
    with atomic_output(path, '.safetensors') as tmp:
        safetensors.torch.save_file(tensors, tmp, metadata=meta)
        _verify_written(os.fspath(tmp), tensors, path)


def _verify_written(tmp: str, tensors: Mapping[str, Tensor], path: str) -> None:
    """Cheap insurance: the written file reads back, through the loaders' route, the same."""
    back = load_backbone(tmp)
    same = back.keys() == tensors.keys() and all(
        back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in tensors.items()
    )
    if not same:
        raise GFMCheckpointError(
            f'{path}: the written file does not read back the same weights; nothing was '
            'written. Check the disk and try again.'
        )


def load_backbone(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a file written by :func:`save_backbone`.

    Args:
        path: the safetensors file.

    Returns:
        The state dict in timm ``gfm_swin_base`` key names.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is not a torchgeo-gfm backbone file, or its weights
            are not finite floating-point tensors.

    .. versionadded:: 0.1
    """
    expected = _BACKBONE_EXPECTED
    path = _check_file(path, expected)
    if _sniffed(path, expected) != 'safetensors':
        raise GFMCheckpointError(
            f"{path}: is a torch file; expected {expected}. The authors' gfm.pth loads "
            'with gfm_swin_b(weights=...) or read_gfm_weights; `torchgeo-gfm convert` '
            'turns it into a backbone file.'
        )
    tensors, meta = _read_safetensors(path, expected)
    if meta.get('format') != BACKBONE_FORMAT:
        raise GFMCheckpointError(
            f'{path}: metadata format is {meta.get("format")!r}; expected {expected}.'
        )
    return check_tensors(tensors, path, expected)


def backbone_sensor(path: str | os.PathLike[str]) -> 'Sensor | None':
    """The sensor a weights file records, read from its header only (no tensor).

    ``torchgeo-gfm export`` copies a pretraining checkpoint's sensor into the backbone
    file's metadata (key ``sensor``), ``torchgeo-gfm convert`` records ``rgb``.

    Args:
        path: a backbone file, or the authors' ``gfm.pth``.

    Returns:
        The sensor, or None where none is recorded: the authors' ``gfm.pth`` and backbone
        files written before 0.2, whose inputs are RGB.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if the file is neither format, or its recorded sensor is not
            valid JSON of a sensor.

    .. versionadded:: 0.2
    """
    from ..sensors import SensorError, get_sensor

    path = _check_file(path, _BACKBONE_EXPECTED)
    if _sniffed(path, _BACKBONE_EXPECTED) != 'safetensors':
        return None
    try:
        with safetensors.safe_open(path, framework='pt') as f:
            recorded = (f.metadata() or {}).get(SENSOR_KEY)
    except Exception as e:  # noqa: BLE001  (SafetensorError)
        raise GFMCheckpointError(
            f'{path}: not a readable safetensors file ({e}); truncated or corrupt? '
            f'Expected {_BACKBONE_EXPECTED}. {_AGAIN}'
        ) from None
    if recorded is None:
        return None
    try:
        return get_sensor(json.loads(recorded))
    except (ValueError, SensorError) as e:  # JSONDecodeError is a ValueError
        raise GFMCheckpointError(
            f'{path}: its metadata {SENSOR_KEY!r} is not a sensor ({e}); write the file '
            'again with `torchgeo-gfm export`, or set the sensor in its metadata to the '
            'JSON of Sensor.to_dict()'
        ) from None


def read_gfm_weights(path: str | os.PathLike[str]) -> dict[str, Any]:
    """GFM weights as stored: the authors' ``gfm.pth`` or a backbone file.

    Args:
        path: the authors' checkpoint or a file written by :func:`save_backbone`.

    Returns:
        The authors' checkpoint dict (:func:`load_upstream_checkpoint`) or the backbone's
        state dict (:func:`load_backbone`), for
        :func:`~torchgeo_gfm.models.gfm_swin.checkpoint_filter_fn`.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is neither (see :func:`load_upstream_checkpoint` and
            :func:`load_backbone`).

    .. versionadded:: 0.1
    """
    expected = f'{_UPSTREAM_EXPECTED} or {_BACKBONE_EXPECTED}'
    path = _check_file(path, expected)
    verify_hub_blob(path)
    if _sniffed(path, expected) == 'safetensors':
        return load_backbone(path)
    return load_upstream_checkpoint(path)


def verify_hub_blob(path: str | os.PathLike[str]) -> None:
    """Check a file from the Hugging Face Hub cache against the SHA-256 it is named by.

    huggingface_hub stores each LFS file as ``blobs/<sha256 of its content>`` and links it
    from ``snapshots/`` (its documented cache layout) but checks only sizes: a download
    altered or corrupted on disk would load unnoticed. Other files pass unchecked.

    Args:
        path: a local file, possibly a link into the Hub cache.

    Raises:
        GFMCheckpointError: if a Hub blob's content does not match its name.

    .. versionadded:: 0.1
    """
    real = os.path.realpath(path)
    name = _hub_blob_sha256(real)
    if name is not None and sha256sum(real) != name:
        raise GFMCheckpointError(
            f'{path}: its content does not match the SHA-256 the Hugging Face Hub '
            f'published ({name}): the download is corrupt or was altered. Delete {real} '
            'and download again.'
        )


def check_hub_pin(path: str | os.PathLike[str], sha256: str) -> None:
    """Check that a downloaded file is the one a weights enum pins (``meta['sha256']``).

    A Hub blob's name is its SHA-256, which :func:`verify_hub_blob` (run by
    :func:`read_gfm_weights`) checks against the content: the pin is compared with the name,
    so the file is hashed once. Any other file is hashed here.

    Args:
        path: the downloaded file, possibly a link into the Hub cache.
        sha256: the pinned SHA-256, or a prefix of it (as torch.hub's ``hash_prefix``).

    Raises:
        GFMCheckpointError: if the file's SHA-256 does not start with *sha256*.

    .. versionadded:: 0.2
    """
    real = os.path.realpath(path)
    digest = _hub_blob_sha256(real) or sha256sum(real)
    if not digest.startswith(sha256.lower()):
        raise GFMCheckpointError(
            f'{path}: its SHA-256 is {digest}, the weights pin {sha256}: the Hub serves '
            'another file than the one these weights name (a new upload?). Use the '
            'torchgeo-gfm release that pins it, or load the file by path.'
        )


def _hub_blob_sha256(real: str) -> str | None:
    """The SHA-256 a Hub cache blob is named by (``.../blobs/<sha256>``), else None."""
    name = os.path.basename(real)
    in_hub_cache = os.path.basename(os.path.dirname(real)) == 'blobs'
    return name if in_hub_cache and _SHA256.fullmatch(name) else None
