#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake BigEarthNet (v1, Sentinel-2) in the layout torchgeo reads."""

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

BANDS = (
    'B01',
    'B02',
    'B03',
    'B04',
    'B05',
    'B06',
    'B07',
    'B08',
    'B8A',
    'B09',
    'B11',
    'B12',
)
LABELS = ('Mixed forest', 'Pastures', 'Sea and ocean', 'Non-irrigated arable land')
COUNTS = {'train': 10, 'val': 2, 'test': 2}


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    s2 = root / 'BigEarthNet-v1.0'
    s1 = root / 'BigEarthNet-S1-v1.0'
    shutil.rmtree(s2, ignore_errors=True)
    shutil.rmtree(s1, ignore_errors=True)
    for split, n in COUNTS.items():
        lines = []
        for i in range(n):
            patch = f'S2A_MSIL2A_20170613T101031_{split}_{i}'
            folder = s2 / patch
            folder.mkdir(parents=True)
            for band in BANDS:
                profile = {
                    'driver': 'GTiff',
                    'height': 8,
                    'width': 8,
                    'count': 1,
                    'dtype': 'uint16',
                    'crs': 'EPSG:32633',
                    'transform': from_origin(0, 0, 150, 150),
                }
                with rasterio.open(
                    folder / f'{patch}_{band}.tif', 'w', **profile
                ) as dst:
                    dst.write(rng.integers(0, 10000, (1, 8, 8), dtype=np.uint16))
            labels = list(rng.choice(LABELS, size=2, replace=False))
            meta = {'labels': labels}
            (folder / f'{patch}_labels_metadata.json').write_text(json.dumps(meta))
            (s1 / f'S1_{split}_{i}').mkdir(parents=True)
            lines.append(f'{patch},S1_{split}_{i}')
        (root / f'bigearthnet-{split}.csv').write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main(Path(__file__).parent)
