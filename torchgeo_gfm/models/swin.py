# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The GFM student as a timm architecture, ``gfm_swin_base``."""

from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        'num_classes': 0,
        'input_size': (3, 192, 192),
        'pool_size': (6, 6),
        'crop_pct': 1.0,
        'interpolation': 'bicubic',
        'fixed_input_size': False,
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj',
        'classifier': 'head.fc',
        'license': 'apache-2.0',
        'paper_ids': 'arXiv:2302.04476',
        'paper_name': 'Towards Geospatial Foundation Models via Continual Pretraining',
        'origin_url': 'https://github.com/mmendiet/GFM',
        **kwargs,
    }


default_cfgs = generate_default_cfgs({'gfm_swin_base.geopile': _cfg()})


@register_model
def gfm_swin_base(pretrained: bool = False, **kwargs: Any) -> SwinTransformer:
    """Swin-B student of GFM (patch 4, window 6, 192 px), any input size.

    Args:
        pretrained: load the GFM GeoPile weights.
        **kwargs: passed to :class:`timm.models.swin_transformer.SwinTransformer`.

    Returns:
        The model.

    .. versionadded:: 0.1
    """
    args: dict[str, Any] = {
        'img_size': 192,
        'patch_size': 4,
        'window_size': 6,
        'embed_dim': 128,
        'depths': (2, 2, 18, 2),
        'num_heads': (4, 8, 16, 32),
        'strict_img_size': False,
    }
    args.update(kwargs)
    out_indices = args.pop('out_indices', (0, 1, 2, 3))
    return build_model_with_cfg(
        SwinTransformer,
        'gfm_swin_base',
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={'flatten_sequential': True, 'out_indices': out_indices},
        **args,
    )
