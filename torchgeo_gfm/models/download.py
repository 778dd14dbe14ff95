# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fetching the authors' ``gfm.pth`` and caching its converted student.

.. versionadded:: 0.1
"""

import hashlib
import logging
import os
import re
import urllib.parse
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import (
    GFMCheckpointError,
    load_backbone,
    load_student_weights,
    load_upstream_checkpoint,
    save_backbone,
    sniff_format,
    student_state_dict,
)

#: Hugging Face Hub repository and file of the authors' checkpoint
GFM_HUB_REPO = 'torchgeo/gfm'
GFM_HUB_FILENAME = 'gfm.pth'
GFM_URL = f'https://huggingface.co/{GFM_HUB_REPO}/resolve/main/{GFM_HUB_FILENAME}'

_SHA256 = re.compile(r'^[0-9a-f]{64}$')
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Folder for downloads and converted weights (under ``torch.hub.get_dir()``).

    Returns:
        ``<torch hub dir>/checkpoints/torchgeo_gfm``.

    .. versionadded:: 0.1
    """
    return Path(torch.hub.get_dir()) / 'checkpoints' / 'torchgeo_gfm'


def sha256sum(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file.

    Args:
        path: the file.

    Returns:
        The hex digest.

    .. versionadded:: 0.1
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Raise if the file's SHA-256 is not *expected*.

    Args:
        path: the file.
        expected: hex digest.

    Raises:
        GFMCheckpointError: on mismatch (corrupt or tampered download).

    .. versionadded:: 0.1
    """
    actual = sha256sum(path)
    if actual != expected.lower():
        raise GFMCheckpointError(
            f'{path}: SHA-256 {actual} != expected {expected}; the download is corrupt or '
            'not the published file. Delete it and download again.'
        )


def download_url(url: str, *, progress: bool = True, sha256: str | None = None) -> Path:
    """Download *url* once into :func:`cache_dir` and verify it.

    Args:
        url: http(s) URL of the file.
        progress: show a progress bar.
        sha256: expected SHA-256 (checked after download), if known.

    Returns:
        The local file.

    Raises:
        GFMCheckpointError: if the checksum does not match (the file is removed).

    .. versionadded:: 0.1
    """
    name = os.path.basename(urllib.parse.urlparse(url).path) or 'download'
    dst = cache_dir() / 'downloads' / name
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        _log.info('Downloading %s to %s', url, dst)
        torch.hub.download_url_to_file(url, os.fspath(dst), progress=progress)
        if sha256:
            try:
                verify_sha256(dst, sha256)
            except GFMCheckpointError:
                dst.unlink()
                raise
    return dst


def _verify_hub_blob(path: Path) -> None:
    """Files from the Hugging Face cache are blobs named by their LFS SHA-256: check it."""
    blob = path.resolve().name
    if 'models--' in os.fspath(path) and _SHA256.match(blob):
        verify_sha256(path, blob)


def student_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Student weights (timm names) of the authors' file or an exported file, cached.

    Converting the authors' training checkpoint (student, teacher, optimizer state) means
    unpickling all of it; the student is cached as safetensors in :func:`cache_dir`, keyed
    by the source file's path, size and mtime. A file from the Hugging Face cache is checked
    against its SHA-256 before its first conversion.

    Args:
        path: the authors' ``gfm.pth`` or a file written by
            :func:`~torchgeo_gfm.models.checkpoint.save_backbone`.

    Returns:
        The state dict for ``gfm_swin_base``.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is neither a GFM checkpoint nor an exported backbone.

    .. versionadded:: 0.1
    """
    path = Path(path)
    if not path.is_file() or sniff_format(path) in (None, 'safetensors'):
        return load_student_weights(path)  # or its error
    real = path.resolve()
    stat = real.stat()
    key = hashlib.sha256(
        f'{real}|{stat.st_size}|{stat.st_mtime_ns}'.encode()
    ).hexdigest()
    cached = cache_dir() / 'converted' / f'gfm-student-{key[:20]}.safetensors'
    if cached.exists():
        return load_backbone(cached)
    _verify_hub_blob(path)
    state_dict = student_state_dict(load_upstream_checkpoint(path))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_backbone(state_dict, cached, metadata={'source': os.fspath(real)})
    except OSError as e:  # read-only cache: still usable, just slower next time
        _log.warning(
            'Could not cache converted GFM weights in %s: %s', cached.parent, e
        )
    return state_dict
