#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake UC Merced in the layout torchgeo.datasets.UCMerced reads."""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

# all 21 classes, so labels and plots index the real class list
CLASSES = (
    'agricultural',
    'airplane',
    'baseballdiamond',
    'beach',
    'buildings',
    'chaparral',
    'denseresidential',
    'forest',
    'freeway',
    'golfcourse',
    'harbor',
    'intersection',
    'mediumresidential',
    'mobilehomepark',
    'overpass',
    'parkinglot',
    'river',
    'runway',
    'sparseresidential',
    'storagetanks',
    'tenniscourt',
)
SPLITS = {'train': range(1), 'val': range(1, 2), 'test': range(2, 3)}


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    shutil.rmtree(root / 'UCMerced_LandUse', ignore_errors=True)
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    for cls in CLASSES:
        folder = root / 'UCMerced_LandUse' / 'Images' / cls
        folder.mkdir(parents=True)
        for split, ids in SPLITS.items():
            for i in ids:
                name = f'{cls}{i:02d}.tif'
                rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(rgb).save(folder / name)
                names[split].append(name)
    for split, files in names.items():
        (root / f'uc_merced-{split}.txt').write_text('\n'.join(files) + '\n')


if __name__ == '__main__':
    main(Path(__file__).parent)
