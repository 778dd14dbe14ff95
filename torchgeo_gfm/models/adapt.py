# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Fitting GFM's RGB student weights to the model at hand (bands, window size, depth).

Band rule (``in_chans`` != 3): the pretrained patch-embedding filters of R, G and B are copied
to the input channels named by ``rgb_indices``; all other channels start at **zero**, so at
initialisation the model computes exactly the RGB model's features from those three bands and
learns to use the others during fine-tuning. Several RGB triples (``rgb_indices`` of length
``3 * k``, e.g. two co-registered images stacked for change detection) share the filters,
each scaled by ``1 / k``. Defaults when ``rgb_indices`` is not given:

* 3 channels: R, G, B in that order;
* 6 channels: two stacked RGB images (TorchGeo's ``ChangeDetection`` concatenates them);
* otherwise 4 or more channels: Sentinel-2 in TorchGeo's band order, B4, B3, B2 at
  indices 3, 2, 1 (the authors' rule for multispectral fine-tuning);
* 1 or 2 channels: timm's rule (:func:`timm.models.adapt_input_conv`).

.. versionadded:: 0.1
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

from timm.layers import resize_rel_pos_bias_table
from timm.models import adapt_input_conv
from torch import Tensor, nn

from .checkpoint import GFMCheckpointError

#: Sentinel-2 B4, B3, B2 in TorchGeo's 13-band order (B1, B2, ..., B8, B8A, ..., B12)
SENTINEL2_RGB_INDICES = (3, 2, 1)

_BLOCK = re.compile(r'^layers[._](\d+)\.blocks\.(\d+)\.')


def rgb_input_indices(
    in_chans: int, rgb_indices: Sequence[int] | None = None
) -> tuple[int, ...] | None:
    """Where the pretrained R, G, B filters go for a model with *in_chans* inputs.

    Args:
        in_chans: number of input channels of the model.
        rgb_indices: explicit indices of R, G, B (one or more triples), or None for the
            defaults in the module docstring.

    Returns:
        The indices, or None where timm's rule applies (fewer than 3 channels).

    Raises:
        ValueError: if *rgb_indices* is not a list of triples within ``range(in_chans)``.

    .. versionadded:: 0.1
    """
    if rgb_indices is None:
        if in_chans in (3, 6):
            return tuple(range(in_chans))
        return SENTINEL2_RGB_INDICES if in_chans > 3 else None
    idx = tuple(int(i) for i in rgb_indices)
    if not idx or len(idx) % 3:
        raise ValueError(
            f'rgb_indices={idx}: give the input channels of R, G, B (3 indices, or one '
            'triple per stacked RGB image)'
        )
    if not all(0 <= i < in_chans for i in idx) or len(set(idx)) != len(idx):
        raise ValueError(
            f'rgb_indices={idx} must be distinct channel indices in 0..{in_chans - 1} '
            f'for in_chans={in_chans}'
        )
    return idx


def adapt_patch_embed(
    weight: Tensor, in_chans: int, rgb_indices: Sequence[int] | None = None
) -> Tensor:
    """Fit pretrained RGB patch-embedding filters to *in_chans* inputs (rule above).

    Args:
        weight: ``[embed_dim, 3, p, p]`` pretrained filters.
        in_chans: number of input channels of the model.
        rgb_indices: see :func:`rgb_input_indices`.

    Returns:
        ``[embed_dim, in_chans, p, p]`` filters.

    Raises:
        ValueError: if *weight* does not have 3 input channels.

    .. versionadded:: 0.1
    """
    if weight.shape[1] != 3:
        raise ValueError(
            f'pretrained patch embedding has {weight.shape[1]} input channels; GFM weights '
            'are RGB (3 channels)'
        )
    idx = rgb_input_indices(in_chans, rgb_indices)
    if idx is None:
        return adapt_input_conv(in_chans, weight)
    if idx == (0, 1, 2) and in_chans == 3:
        return weight
    out = weight.new_zeros(weight.shape[0], in_chans, *weight.shape[2:])
    groups = len(idx) // 3
    for g in range(groups):
        out[:, list(idx[3 * g : 3 * g + 3])] += weight / groups
    return out


def describe_swin(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Architecture of a timm-named Swin state dict (for error messages).

    Args:
        state_dict: timm (or timm feature-extractor) key names.

    Returns:
        ``embed_dim``, ``depths``, ``num_heads`` and ``in_chans`` where present.

    .. versionadded:: 0.1
    """
    blocks: dict[int, set[int]] = {}
    heads: dict[int, int] = {}
    for key, value in state_dict.items():
        m = _BLOCK.match(key)
        if m:
            stage, block = int(m[1]), int(m[2])
            blocks.setdefault(stage, set()).add(block)
            if key.endswith('relative_position_bias_table') and block == 0:
                heads[stage] = value.shape[1]
    info: dict[str, Any] = {
        'depths': tuple(len(blocks[s]) for s in sorted(blocks)),
        'num_heads': tuple(heads[s] for s in sorted(heads)),
    }
    for key, value in state_dict.items():
        if key.endswith('patch_embed.proj.weight'):
            info['embed_dim'], info['in_chans'] = value.shape[0], value.shape[1]
    return info


def _module_for(model: nn.Module, key: str) -> nn.Module | None:
    try:
        return model.get_submodule(key.rsplit('.', 1)[0])
    except AttributeError:
        return None


def fit_state_dict(
    state_dict: Mapping[str, Tensor],
    model: nn.Module,
    *,
    rgb_indices: Sequence[int] | None = None,
    source: str = 'pretrained weights',
    prefix: str = '',
    strict_shapes: bool = True,
) -> dict[str, Tensor]:
    """Fit GFM student weights to *model*: bands, relative-position tables, shapes.

    Args:
        state_dict: weights named like *model*'s own keys (after *prefix*).
        model: the target module (a timm Swin or its feature extractor).
        rgb_indices: see :func:`rgb_input_indices`.
        source: where the weights came from, for error messages.
        prefix: prefix of *model*'s keys inside *state_dict*.
        strict_shapes: raise on tensors that cannot be fitted; if False, leave them for
            ``load_state_dict`` to report.

    Returns:
        The fitted state dict (a new dict; untouched tensors are shared).

    Raises:
        GFMCheckpointError: if a tensor cannot be fitted (another architecture).

    .. versionadded:: 0.1
    """
    own = model.state_dict()
    out = dict(state_dict)
    for key, value in state_dict.items():
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if name is None or name not in own or own[name].shape == value.shape:
            continue
        target = own[name]
        rgb = (
            value.ndim == 4
            and value.shape[1] == 3
            and value.shape[2:] == target.shape[2:]
        )
        if name.endswith('patch_embed.proj.weight') and rgb:
            value = adapt_patch_embed(value, target.shape[1], rgb_indices)
        elif (
            name.endswith('relative_position_bias_table')
            and value.shape[1] == target.shape[1]
        ):
            attn = _module_for(model, name)
            window = tuple(getattr(attn, 'window_size', ()))
            value = resize_rel_pos_bias_table(value, window, tuple(target.shape))
        elif not strict_shapes:
            continue
        else:
            raise GFMCheckpointError(
                f'{source}: {name!r} has shape {tuple(value.shape)} but the model expects '
                f'{tuple(target.shape)}. The weights describe a Swin with '
                f'{describe_swin(state_dict)}, the model is {describe_swin(own)}; build the '
                'model with matching embed_dim/depths/num_heads.'
            )
        out[key] = value.to(target.dtype)
    return out


def check_missing(
    missing: Sequence[str], source: str, model_info: Mapping[str, Any]
) -> None:
    """Raise if weights other than a fresh classifier are missing after loading.

    Args:
        missing: missing keys reported by ``load_state_dict``.
        source: where the weights came from.
        model_info: architecture of the model (:func:`describe_swin`).

    Raises:
        GFMCheckpointError: if anything but ``head.*`` is missing.

    .. versionadded:: 0.1
    """
    real = [k for k in missing if not k.startswith('head.')]
    if real:
        raise GFMCheckpointError(
            f'{source}: no weights for {real[:5]}{" ..." if len(real) > 5 else ""}; the model '
            f'is {dict(model_info)}. Is this a GFM Swin checkpoint of the same architecture?'
        )
