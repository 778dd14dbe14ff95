# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The band rule: pretrained RGB patch-embedding filters for any number of input bands.

The pretrained filters of R, G and B are copied to the input channels named by
``rgb_indices``; all other channels start at **zero**, so at initialisation the model computes
exactly the RGB model's features from those three bands and learns to use the others during
fine-tuning. Several RGB triples (``rgb_indices`` of length ``3 * k``, e.g. two co-registered
images stacked for change detection) share the filters, each scaled by ``1 / k``. Defaults
when ``rgb_indices`` is not given:

* 3 channels: R, G, B in that order;
* 6 channels: two stacked RGB images (TorchGeo's ``ChangeDetection`` concatenates them);
* otherwise 4 or more channels: Sentinel-2 in TorchGeo's band order, B4, B3, B2 at
  indices 3, 2, 1 (the authors' rule for multispectral fine-tuning);
* 1 or 2 channels: timm's rule (:func:`timm.models.adapt_input_conv`).

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.models.gfm_swin`.
"""

from collections.abc import Sequence

from timm.models import adapt_input_conv
from torch import Tensor, nn

#: Sentinel-2 B4, B3, B2 in TorchGeo's 13-band order (B1, B2, ..., B8, B8A, ..., B12)
SENTINEL2_RGB_INDICES = (3, 2, 1)


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
    """Fit pretrained RGB patch-embedding filters to *in_chans* inputs (band rule).

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


def input_channels(model: nn.Module) -> int:
    """The number of input bands of a Swin (or its feature extractor).

    Args:
        model: a timm Swin, or its feature extractor.

    Returns:
        The input channels of ``patch_embed.proj``.
    """
    proj = model.get_submodule('patch_embed.proj')
    assert isinstance(proj, nn.Conv2d)
    return proj.in_channels
