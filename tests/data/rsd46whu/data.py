#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake RSD46-WHU with its official train/test folders."""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ('Airplane', 'Bare land', 'Water')
COUNTS = {'train': 4, 'test': 2}
SIZE = 16


def main(root: Path) -> None:
    base = root / 'RSD46-WHU'
    shutil.rmtree(base, ignore_errors=True)
    rng = np.random.default_rng(0)
    for split, n in COUNTS.items():
        for cls in CLASSES:
            (base / split / cls).mkdir(parents=True)
            for i in range(n):
                array = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                Image.fromarray(array).save(base / split / cls / f'{split}_{i:04d}.jpg')


if __name__ == '__main__':
    main(Path(__file__).parent)
