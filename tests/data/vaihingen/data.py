#!/usr/bin/env python3
# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake ISPRS Vaihingen in the layout torchgeo.datasets.Vaihingen2D reads."""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from torchgeo.datasets import Vaihingen2D


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    shutil.rmtree(root / 'top', ignore_errors=True)
    for path in root.glob('top_mosaic_*.tif'):
        path.unlink()
    (root / 'top').mkdir()
    colors = np.array(Vaihingen2D.colormap, dtype=np.uint8)
    names = Vaihingen2D.splits['train'][:5] + Vaihingen2D.splits['test'][:2]
    for name in names:
        # tiles differ in size, as in Vaihingen
        h, w = (int(x) for x in rng.integers(36, 60, 2))
        irrg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(irrg).save(root / 'top' / name)
        classes = rng.integers(0, len(colors), (h, w))
        Image.fromarray(colors[classes]).save(root / name)


if __name__ == '__main__':
    main(Path(__file__).parent)
