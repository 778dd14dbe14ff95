# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""TorchGeo datasets: GeoPile, its sources TorchGeo lacks, and missing downstream datasets."""

from .dsifn import DSIFN
from .errors import ManualDownloadError
from .geopile import GeoPile, GeoPileLayoutError
from .mlrsnet import MLRSNet
from .multiband import MultibandFolder
from .naip_chips import NAIPChipSpec, cut_naip_chips
from .rsd46whu import RSD46WHU
from .shards import GeoPileStreamingDataset, write_geopile_shards
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
    'GeoPileStreamingDataset',
    'MLRSNet',
    'ManualDownloadError',
    'MultibandFolder',
    'NAIPChipSpec',
    'SpaceNet2SuperResolution',
    'WHUBuilding',
    'cut_naip_chips',
    'write_geopile_shards',
    'write_synthetic_geopile',
)
