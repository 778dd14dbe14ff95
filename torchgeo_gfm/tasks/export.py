# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The student of a GFM training checkpoint as backbone weights: ``torchgeo-gfm export``.

The output (safetensors, timm key names) loads with ``gfm_swin_b(weights=OUT)``,
``timm.create_model('gfm_swin_base', pretrained=True,
pretrained_cfg_overlay=dict(file=OUT))`` and TorchGeo's tasks. It records the sensor the
student was trained for (the task's ``sensor`` hyper-parameter; ``rgb`` for a 3-band
student of a checkpoint without one, as before 0.2), which ``predict``/``embed`` read back
(:func:`~torchgeo_gfm.models.checkpoint.backbone_sensor`).

.. versionadded:: 0.1
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from ..models.checkpoint import (
    SENSOR_KEY,
    GFMCheckpointError,
    check_tensors,
    read_checkpoint,
)
from ..models.convert import save_student
from ..models.swin_state import PATCH_EMBED, check_complete_student

_EXPECTED = (
    "a Lightning checkpoint of torchgeo_gfm.tasks.ContinualPretraining (e.g. 'last.ckpt', with "
    "'state_dict' holding 'model.student.*')"
)
# the task's student: 'model.student.*' (GFMPretrainingModel), 'student.*' in older runs
_PREFIXES = ('model.student.', 'student.')


def _student(ckpt: Any, path: Path) -> dict[str, Tensor]:
    """The student's tensors of a checkpoint, without their prefix."""
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get('state_dict'), Mapping):
        raise GFMCheckpointError(f'{path}: no state_dict; expected {_EXPECTED}.')
    weights = ckpt['state_dict']
    prefix = next((p for p in _PREFIXES if any(k.startswith(p) for k in weights)), '')
    state = {
        k[len(prefix) :]: v
        for k, v in weights.items()
        if prefix and k.startswith(prefix)
    }
    if not state:
        hint = ''
        if 'model' in ckpt and 'config' in ckpt:
            hint = " This looks like the authors' gfm.pth: use `torchgeo-gfm convert`."
        raise GFMCheckpointError(
            f'{path}: no student weights; expected {_EXPECTED}.{hint}'
        )
    return check_tensors(state, path, _EXPECTED)


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
        GFMCheckpointError: if it is not a GFM training checkpoint with a complete,
            finite floating-point student. The authors' ``gfm.pth`` is converted by
            ``torchgeo-gfm convert`` instead.

    .. versionadded:: 0.1
    """
    path = Path(path)
    ckpt = read_checkpoint(path, _EXPECTED)
    state = _student(ckpt, path)
    check_complete_student(state, os.fspath(path))
    hparams = ckpt.get('hyper_parameters') or {}
    channels = int(state[PATCH_EMBED].shape[1])
    meta = {
        'source': path.name,
        'architecture': str(hparams.get('model', 'gfm_swin_base')),
        'in_chans': str(channels),
        'global_step': str(ckpt.get('global_step', '')),
        'epoch': str(ckpt.get('epoch', '')),
    }
    sensor = _sensor(hparams.get('sensor'), channels, path)
    if sensor is not None:
        meta[SENSOR_KEY] = json.dumps(sensor)
    return state, meta


def _sensor(recorded: Any, channels: int, path: Path) -> dict[str, Any] | None:
    """The student's sensor as a dict, checked against its patch embedding."""
    from ..sensors import SensorError, get_sensor

    if recorded is None:  # checkpoints before 0.2: RGB students
        return get_sensor('rgb').to_dict() if channels == 3 else None
    try:
        sensor = get_sensor(recorded)
        sensor.check_bands(channels, f"{path}: the student's patch embedding")
    except SensorError as error:
        raise GFMCheckpointError(
            f'{path}: its sensor hyper-parameter does not fit its student ({error}); '
            f'expected {_EXPECTED}.'
        ) from None
    return sensor.to_dict()


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    force: bool = True,
) -> Path:
    """Write the student of a GFM training checkpoint as backbone weights.

    Args:
        checkpoint: the Lightning checkpoint.
        output: the safetensors file to write (missing folders are created; never
            *checkpoint* itself).
        force: overwrite an existing *output* (the command line asks for ``--force``).

    Returns:
        The written path.

    Raises:
        FileNotFoundError: if *checkpoint* does not exist.
        GFMCheckpointError: if it is not a GFM training checkpoint.
        ValueError, OSError: if *output* cannot be written (see
            :func:`~torchgeo_gfm.models.convert.save_student`).

    .. versionadded:: 0.1
    """
    state, meta = student_from_checkpoint(checkpoint)
    return save_student(state, checkpoint, output, force=force, metadata=meta)
