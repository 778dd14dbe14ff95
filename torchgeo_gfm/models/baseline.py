# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The paper's baseline as a timm architecture: ImageNet-22k Swin-B at any input size.

timm's ``swin_base_patch4_window7_224`` rejects inputs other than 224 px, and TorchGeo's
tasks pass no model arguments, so the fine-tuning configs could not swap it in for
``gfm_swin_base`` by name. ``swin_base_in22k`` is the same network and weights
(``timm/swin_base_patch4_window7_224.ms_in22k``, GFM's teacher) with
``strict_img_size=False``.

.. versionadded:: 0.1
"""

from typing import Any

from timm.models import generate_default_cfgs, register_model
from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn
from torch import nn

from .gfm_swin import build_swin_b, swin_b_cfg

default_cfgs = generate_default_cfgs(
    {
        'swin_base_in22k.ms_in22k': swin_b_cfg(
            hf_hub_id='timm/swin_base_patch4_window7_224.ms_in22k',
            num_classes=21841,
            input_size=(3, 224, 224),
            pool_size=(7, 7),
            crop_pct=0.9,
            license='mit',
        )
    }
)


@register_model
def swin_base_in22k(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Swin-B (patch 4, window 7) with ImageNet-22k weights, any input size.

    Args:
        pretrained: load timm's ``swin_base_patch4_window7_224.ms_in22k`` weights.
        **kwargs: passed to :class:`timm.models.swin_transformer.SwinTransformer`.

    Returns:
        The model.

    .. versionadded:: 0.1
    """
    kwargs = {'window_size': 7, **kwargs}
    return build_swin_b(
        SwinTransformer, 'swin_base_in22k', pretrained, checkpoint_filter_fn, **kwargs
    )
