#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake SpaceNet2 (AOI 2) in the layout of torchgeo.datasets.SpaceNet2.

MUL chips are small (TorchGeo resamples them to 163x163 when reading); the
pan-sharpened chips are 4 x 163 = 652 px and smooth, so they compress well.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CHIPS = 5
PRODUCTS = {'MUL': (8, 16), 'MUL-PanSharpen': (8, 652), 'RGB-PanSharpen': (3, 652)}


def write_tif(path: Path, array: np.ndarray) -> None:
    bands, h, w = array.shape
    profile = {
        'driver': 'GTiff',
        'height': h,
        'width': w,
        'count': bands,
        'dtype': 'uint16',
        'crs': 'EPSG:4326',
        'transform': from_origin(
            -115.3, 36.2, 0.3 / 111_000 * 652 / h, 0.3 / 111_000 * 652 / h
        ),
        'compress': 'deflate',
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(array)


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    base = root / 'SN2_buildings'
    shutil.rmtree(base, ignore_errors=True)
    aoi = base / 'train' / 'AOI_2_Vegas'
    for i in range(1, CHIPS + 1):
        scene = rng.random((8, 4, 4)) * 1500 + 100
        for product, (bands, size) in PRODUCTS.items():
            (aoi / product).mkdir(parents=True, exist_ok=True)
            # smooth upsampling of a 4x4 scene: the products show the same ground
            reps = -(-size // 4)
            array = np.kron(scene, np.ones((reps, reps)))[:, :size, :size]
            if product == 'RGB-PanSharpen':
                array = array[[4, 2, 1]]
            write_tif(
                aoi / product / f'{product}_AOI_2_Vegas_img{i}.tif',
                array.astype(np.uint16),
            )
        labels = aoi / 'geojson' / 'buildings'
        labels.mkdir(parents=True, exist_ok=True)
        collection = {'type': 'FeatureCollection', 'features': []}
        (labels / f'buildings_AOI_2_Vegas_img{i}.geojson').write_text(
            json.dumps(collection)
        )


if __name__ == '__main__':
    main(Path(__file__).parent)
