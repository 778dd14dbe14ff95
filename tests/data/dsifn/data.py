#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake DSIFN in the authors' layout (train/val/test x t1/t2/mask)."""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32
COUNTS = {'train': 4, 'val': 2, 'test': 2}


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in COUNTS.items():
        shutil.rmtree(root / split, ignore_errors=True)
        for d in ('t1', 't2', 'mask'):
            (root / split / d).mkdir(parents=True)
        for i in range(n):
            for d in ('t1', 't2'):
                rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                Image.fromarray(rgb).save(root / split / d / f'{i}.jpg')
            mask = (rng.random((SIZE, SIZE)) > 0.7).astype(np.uint8) * 255
            # the authors' test masks are .tif, train/val .png
            suffix = '.tif' if split == 'test' else '.png'
            Image.fromarray(mask).save(root / split / 'mask' / f'{i}{suffix}')


if __name__ == '__main__':
    main(Path(__file__).parent)
