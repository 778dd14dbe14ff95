# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Deprecated alias of :mod:`torchgeo_gfm.tasks.continual_pretraining` (renamed in 0.2, removed in 0.3)."""

from .._deprecated import moved

__getattr__ = moved(
    __name__,
    'torchgeo_gfm.tasks.continual_pretraining',
    {'GFM': 'ContinualPretraining'},
)
