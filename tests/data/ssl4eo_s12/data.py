#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake SSL4EO-S12 (TorchGeo's layout) next to this file.

``<split>/<7-digit location>/<season>/<band>.tif``: one single-band uint16 GeoTIFF per band,
in UTM (EPSG:32633), at each band's native resolution as the release stores them (10, 20 or
60 m over 2640 m), only 22x smaller (12, 6 or 2 px): TorchGeo reads them at 264 px.
"""

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

#: native resolution (m) of each Sentinel-2 band
RESOLUTION = {
    'B1': 60, 'B2': 10, 'B3': 10, 'B4': 10, 'B5': 20, 'B6': 20, 'B7': 20,
    'B8': 10, 'B8A': 20, 'B9': 60, 'B10': 60, 'B11': 20, 'B12': 20,
}  # fmt: skip
SPLITS = {'s2c': tuple(RESOLUTION), 's2a': tuple(b for b in RESOLUTION if b != 'B10')}
SEASONS = (
    '20200314T102021_20200314T102021_T33UVP',
    '20200612T101559_20200612T101559_T33UVP',
)
LOCATIONS = 3
SHRINK = 22  # 2640 m at 10 m is 264 px; the fake files are 22 times smaller


def write_location(
    folder: Path, bands: tuple[str, ...], rng: np.random.Generator
) -> None:
    for season in SEASONS:
        (folder / season).mkdir(parents=True)
        for band in bands:
            res = RESOLUTION[band] * SHRINK
            side = 2640 // res
            data = rng.integers(0, 10000, (1, side, side), dtype=np.uint16)
            profile = {
                'driver': 'GTiff', 'width': side, 'height': side, 'count': 1,
                'dtype': 'uint16', 'crs': 'EPSG:32633',
                'transform': from_origin(500000, 5300000, res, res),
            }  # fmt: skip
            with rasterio.open(folder / season / f'{band}.tif', 'w', **profile) as f:
                f.write(data)


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, bands in SPLITS.items():
        shutil.rmtree(root / split, ignore_errors=True)
        for location in range(LOCATIONS):
            write_location(root / split / f'{location:07}', bands, rng)


if __name__ == '__main__':
    main(Path(__file__).parent)
