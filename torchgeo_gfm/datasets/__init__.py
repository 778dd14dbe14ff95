# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""TorchGeo datasets: GeoPile, its sources TorchGeo lacks, and missing downstream datasets."""

__all__: tuple[str, ...] = ()
