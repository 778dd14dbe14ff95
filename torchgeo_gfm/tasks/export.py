# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm export``: the student of a GFM training checkpoint as backbone weights.

The output (safetensors, timm key names) loads with ``gfm_swin_b(weights=OUT)``,
``timm.create_model('gfm_swin_base', pretrained=True,
pretrained_cfg_overlay=dict(file=OUT))`` and TorchGeo's tasks.

.. versionadded:: 0.1
"""

import argparse
import hashlib
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..models.checkpoint import GFMCheckpointError, save_backbone

_EXPECTED = (
    "a Lightning checkpoint of torchgeo_gfm.tasks.GFM (e.g. 'last.ckpt', with "
    "'state_dict' holding 'student.*')"
)


def _read(path: Path) -> dict[str, Any]:
    """Safely read a Lightning checkpoint (no code runs: weights_only=True)."""
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist: expected {_EXPECTED}.')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise GFMCheckpointError(
            f'{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); '
            f'expected {_EXPECTED}.'
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        raise GFMCheckpointError(f'{path}: no state_dict; expected {_EXPECTED}.')
    return ckpt


def student_from_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Extract the student's weights (timm names) from a GFM training checkpoint.

    Args:
        path: the Lightning checkpoint.

    Returns:
        The student's state dict and metadata describing where it came from.

    Raises:
        FileNotFoundError: if *path* does not exist.
        GFMCheckpointError: if it is not a GFM training checkpoint. The authors'
            ``gfm.pth`` is converted by ``torchgeo-gfm convert`` instead.

    .. versionadded:: 0.1
    """
    path = Path(path)
    ckpt = _read(path)
    prefix = 'student.'
    state = {
        k[len(prefix) :]: v
        for k, v in ckpt['state_dict'].items()
        if k.startswith(prefix)
    }
    if not state:
        hint = ''
        if 'model' in ckpt and 'config' in ckpt:
            hint = " This looks like the authors' gfm.pth: use `torchgeo-gfm convert`."
        raise GFMCheckpointError(
            f'{path}: no student.* weights; expected {_EXPECTED}.{hint}'
        )
    hparams = ckpt.get('hyper_parameters') or {}
    meta = {
        'source': path.name,
        'architecture': str(hparams.get('model', 'gfm_swin_base')),
        'in_chans': str(hparams.get('in_channels', 3)),
        'global_step': str(ckpt.get('global_step', '')),
        'epoch': str(ckpt.get('epoch', '')),
    }
    return state, meta


def export_checkpoint(
    checkpoint: str | os.PathLike[str], output: str | os.PathLike[str]
) -> Path:
    """Write the student of a GFM training checkpoint as backbone weights.

    Args:
        checkpoint: the Lightning checkpoint.
        output: the safetensors file to write (parent folders are created).

    Returns:
        The written path.

    .. versionadded:: 0.1
    """
    state, meta = student_from_checkpoint(checkpoint)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_backbone(state, output, metadata=meta)
    return output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sub-command's arguments.

    Args:
        parser: the sub-command's parser.
    """
    parser.add_argument('checkpoint', type=Path, help='GFM training checkpoint (.ckpt)')
    parser.add_argument(
        'output', type=Path, help='backbone weights to write (.safetensors)'
    )


def run(args: argparse.Namespace) -> int:
    """Run the sub-command.

    Args:
        args: parsed arguments.

    Returns:
        The exit status.
    """
    try:
        out = export_checkpoint(args.checkpoint, args.output)
    except (FileNotFoundError, GFMCheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f'wrote {out} (sha256 {digest})')
    return 0
