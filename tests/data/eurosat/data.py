#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake EuroSAT (13-band GeoTIFFs) in the layout torchgeo reads.

The files store the bands as the real ones: B01 ... B12, then B8A (13th). Band ``i`` of
every pixel holds ``1000 * (i + 1) + noise``, so a test can tell the bands apart.
"""

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CLASSES = (
    'AnnualCrop',
    'Forest',
    'HerbaceousVegetation',
    'Highway',
    'Industrial',
    'Pasture',
    'PermanentCrop',
    'Residential',
    'River',
    'SeaLake',
)
#: torchvision's ImageFolder wants every class in every split: one image each
SPLITS = ('train', 'val', 'test')
BASE = Path('ds', 'images', 'remote_sensing', 'otherDatasets', 'sentinel_2', 'tif')
SIZE = 8
BANDS = 13


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    shutil.rmtree(root / 'ds', ignore_errors=True)
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    for cls in CLASSES:
        (root / BASE / cls).mkdir(parents=True)
        for i, split in enumerate(SPLITS):
            name = f'{cls}_{i + 1}.tif'
            band = 1000 * np.arange(1, BANDS + 1, dtype=np.uint16)[:, None, None]
            noise = rng.integers(0, 100, (BANDS, SIZE, SIZE), dtype=np.uint16)
            profile = {
                'driver': 'GTiff',
                'height': SIZE,
                'width': SIZE,
                'count': BANDS,
                'dtype': 'uint16',
                'crs': 'EPSG:32631',
                'transform': from_origin(0, 0, 10, 10),
            }
            with rasterio.open(root / BASE / cls / name, 'w', **profile) as dst:
                dst.write(band + noise)
            names[split].append(name.replace('.tif', '.jpg'))  # as the real lists
    for split, lines in names.items():
        (root / f'eurosat-{split}.txt').write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main(Path(__file__).parent)
