# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Where the pretraining task's student and teacher come from: timm names and weights files.

:class:`~torchgeo_gfm.tasks.ContinualPretraining` builds both networks here; a teacher
file must hold every weight the distilled feature depends on. A teacher is a timm model name
(a Swin as in the paper, or any timm model) or a TorchGeo weights name such as
``'ResNet50_Weights.SENTINEL2_ALL_MOCO'`` (built with :func:`torchgeo.models.get_model`). The authors' full
checkpoint (student, decoder, projector, teacher at once) is read by
:mod:`.authors_checkpoint`.

.. versionadded:: 0.2
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import (
    checkpoint_filter_fn as swin_checkpoint_filter_fn,
)
from torch import Tensor, nn
from torchgeo.models import get_model, get_weight

from ..models.checkpoint import GFMCheckpointError, read_state_dict
from ..models.pretraining import input_bands

#: The teacher of the paper: Swin-B, ImageNet-22k supervised (timm / Hugging Face Hub).
DEFAULT_TEACHER = 'swin_base_patch4_window7_224.ms_in22k'


_BOOL_WORDS = {'true': True, 'false': False, 'none': None, 'null': None}


def _weights_arg(value: str | bool | None) -> str | bool | None:
    """``'true'``/``'false'``/``'null'`` typed on a command line mean the literal."""
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    return value


def _create(
    name: str, weights: str | bool | None, kwargs: dict[str, Any] | None, role: str
) -> Any:
    """Create a timm model; *weights* True = timm's own, a path = that file, else random."""
    args = dict(kwargs or {})
    args.setdefault('num_classes', 0)
    if isinstance(weights, str | os.PathLike):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f'Weights file {path} does not exist: pass an existing file, True for '
                "timm's pretrained weights, or None for random initialisation."
            )
        overlay = {'file': str(path)}
        return timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=overlay, **args
        )
    try:
        return timm.create_model(name, pretrained=bool(weights), **args)
    except TypeError as e:  # e.g. window_size given to a ResNet
        raise ValueError(
            f'The {role}: timm model {name!r} does not take {sorted(args)} ({e}); '
            f'check the {role} kwargs.'
        ) from e


#: a TorchGeo weights name, e.g. 'ResNet50_Weights.SENTINEL2_ALL_MOCO'
_TORCHGEO_WEIGHTS = re.compile(r'\w+_Weights\.\w+')


def _torchgeo_teacher(
    name: str,
    weights: str | bool | None,
    kwargs: dict[str, Any],
    bands: int,
    given: str,
) -> Any:
    """A TorchGeo ``WeightsEnum`` backbone, its bands checked before any download."""
    if isinstance(weights, str | os.PathLike):
        raise TypeError(
            f'teacher={name!r} brings its own weights: leave teacher_weights true (or '
            'null for a random teacher of its architecture), not a file.'
        )
    try:
        member = get_weight(name)
    except ValueError as e:
        raise ValueError(
            f'teacher={name!r} is not a TorchGeo weights name ({e}); see '
            'https://torchgeo.readthedocs.io/en/stable/api/weights.html'
        ) from None
    chans = int(member.meta['in_chans'])
    _check_bands(name, chans, bands, given, 'a TorchGeo weights of those bands')
    args = {'in_chans': chans, **kwargs}
    return get_model(member.meta['model'], weights=member if weights else None, **args)


def _check_bands(name: str, chans: int, bands: int, given: str, other: str) -> None:
    """A teacher that cannot take the bands it is given is refused."""
    if chans != bands:
        raise ValueError(
            f'The teacher {name} takes {chans} bands but is given {bands} ({given}): '
            f'use {other}, or give it {chans} bands (teacher_input: true_colour for 3).'
        )


def create_teacher(
    name: str,
    weights: str | bool | None,
    kwargs: dict[str, Any] | None,
    size: int | None,
    stage: int,
    in_channels: int,
    given: str = 'in_channels',
) -> Any:
    """The frozen teacher with its weights, checked against the bands it is given.

    Args:
        name: timm name of the teacher (a Swin as in the paper, or any timm model), or a
            TorchGeo weights name (``'ResNet50_Weights.SENTINEL2_ALL_MOCO'``).
        weights: True (timm's or TorchGeo's pretrained weights), a path (timm models only,
            see :func:`load_teacher_file`) or None/False (random).
        kwargs: extra arguments of the model builder.
        size: input size of the teacher; None = its pretrained config's.
        stage: the distilled stage, Microsoft numbering (a Swin teacher file must hold
            every weight up to it).
        in_channels: the bands the teacher is given.
        given: what those bands are, named in errors (``'the true colour'``).

    Returns:
        The (untruncated) teacher.

    Raises:
        ValueError: if it takes other bands than it is given.
        GFMCheckpointError: if a weights file does not fit it.

    .. versionadded:: 0.2
    """
    args = dict(kwargs or {})
    if _TORCHGEO_WEIGHTS.fullmatch(name):
        return _torchgeo_teacher(name, weights, args, in_channels, given)
    file = weights if isinstance(weights, str | os.PathLike) else None
    weights = None if file else weights
    if size and 'img_size' not in args:
        try:  # Swins and ViTs are built for their input size
            teacher = _create(name, weights, {**args, 'img_size': size}, 'teacher')
        except ValueError:  # a CNN takes any size: the images are only resized
            teacher = _create(name, weights, args, 'teacher')
    else:
        teacher = _create(name, weights, args, 'teacher')
    if file is not None:
        load_teacher_file(teacher, file, stage)
    hint = f'teacher_kwargs={{"in_chans": {in_channels}}} to let timm adapt its first layer'
    _check_bands(name, input_bands(teacher), in_channels, given, hint)
    return teacher


def load_teacher_file(
    teacher: nn.Module, path: str | os.PathLike[str], stage: int
) -> None:
    """Load a weights file into the teacher, requiring every weight distillation uses.

    timm and Microsoft Swin key names are accepted (timm's Swin filter converts them and
    fits relative-position tables to the window size). Everything the teacher computes up to
    and including MS stage *stage* must come from the file: a teacher left partly random
    would silently distil the wrong target.

    Args:
        teacher: the (untruncated) timm Swin teacher.
        path: the weights file (safetensors or a torch file, any format
            :func:`~torchgeo_gfm.models.checkpoint.read_state_dict` reads).
        stage: the distilled stage, Microsoft numbering.

    Raises:
        GFMCheckpointError: if the file lacks a weight the distillation uses or a shape
            does not fit.

    .. versionadded:: 0.1
    """
    expected = f'weights of the teacher {type(teacher).__name__} (timm or Microsoft Swin names)'
    state = read_state_dict(path, expected)
    if isinstance(teacher, SwinTransformer):
        state = swin_checkpoint_filter_fn(
            {k: v for k, v in state.items() if _in_model(teacher, k)}, teacher
        )
    missing = load_fitting(
        teacher,
        state,
        f'{path}: does not fit the teacher',
        '(teacher / teacher_kwargs)',
    )
    if isinstance(teacher, SwinTransformer):
        used = [k for k in missing if _distilled(k, stage)]
    else:  # other models are cut by timm: require all but the classifier
        head = str(getattr(teacher, 'pretrained_cfg', {}).get('classifier', 'head'))
        used = [k for k in missing if not k.startswith(head + '.')]
    if used:
        more = f' and {len(used) - 5} more' if len(used) > 5 else ''
        raise GFMCheckpointError(
            f'{path}: has no weights for {used[:5]}{more} of the teacher, which the '
            f'distillation of stage {stage} uses; found {len(state)} tensors matching '
            f'{len(teacher.state_dict()) - len(missing)} of the model. Is it a '
            f'checkpoint of another architecture? Pass weights of {expected}.'
        )


def _in_model(model: nn.Module, key: str) -> bool:
    """Whether the module owning *key* exists (timm's filter looks it up)."""
    try:
        model.get_submodule(key.rsplit('.', 1)[0])
    except AttributeError:
        return False
    return True


_STAGE = re.compile(r'^layers\.(\d+)\.(\w+)\.')


def _distilled(key: str, stage: int) -> bool:
    """Whether teacher weight *key* (timm names) feeds MS stage *stage*'s output."""
    if key.startswith('patch_embed.'):
        return True
    m = _STAGE.match(key)
    if not m:
        return False  # final norm and head: cut away
    index = int(m[1])
    return index < stage or (index == stage and m[2] == 'downsample')


def load_fitting(
    module: nn.Module, state: Mapping[str, Tensor], what: str, where: str
) -> list[str]:
    """Load *state* into *module* non-strictly; a shape that does not fit is an error.

    Args:
        module: the network.
        state: its weights (extra keys are ignored).
        what: the start of the error message (``'<file>: the decoder does not fit'``).
        where: where the architecture is chosen (``'(teacher / teacher_kwargs)'``).

    Returns:
        The keys of *module* that *state* lacks (the caller says which it needs).

    Raises:
        GFMCheckpointError: if a tensor's shape does not fit.

    .. versionadded:: 0.2
    """
    try:
        missing, _ = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # size mismatch
        raise GFMCheckpointError(
            f'{what} ({e}): build it with the architecture of these weights {where}.'
        ) from None
    return list(missing)
