#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake MLRSNet in the Mendeley layout, plus the "Download All" zip of it."""

import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = ('airplane', 'bareland', 'harbor&port')
LABELS = ('airplane', 'airport', 'bare soil', 'buildings', 'cars', 'dock', 'ships')
PER_CATEGORY = 5
SIZE = 16


def main(root: Path) -> None:
    base = root / 'MLRSNet'
    shutil.rmtree(base, ignore_errors=True)
    rng = np.random.default_rng(0)
    for category in CATEGORIES:
        (base / 'Images' / category).mkdir(parents=True)
        (base / 'Labels').mkdir(exist_ok=True)
        rows = [','.join(('image', *LABELS))]
        for i in range(1, PER_CATEGORY + 1):
            name = f'{category}_{i:05d}.jpg'
            array = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(array).save(base / 'Images' / category / name)
            labels = (rng.random(len(LABELS)) < 0.3).astype(int)
            rows.append(','.join((name, *map(str, labels))))
        (base / 'Labels' / f'{category}.csv').write_text('\r\n'.join(rows) + '\r\n')
    archive = root / '7j9bv9vwsx-3.zip'
    with zipfile.ZipFile(archive, 'w') as z:
        for path in sorted(base.rglob('*')):
            z.write(path, path.relative_to(base))


if __name__ == '__main__':
    main(Path(__file__).parent)
