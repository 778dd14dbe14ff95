# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Lightning datamodules for the datasets of this package."""

from .bigearthnet import BigEarthNetRGBDataModule, BigEarthNetS2DataModule
from .dsifn import DSIFNDataModule
from .eurosat import EuroSATSensorDataModule
from .geopile import GeoPileDataModule
from .geopile_streaming import GeoPileStreamingDataModule
from .multiband import MultibandFolderDataModule, MultibandPretrainDataModule
from .multispectral import SensorClassificationDataModule
from .oscd import OSCDTiledDataModule
from .spacenet2_sr import SpaceNet2SRDataModule
from .ssl4eo import SSL4EOLPretrainDataModule, SSL4EOS12PretrainDataModule
from .ucmerced import UCMercedImageNetDataModule
from .utils import ResumableTrainLoader
from .vaihingen import Vaihingen2DTiledDataModule
from .whu_building import WHUBuildingDataModule

__all__ = (
    'BigEarthNetRGBDataModule',
    'BigEarthNetS2DataModule',
    'DSIFNDataModule',
    'EuroSATSensorDataModule',
    'GeoPileDataModule',
    'GeoPileStreamingDataModule',
    'MultibandFolderDataModule',
    'MultibandPretrainDataModule',
    'OSCDTiledDataModule',
    'ResumableTrainLoader',
    'SSL4EOLPretrainDataModule',
    'SSL4EOS12PretrainDataModule',
    'SensorClassificationDataModule',
    'SpaceNet2SRDataModule',
    'UCMercedImageNetDataModule',
    'Vaihingen2DTiledDataModule',
    'WHUBuildingDataModule',
)
