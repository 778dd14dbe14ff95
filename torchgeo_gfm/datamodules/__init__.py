# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning datamodules for the datasets of this package."""

__all__: tuple[str, ...] = ()
