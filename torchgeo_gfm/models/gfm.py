# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Deprecated alias of :mod:`torchgeo_gfm.models.gfm_swin` (renamed in 0.2, removed in 0.3)."""

from .._deprecated import moved

__getattr__ = moved(__name__, 'torchgeo_gfm.models.gfm_swin')
