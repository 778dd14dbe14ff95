#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake WHU Aerial building zip, laid out like the authors' one."""

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32
COUNTS = {'train': 4, 'val': 2, 'test': 2}
DIRECTORY = '3. The cropped image tiles and raster labels'
ZIP = '3. The cropped aerial image tiles and raster labels.zip'


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    tree = root / DIRECTORY
    shutil.rmtree(tree, ignore_errors=True)
    for split, n in COUNTS.items():
        for d in ('image', 'label'):
            (tree / split / d).mkdir(parents=True)
        for i in range(n):
            name = f'{split}_{i}.tif'
            rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(tree / split / 'image' / name)
            label = (rng.random((SIZE, SIZE)) > 0.6).astype(np.uint8) * 255
            Image.fromarray(label).save(tree / split / 'label' / name)
    with zipfile.ZipFile(root / ZIP, 'w') as z:
        for path in sorted(tree.rglob('*.tif')):
            z.write(path, path.relative_to(root))
    print(hashlib.md5((root / ZIP).read_bytes()).hexdigest())


if __name__ == '__main__':
    main(Path(__file__).parent)
