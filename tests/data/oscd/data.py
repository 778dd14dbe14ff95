#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake OSCD in the layout torchgeo.datasets.OSCD reads."""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

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
    'B10',
    'B11',
    'B12',
)
REGIONS = {
    'Train': ('abudhabi', 'aguasclaras', 'beihai', 'beirut', 'bercy'),
    'Test': ('brasilia', 'chongqing'),
}
IMAGES = 'Onera Satellite Change Detection dataset - Images'


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for path in root.glob('Onera*'):
        shutil.rmtree(path)
    for split, regions in REGIONS.items():
        for region in regions:
            # cities differ in size, as in OSCD
            h, w = (int(x) for x in rng.integers(30, 50, 2))
            for t in (1, 2):
                folder = root / IMAGES / region / f'imgs_{t}_rect'
                folder.mkdir(parents=True)
                for band in BANDS:
                    array = rng.integers(0, 4000, (h, w), dtype=np.uint16)
                    Image.fromarray(array).save(folder / f'{band}.tif')
            (root / IMAGES / region / 'dates.txt').write_text(
                'date_1: 20160101\ndate_2: 20180101\n'
            )
            cm = (
                root
                / f'Onera Satellite Change Detection dataset - {split} Labels'
                / region
                / 'cm'
            )
            cm.mkdir(parents=True)
            mask = (rng.random((h, w)) > 0.8).astype(np.uint8) * 255
            Image.fromarray(mask).save(cm / 'cm.png')


if __name__ == '__main__':
    main(Path(__file__).parent)
