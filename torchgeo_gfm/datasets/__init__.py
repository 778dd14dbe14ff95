# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""TorchGeo datasets: GeoPile, its sources TorchGeo lacks, and missing downstream datasets."""

from .dsifn import DSIFN
from .errors import ManualDownloadError
from .geopile import GeoPile, GeoPileLayoutError
from .mlrsnet import MLRSNet
from .rsd46whu import RSD46WHU
from .spacenet2_sr import SpaceNet2SuperResolution
from .synthetic import write_synthetic_geopile
from .utils import DegenerateImageError
from .whu_building import WHUBuilding

__all__ = (
    'DSIFN',
    'RSD46WHU',
    'DegenerateImageError',
    'GeoPile',
    'GeoPileLayoutError',
    'MLRSNet',
    'ManualDownloadError',
    'SpaceNet2SuperResolution',
    'WHUBuilding',
    'write_synthetic_geopile',
)
