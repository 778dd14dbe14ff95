# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Procedurally generated stand-in for GeoPile: synthetic scenes in the authors' layout.

Nothing here is real imagery. The scenes (crop fields, road networks, water bodies,
building blocks with shadows, forest canopy) are drawn from smooth and fine noise so that
models and pipelines see texture, edges and colour variety, at several sizes and in every
format GeoPile readers must cope with. Used by the embedded demo, the tests and the data
benchmark.

.. versionadded:: 0.1
"""

import itertools
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

#: Source folders written by default (the five GeoPile sources of the GFM paper).
SYNTHETIC_SOURCES: tuple[str, ...] = (
    'naip',
    'rsd46whu',
    'mlrsnet',
    'resisc45',
    'patternnet',
)

#: Scene kinds, one class folder each.
SCENES: tuple[str, ...] = ('fields', 'urban', 'water', 'forest', 'roads')

Rng = np.random.Generator
Array = npt.NDArray[np.float32]


def _smooth(rng: Rng, h: int, w: int, cell: int, channels: int = 1) -> Array:
    """Smooth noise in [0, 1]: random values on a coarse grid, bicubic-upsampled."""
    gh, gw = max(2, h // cell), max(2, w // cell)
    coarse = rng.random((gh, gw, channels), dtype=np.float32)
    layers = [
        np.asarray(
            Image.fromarray(coarse[:, :, c], mode='F').resize(
                (w, h), Image.Resampling.BICUBIC
            )
        )
        for c in range(channels)
    ]
    return np.clip(np.stack(layers, axis=-1), 0, 1)


def _ground(rng: Rng, h: int, w: int, palette: Sequence[Sequence[int]]) -> Array:
    """A blotchy background mixing two palette colours plus fine grain."""
    a, b = (np.asarray(palette[i], np.float32) for i in rng.choice(len(palette), 2))
    t = _smooth(rng, h, w, cell=int(rng.integers(24, 64)))
    grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return a * t + b * (1 - t) + grain


_SOIL = ((120, 100, 70), (150, 130, 90), (95, 110, 60), (170, 160, 120))
_GREEN = ((40, 80, 35), (60, 100, 45), (30, 60, 30), (80, 110, 60))
_CROPS = ((90, 140, 60), (170, 150, 80), (130, 110, 70), (60, 120, 50), (200, 180, 110))
_ROOFS = ((180, 90, 70), (160, 160, 165), (90, 90, 100), (200, 200, 190), (120, 70, 50))


def _fields(rng: Rng, img: Array) -> None:
    """Rectangular parcels, each a crop colour with rows at a random angle."""
    h, w, _ = img.shape
    ys = np.sort(np.r_[0, rng.integers(8, h, rng.integers(1, 5)), h])
    xs = np.sort(np.r_[0, rng.integers(8, w, rng.integers(1, 5)), w])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for y0, y1 in itertools.pairwise(ys):
        for x0, x1 in itertools.pairwise(xs):
            angle = rng.uniform(0, np.pi)
            period = rng.uniform(3, 10)
            phase = xx[y0:y1, x0:x1] * np.cos(angle) + yy[y0:y1, x0:x1] * np.sin(angle)
            rows = 0.85 + 0.15 * np.sin(2 * np.pi * phase / period)
            colour = np.asarray(_CROPS[rng.integers(len(_CROPS))], np.float32)
            img[y0:y1, x0:x1] = colour * rows[..., None] + rng.normal(0, 4, 3)


def _water(rng: Rng, img: Array) -> None:
    """A lake or coastline: thresholded smooth noise, dark blue-green with ripples."""
    h, w, _ = img.shape
    shape = _smooth(rng, h, w, cell=int(rng.integers(32, 96)))[..., 0]
    mask = shape > np.quantile(shape, rng.uniform(0.3, 0.7))
    depth = _smooth(rng, h, w, cell=16)
    tint = np.asarray((0.3, 0.6, 1.0), np.float32)
    colour = np.asarray((25, 60, 80), np.float32) + 30 * depth * tint
    img[mask] = colour[mask]


def _roads(draw: ImageDraw.ImageDraw, rng: Rng, w: int, h: int) -> None:
    """A few straight roads crossing the scene, with lane markings."""
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            y = int(rng.integers(0, h))
            line = (0, y, w, y + int(rng.integers(-h // 3, h // 3)))
        else:
            x = int(rng.integers(0, w))
            line = (x, 0, x + int(rng.integers(-w // 3, w // 3)), h)
        width = int(rng.integers(4, 12))
        draw.line(line, fill=(70, 70, 72), width=width)
        draw.line(line, fill=(200, 200, 190), width=1)


def _buildings(draw: ImageDraw.ImageDraw, rng: Rng, w: int, h: int, n: int) -> None:
    """Rectangular roofs with a shadow cast to the lower right."""
    for _ in range(n):
        bw, bh = int(rng.integers(6, 28)), int(rng.integers(6, 28))
        x, y = (
            int(rng.integers(0, max(1, w - bw))),
            int(rng.integers(0, max(1, h - bh))),
        )
        s = int(rng.integers(2, 6))
        draw.rectangle((x + s, y + s, x + bw + s, y + bh + s), fill=(35, 35, 35))
        roof = tuple(int(c) for c in _ROOFS[rng.integers(len(_ROOFS))])
        draw.rectangle((x, y, x + bw, y + bh), fill=roof)


def _forest(rng: Rng, img: Array) -> None:
    """Tree canopy: dark green with blobby crowns."""
    h, w, _ = img.shape
    crowns = _smooth(rng, h, w, cell=4)
    green = np.asarray(_GREEN[rng.integers(len(_GREEN))], np.float32)
    img[:] = green * (0.6 + 0.8 * crowns)


def synthetic_scene(rng: Rng, scene: str, height: int, width: int) -> Image.Image:
    """Draw one synthetic aerial-like RGB scene.

    Args:
        rng: random generator (the scene is a pure function of its state).
        scene: one of :data:`SCENES`.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        An 8-bit RGB image.

    Raises:
        ValueError: if ``scene`` is unknown.

    .. versionadded:: 0.1
    """
    if scene not in SCENES:
        raise ValueError(f'unknown scene {scene!r}; choose one of {SCENES}')
    img = _ground(rng, height, width, _SOIL)
    painters: dict[str, Callable[[Rng, Array], None]] = {
        'fields': _fields,
        'water': _water,
        'forest': _forest,
    }
    if scene in painters:
        painters[scene](rng, img)
    if scene != 'forest' and rng.random() < 0.5:  # mixed land use
        (_water if scene == 'fields' else _fields)(rng, img)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    if scene in ('roads', 'urban') or rng.random() < 0.3:
        _roads(draw, rng, width, height)
    if scene == 'urban':
        _buildings(draw, rng, width, height, n=int(rng.integers(15, 60)))
    elif scene != 'water' and rng.random() < 0.3:
        _buildings(draw, rng, width, height, n=int(rng.integers(1, 8)))
    return pil


def _save(image: Image.Image, path: Path, variant: str) -> None:
    """Write ``image`` (path without suffix) in the format/mode of ``variant``."""
    if variant == 'jpg':
        image.save(path.with_suffix('.jpg'), quality=90)
    elif variant == 'png':
        image.save(path.with_suffix('.png'))
    elif variant == 'tif':
        image.save(path.with_suffix('.tif'))
    elif variant == 'gray':
        image.convert('L').save(path.with_suffix('.png'))
    elif variant == 'rgba':
        rgba = image.convert('RGBA')
        rgba.putalpha(200)
        rgba.save(path.with_suffix('.png'))
    elif variant == 'gray16':
        gray = np.asarray(image.convert('L'), np.uint16) * 16 + 300  # 12-bit-like range
        Image.fromarray(gray).save(path.with_suffix('.png'))
    else:  # 'rgb16': a 3-band uint16 GeoTIFF, as sensors deliver
        _save_geotiff16(image, path.with_suffix('.tif'))


def _save_geotiff16(image: Image.Image, path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    bands = np.moveaxis(np.asarray(image, np.uint16) * 16 + 100, -1, 0)
    profile = {
        'driver': 'GTiff',
        'dtype': 'uint16',
        'count': 3,
        'height': bands.shape[1],
        'width': bands.shape[2],
        'crs': 'EPSG:3857',  # georeferenced like real sensor data, 1 m pixels
        'transform': from_origin(500_000, 4_500_000, 1, 1),
    }
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(bands)


def _variant(rng: Rng) -> str:
    """Mostly JPEG like GeoPile; some PNG/TIFF and a few odd modes and bit depths."""
    kinds = ('jpg', 'png', 'tif', 'gray', 'rgba', 'gray16', 'rgb16')
    return str(rng.choice(kinds, p=(0.6, 0.12, 0.08, 0.05, 0.05, 0.05, 0.05)))


def write_synthetic_geopile(
    root: str | os.PathLike[str],
    images_per_class: int = 4,
    sources: Sequence[str] = SYNTHETIC_SOURCES,
    scenes: Sequence[str] = SCENES,
    sizes: Sequence[int] = (128, 192, 256, 320),
    formats: bool = True,
    seed: int = 0,
) -> Path:
    """Write a synthetic, procedurally generated sample in the GeoPile folder layout.

    Layout: ``root/<source>/<scene>/<source>_<scene>_<i>.<ext>``, the layout of the
    authors' GeoPile release (one ImageFolder tree per source). Sides are drawn from
    ``sizes`` (some images are not square). With ``formats``, about 60% of files are
    JPEG and the rest PNG, TIFF, grayscale, RGBA, 16-bit grayscale PNG and 16-bit 3-band
    GeoTIFF; without it, all are RGB JPEG. Each image depends only on ``seed`` and its
    position, so output is identical across runs and machines with the same libraries.

    Args:
        root: output folder (created; existing files with the same names are replaced).
        images_per_class: images per scene folder of each source.
        sources: source folder names.
        scenes: scene (class) folder names, each from :data:`SCENES`.
        sizes: candidate image sides in pixels.
        formats: mix formats, colour modes and bit depths (else RGB JPEG only).
        seed: random seed.

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: if an argument is empty or a scene is unknown.

    .. versionadded:: 0.1
    """
    if images_per_class < 1 or not sources or not scenes or not sizes:
        raise ValueError(
            'write_synthetic_geopile needs images_per_class >= 1 and non-empty '
            'sources, scenes and sizes'
        )
    root = Path(root)
    for source in sources:
        for scene in scenes:
            folder = root / source / scene
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(images_per_class):
                # one independent stream per file: stable if other arguments change
                key = zlib.crc32(f'{source}/{scene}/{i}'.encode())
                rng = np.random.default_rng([seed, key])
                h, w = (int(s) for s in rng.choice(sizes, 2))
                if rng.random() < 0.6:
                    w = h
                image = synthetic_scene(rng, scene, h, w)
                variant = _variant(rng) if formats else 'jpg'
                _save(image, folder / f'{source}_{scene}_{i:04d}', variant)
    return root
