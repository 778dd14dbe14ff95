#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make tiny multiband GeoTIFF folders (GeoPile-style trees) next to this file.

* ``s2/``: 13-band uint16 Sentinel-2-like files of several sizes, in UTM (EPSG:32633) and
  EPSG:4326, nested folders; one has nodata pixels (value 0 declared as nodata).
* ``naip/``: 4-band uint8 files.
* ``float/``: 13-band float32 reflectance with NaN pixels.
* ``bad_bands/``: a 13-band file and a 12-band one (refused with the sensor s2).
"""

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin

UTM = {'crs': 'EPSG:32633', 'transform': from_origin(500000, 5300000, 10, 10)}
WGS84 = {'crs': 'EPSG:4326', 'transform': from_origin(13.0, 47.0, 1e-4, 1e-4)}


def write(
    path: Path, data: np.ndarray, nodata: float | None = None, **geo: Any
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = data.shape
    profile = {'driver': 'GTiff', 'width': width, 'height': height, 'count': count}
    with rasterio.open(
        path, 'w', dtype=data.dtype, nodata=nodata, **profile, **geo
    ) as f:
        f.write(data)


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in ('s2', 'naip', 'float', 'bad_bands'):
        shutil.rmtree(root / folder, ignore_errors=True)

    def s2(h: int, w: int) -> np.ndarray:
        return rng.integers(1, 10000, (13, h, w), dtype=np.uint16)

    write(root / 's2/austria/utm/a.tif', s2(40, 48), **UTM)
    write(root / 's2/austria/wgs84/b.tif', s2(36, 36), **WGS84)
    write(root / 's2/small/c.tif', s2(20, 28), **UTM)
    holes = s2(32, 32)
    holes[:, :, :8] = 0
    write(root / 's2/holes/d.tif', holes, nodata=0, **UTM)
    write(root / 'naip/e.tif', rng.integers(0, 256, (4, 32, 32), dtype=np.uint8), **UTM)
    reflectance = rng.random((13, 32, 32), dtype=np.float32)
    reflectance[:, :4, :4] = np.nan
    write(root / 'float/f.tif', reflectance, **WGS84)
    write(root / 'bad_bands/a.tif', s2(32, 32), **UTM)
    write(root / 'bad_bands/b.tif', s2(32, 32)[:12], **UTM)


if __name__ == '__main__':
    main(Path(__file__).parent)
