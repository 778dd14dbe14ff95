# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The authors' ``gfm.pth`` to backbone weights (safetensors): ``torchgeo-gfm convert``.

Keeps the student only, in timm ``gfm_swin_base`` key names; the result loads with
``gfm_swin_b(weights=OUT)``, ``timm.create_model('gfm_swin_base', pretrained=True,
pretrained_cfg_overlay=dict(file=OUT))`` or :func:`~torchgeo_gfm.models.load_backbone`.
The file records the ``rgb`` sensor (:func:`~torchgeo_gfm.models.checkpoint.backbone_sensor`).

.. versionadded:: 0.1
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from .checkpoint import (
    SENSOR_KEY,
    load_upstream_checkpoint,
    prepare_output,
    save_backbone,
    sha256sum,
)
from .swin_state import check_complete_student, describe_swin, student_state_dict


def save_student(
    student: Mapping[str, Tensor],
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    force: bool,
    metadata: Mapping[str, str],
) -> Path:
    """Write a checked student as a backbone file, never over the file it came from.

    The last step of ``torchgeo-gfm convert`` and ``torchgeo-gfm export``.

    Args:
        student: the student's weights (timm names).
        source: the checkpoint they were read from (never replaced).
        output: the safetensors file to write (missing folders are created).
        force: overwrite an existing *output*.
        metadata: written into the file's header.

    Returns:
        The written path.

    Raises:
        ValueError: if *output* is refused (see
            :func:`~torchgeo_gfm.models.checkpoint.prepare_output`).
        OSError: if writing fails.

    .. versionadded:: 0.2
    """
    out = prepare_output(output, source, force=force)
    save_backbone(student, out, metadata=metadata)
    return Path(out)


def convert(
    checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], *, force: bool
) -> dict[str, str]:
    """Write the student of the authors' checkpoint as a backbone file.

    Args:
        checkpoint: the authors' ``gfm.pth``.
        output: the safetensors file to write.
        force: overwrite an existing *output*.

    Returns:
        The metadata written.

    Raises:
        FileNotFoundError: if *checkpoint* does not exist.
        GFMCheckpointError: if it is not a complete GFM checkpoint.
        ValueError, OSError: if *output* cannot be written (see :func:`save_student`).

    .. versionadded:: 0.1
    """
    from ..sensors import get_sensor

    source = os.fspath(checkpoint)
    student = student_state_dict(load_upstream_checkpoint(source))
    check_complete_student(student, source)
    metadata = {
        'source': os.path.basename(source),
        'source_sha256': sha256sum(source),
        'arch': json.dumps(describe_swin(student)),
        SENSOR_KEY: json.dumps(get_sensor('rgb').to_dict()),  # the authors' GFM is RGB
    }
    save_student(student, source, output, force=force, metadata=metadata)
    return metadata
