# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning tasks: GFM continual pretraining, and downstream tasks TorchGeo lacks."""

from .gfm import GFM

__all__: tuple[str, ...] = ('GFM',)
