# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning tasks: GFM continual pretraining, and downstream tasks TorchGeo lacks."""

__all__: tuple[str, ...] = ()
