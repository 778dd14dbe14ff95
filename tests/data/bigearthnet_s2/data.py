#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake BigEarthNet v2 (Sentinel-2 L2A, 12 bands) in the layout torchgeo reads.

Band files are named as the real ones (``<patch>_B01.tif`` ... ``_B8A.tif`` ... ``_B12.tif``);
band ``B..`` holds ``1000 * (its position in the stored order + 1) + noise``, so a test
can tell the bands apart.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

#: the stored (sorted) order of BigEarthNet's Sentinel-2 bands
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
LABELS = ('Mixed forest', 'Pastures', 'Marine waters', 'Arable land')
CODES = (313, 231, 523, 211)  # CORINE codes of a few classes, for the reference maps
COUNTS = {'train': 4, 'validation': 2, 'test': 2}
TILE = 'S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP'
SIZE = 8


def write(path: Path, array: np.typing.NDArray[np.uint16]) -> None:
    profile = {
        'driver': 'GTiff',
        'height': SIZE,
        'width': SIZE,
        'count': 1,
        'dtype': 'uint16',
        'crs': 'EPSG:32633',
        'transform': from_origin(0, 0, 10, 10),
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(array[None])


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in ('BigEarthNet-S1', 'BigEarthNet-S2', 'Reference_Maps'):
        shutil.rmtree(root / folder, ignore_errors=True)
    (root / 'BigEarthNet-S1').mkdir()  # torchgeo checks that it exists (git: a file)
    (root / 'BigEarthNet-S1' / '.gitkeep').touch()
    rows = []
    for split, n in COUNTS.items():
        for i in range(n):
            patch = f'{TILE}_{len(rows)}_{i}'
            s2 = root / 'BigEarthNet-S2' / TILE / patch
            maps = root / 'Reference_Maps' / TILE / patch
            s2.mkdir(parents=True)
            maps.mkdir(parents=True)
            for b, band in enumerate(BANDS):
                noise = rng.integers(0, 100, (SIZE, SIZE), dtype=np.uint16)
                write(s2 / f'{patch}_{band}.tif', noise + 1000 * (b + 1))
            codes = rng.choice(CODES, (SIZE, SIZE)).astype(np.uint16)
            write(maps / f'{patch}_reference_map.tif', codes)
            labels = sorted(rng.choice(LABELS, size=2, replace=False).tolist())
            rows.append(
                {'patch_id': patch, 'labels': labels, 'split': split, 's1_name': ''}
            )
    pd.DataFrame(rows).to_parquet(root / 'metadata.parquet', index=False)


if __name__ == '__main__':
    main(Path(__file__).parent)
