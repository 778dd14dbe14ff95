# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Image reading shared by the GeoPile datasets: any common format to RGB uint8.

Conversion rule (applied to every image, so one batch can mix formats):

* 8-bit RGB: unchanged.
* grayscale (``L``, ``1``, ``LA``): replicated to three channels; palette: its colours.
* RGBA / RGBX / CMYK / YCbCr: converted to RGB; alpha is dropped (as the authors' loader did
  with ``img.convert('RGB')``).
* 16-bit, 32-bit integer or float images (PNG ``I;16``, GeoTIFF ``uint16`` ...): linearly
  stretched so that the 2nd percentile of the whole image (all bands together, so colours keep
  their balance) maps to 0 and the 98th to 255, then clipped. Sensor data rarely fills the
  16-bit range, so a fixed ``/257`` would give near-black images.
* more than three bands (e.g. NAIP RGB + NIR): the first three are taken as RGB; two bands:
  the first is taken as grayscale.

.. versionadded:: 0.1
"""

import os
import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

#: File suffixes read as images (those of torchvision's ImageFolder).
IMG_EXTENSIONS: tuple[str, ...] = (
    '.jpg',
    '.jpeg',
    '.png',
    '.ppm',
    '.bmp',
    '.pgm',
    '.tif',
    '.tiff',
    '.webp',
)

_TIFF = ('.tif', '.tiff')
# TIFF tags: BitsPerSample, SamplesPerPixel
_BITS, _SAMPLES = 258, 277


def is_image(name: str) -> bool:
    """Whether a file name is a (non-hidden) image of a supported format.

    Args:
        name: file name.

    Returns:
        True for a supported image suffix.

    .. versionadded:: 0.1
    """
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith('.')


def find_images(folder: str | os.PathLike[str]) -> list[str]:
    """All image files under ``folder`` (any depth, hidden files skipped), sorted.

    Args:
        folder: folder to search.

    Returns:
        Sorted file paths.

    .. versionadded:: 0.1
    """
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith('.')]
        found.extend(os.path.join(dirpath, f) for f in filenames if is_image(f))
    return sorted(found)


def stretch_to_uint8(
    array: npt.NDArray[np.generic], lower: float = 2, upper: float = 98
) -> npt.NDArray[np.uint8]:
    """Linearly stretch an array of any numeric type to uint8 between two percentiles.

    Args:
        array: the image, any shape; percentiles are over all of it.
        lower: percentile mapped to 0.
        upper: percentile mapped to 255.

    Returns:
        The stretched uint8 array, same shape.

    .. versionadded:: 0.1
    """
    data = np.nan_to_num(array.astype(np.float32, copy=False))
    lo, hi = np.percentile(data, (lower, upper))
    if hi <= lo:  # flat image: keep its level relative to the data range
        hi = lo + 1.0
    out = (data - lo) * (255.0 / (hi - lo))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def array_to_rgb(array: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Convert an HWC (or HW) array of any band count and dtype to HWC RGB uint8.

    Args:
        array: the image, ``[H, W]`` or ``[H, W, C]``.

    Returns:
        ``[H, W, 3]`` uint8, by the rule in this module's docstring.

    Raises:
        ValueError: if the array is not 2-D or 3-D.

    .. versionadded:: 0.1
    """
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            f'expected an [H, W] or [H, W, C] image, got shape {array.shape}'
        )
    array = array[:, :, :3] if array.shape[2] >= 3 else array[:, :, :1]
    if array.dtype != np.uint8:
        array = stretch_to_uint8(array)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def _needs_rasterio(image: Image.Image, path: str) -> bool:
    """Whether PIL cannot be trusted with this TIFF (deep or many-band, e.g. GeoTIFF)."""
    if not path.lower().endswith(_TIFF):
        return False
    tags = getattr(image, 'tag_v2', {})
    bits = tags.get(_BITS, (8,))
    bits = bits if isinstance(bits, Sequence) else (bits,)
    return any(b > 8 for b in bits) or tags.get(_SAMPLES, 1) not in (1, 3)


def _read_rasterio(path: str) -> Image.Image:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():  # plain TIFFs have no georeference; pixels suffice
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            bands = src.read(indexes=list(range(1, min(src.count, 3) + 1)))
    return Image.fromarray(array_to_rgb(np.moveaxis(bands, 0, -1)))


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == 'RGB':
        return image
    if image.mode in ('I', 'F') or image.mode.startswith('I;16'):
        return Image.fromarray(array_to_rgb(np.asarray(image)))
    return image.convert('RGB')


def open_rgb(path: str, min_size: int | None = None) -> Image.Image:
    """Open an image file as a decoded 8-bit RGB PIL image.

    JPEGs are decoded at a reduced DCT scale (1/2, 1/4 or 1/8; PIL's ``draft``) when both
    sides stay at least ``min_size``: large JPEGs then cost a fraction of a full decode.

    Args:
        path: image file.
        min_size: smallest side the caller needs; None decodes at full size.

    Returns:
        The RGB image, fully loaded (the file is closed).

    Raises:
        OSError: (or another decoder error) if the file is unreadable or corrupt.

    .. versionadded:: 0.1
    """
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        if path.lower().endswith(_TIFF):  # e.g. 16-bit multi-band GeoTIFF
            return _read_rasterio(path)
        raise
    with image:
        if _needs_rasterio(image, path):
            return _read_rasterio(path)
        if min_size is not None and image.format == 'JPEG':
            image.draft('RGB', (min_size, min_size))
        image.load()  # decode now, so truncation errors surface here
        return _pil_to_rgb(image)


def fit_square(image: Tensor, size: int) -> Tensor:
    """Cut a random square of the shorter side and resize it to ``size`` x ``size``.

    The crop is a view; the resize is torch's antialiased bilinear kernel for uint8
    (matches PIL's to +-1 level, about twice as fast). An image already ``size`` x
    ``size`` is returned untouched. The crop offset uses torch's RNG, which DataLoader
    seeds differently per worker.

    Args:
        image: uint8 ``[3, H, W]``.
        size: output side in pixels.

    Returns:
        The uint8 ``[3, size, size]`` image.

    .. versionadded:: 0.1
    """
    h, w = image.shape[-2:]
    if h == w == size:
        return image
    side = min(h, w)
    y = int(torch.randint(h - side + 1, ()).item())
    x = int(torch.randint(w - side + 1, ()).item())
    crop = image[None, :, y : y + side, x : x + side]
    out = F.interpolate(crop, size=(size, size), mode='bilinear', antialias=True)
    return out[0]


def pil_to_tensor(image: Image.Image) -> Tensor:
    """RGB PIL image to a uint8 ``[3, H, W]`` tensor (one copy, no float conversion).

    Args:
        image: RGB image.

    Returns:
        The tensor.

    .. versionadded:: 0.1
    """
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def read_rgb(path: str | os.PathLike[str], size: int | None = None) -> Tensor:
    """Read any supported image file as a uint8 ``[3, H, W]`` tensor.

    Args:
        path: image file (JPEG, PNG, TIFF/GeoTIFF, BMP, WebP ...).
        size: if given, a random square of the shorter side is resized to ``size`` x
            ``size`` (see :func:`fit_square`); None keeps the native size.

    Returns:
        The image, converted by the rule in this module's docstring.

    Raises:
        OSError: (or another decoder error) if the file is unreadable or corrupt.

    .. versionadded:: 0.1
    """
    image = pil_to_tensor(open_rgb(os.fspath(path), min_size=size))
    return fit_square(image, size) if size is not None else image
