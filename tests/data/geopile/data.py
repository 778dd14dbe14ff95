#!/usr/bin/env python3

# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Make a tiny fake GeoPile (authors' layout, mixed sizes/formats/bit depths) next to this file."""

import shutil
from pathlib import Path

from torchgeo_gfm.datasets import write_synthetic_geopile

SOURCES = ('naip', 'rsd46whu', 'mlrsnet', 'resisc45', 'patternnet')


def main(root: Path) -> None:
    for source in SOURCES:
        shutil.rmtree(root / source, ignore_errors=True)
    write_synthetic_geopile(
        root,
        images_per_class=3,
        sources=SOURCES,
        scenes=('fields', 'urban'),
        sizes=(24, 32, 48),
        seed=0,
    )


if __name__ == '__main__':
    main(Path(__file__).parent)
