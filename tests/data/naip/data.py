#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make two small overlapping fake NAIP GeoTIFFs (4-band uint8, UTM 18N, 1 m)."""

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SIZE = 96
TILES = {
    'm_3807511_ne_18_060_20181104.tif': (300_000.0, 4_300_000.0),
    'm_3807511_nw_18_060_20181104.tif': (300_064.0, 4_300_040.0),
}


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name, (x, y) in TILES.items():
        data = rng.integers(1, 256, (4, SIZE, SIZE), dtype=np.uint8)
        profile = {
            'driver': 'GTiff',
            'dtype': 'uint8',
            'count': 4,
            'height': SIZE,
            'width': SIZE,
            'crs': 'EPSG:26918',
            'transform': from_origin(x, y, 1.0, 1.0),
        }
        with rasterio.open(root / name, 'w', **profile) as dst:
            dst.write(data)


if __name__ == '__main__':
    main(Path(__file__).parent)
