# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning datamodules for the datasets of this package."""

from .bigearthnet import BigEarthNetRGBDataModule
from .dsifn import DSIFNDataModule
from .geopile import GeoPileDataModule
from .oscd import OSCDDataModule
from .spacenet2_sr import SpaceNet2SRDataModule, SpaceNet2SuperResolution
from .ucmerced import UCMercedDataModule
from .vaihingen import Vaihingen2DDataModule
from .whu_building import WHUBuildingDataModule

__all__: tuple[str, ...] = ()
__all__ += ('GeoPileDataModule',)
__all__ += ('DSIFNDataModule', 'WHUBuildingDataModule')
__all__ += ('SpaceNet2SRDataModule', 'SpaceNet2SuperResolution')
__all__ += ('BigEarthNetRGBDataModule', 'OSCDDataModule')
__all__ += ('UCMercedDataModule', 'Vaihingen2DDataModule')
