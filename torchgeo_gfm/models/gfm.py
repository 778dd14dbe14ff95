# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Deprecated alias of :mod:`torchgeo_gfm.models.gfm_swin` (renamed in 0.2, removed in 0.3)."""

from .._deprecated import moved

# the architecture, weights and builder went to gfm_swin; the band rule and the authors'
# checkpoint layout to bands and swin_state (all exported by torchgeo_gfm.models)
__getattr__ = moved(__name__, ('torchgeo_gfm.models.gfm_swin', 'torchgeo_gfm.models'))
