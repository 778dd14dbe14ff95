#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake SSL4EO-L (TorchGeo's layout) next to this file.

``ssl4eo_l_<split>/<7-digit location>/<Landsat scene>_<date>/all_bands.tif``: one
multiband uint8 GeoTIFF per season (as the release, rescaled to 8 bits), in UTM
(EPSG:32617), 30 m pixels, 24 px instead of 264.
"""

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SPLITS = {'oli_sr': 7, 'tm_toa': 7}  # band counts
SEASONS = ('LC08_016032_20200318', 'LC08_016032_20200621')
LOCATIONS = 3
SIDE = 24


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in SPLITS.items():
        folder = root / f'ssl4eo_l_{split}'
        shutil.rmtree(folder, ignore_errors=True)
        for location in range(LOCATIONS):
            for season in SEASONS:
                path = folder / f'{location:07}' / season / 'all_bands.tif'
                path.parent.mkdir(parents=True)
                data = rng.integers(0, 256, (count, SIDE, SIDE), dtype=np.uint8)
                profile = {
                    'driver': 'GTiff', 'width': SIDE, 'height': SIDE, 'count': count,
                    'dtype': 'uint8', 'crs': 'EPSG:32617',
                    'transform': from_origin(300000, 4400000, 30, 30),
                }  # fmt: skip
                with rasterio.open(path, 'w', **profile) as f:
                    f.write(data)


if __name__ == '__main__':
    main(Path(__file__).parent)
