# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""TorchGeo datasets: GeoPile, its sources TorchGeo lacks, and missing downstream datasets."""

from .dsifn import DSIFN
from .geopile import GeoPile, GeoPileLayoutError
from .mlrsnet import MLRSNet
from .rsd46whu import RSD46WHU
from .scene import ManualDownloadError
from .synthetic import write_synthetic_geopile
from .utils import DegenerateImageError
from .whu_building import WHUBuilding

__all__: tuple[str, ...] = ()
__all__ += ('GeoPile', 'GeoPileLayoutError', 'write_synthetic_geopile')
__all__ += ('DegenerateImageError',)
__all__ += ('DSIFN', 'WHUBuilding')
__all__ += ('RSD46WHU', 'MLRSNet', 'ManualDownloadError')
