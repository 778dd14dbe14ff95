# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import numpy as np
import pytest

from torchgeo_gfm.datasets import GeoPile, write_synthetic_geopile
from torchgeo_gfm.datasets.synthetic import SCENES, synthetic_scene


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob('*.*')}


def test_layout_and_formats(tmp_path: Path) -> None:
    root = write_synthetic_geopile(tmp_path, images_per_class=4, sizes=(32, 40))
    assert root == tmp_path
    ds = GeoPile(root)
    assert len(ds) == 5 * len(SCENES) * 4
    assert set(ds.sources) == {'naip', 'rsd46whu', 'mlrsnet', 'resisc45', 'patternnet'}
    suffixes = {p.suffix for p in root.rglob('*.*')}
    assert suffixes == {'.jpg', '.png', '.tif'}


def test_deterministic(tmp_path: Path) -> None:
    kwargs = {'images_per_class': 2, 'sources': ['a'], 'sizes': (24,)}
    a = _files(write_synthetic_geopile(tmp_path / 'a', seed=3, **kwargs))  # type: ignore[arg-type]
    b = _files(write_synthetic_geopile(tmp_path / 'b', seed=3, **kwargs))  # type: ignore[arg-type]
    c = _files(write_synthetic_geopile(tmp_path / 'c', seed=4, **kwargs))  # type: ignore[arg-type]
    assert a == b
    assert a != c


def test_jpeg_only(tmp_path: Path) -> None:
    write_synthetic_geopile(
        tmp_path, images_per_class=3, sources=['x'], scenes=['urban'], formats=False
    )
    assert {p.suffix for p in tmp_path.rglob('*.*')} == {'.jpg'}


@pytest.mark.parametrize('scene', SCENES)
def test_scene_is_textured(scene: str) -> None:
    image = np.asarray(synthetic_scene(np.random.default_rng(0), scene, 64, 48))
    assert image.shape == (64, 48, 3)
    assert image.std() > 5  # not a flat colour


def test_unknown_scene() -> None:
    with pytest.raises(ValueError, match='unknown scene'):
        synthetic_scene(np.random.default_rng(0), 'desert', 8, 8)


@pytest.mark.parametrize(
    'kwargs', [{'images_per_class': 0}, {'sources': []}, {'scenes': []}, {'sizes': []}]
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match='needs images_per_class'):
        write_synthetic_geopile(tmp_path, **kwargs)  # type: ignore[arg-type]
