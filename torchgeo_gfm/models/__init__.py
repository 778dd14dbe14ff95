# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GFM backbone: timm registration, TorchGeo weights, builder and checkpoint I/O."""

from .swin import gfm_swin_base

__all__ = ('gfm_swin_base',)
