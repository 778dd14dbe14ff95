# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Image finding and reading shared by the GeoPile datasets: any common format to RGB uint8.

Finding (:func:`find_images`, :class:`ImageFinder`) follows folder symlinks safely: each
folder and file is taken once, symlink loops are not followed, and folders that cannot be
listed are named in a warning rather than silently left out.

Conversion rule (applied to every image, so one batch can mix formats):

* 8-bit RGB: unchanged.
* grayscale (``L``, ``1``, ``LA``): replicated to three channels; palette: its colours.
* RGBA / RGBX / CMYK / YCbCr: converted to RGB; alpha is dropped (as the authors' loader did
  with ``img.convert('RGB')``).
* 16-bit, 32-bit integer or float images (16-bit PNG of any band count, GeoTIFF ``uint16``
  ...): linearly stretched so that the 2nd percentile of the whole image (all bands together,
  so colours keep their balance) maps to 0 and the 98th to 255, then clipped; where those two
  percentiles coincide, the minimum and maximum are used instead. Sensor data rarely fills the
  16-bit range, so a fixed ``/257`` (or PIL's 16-to-8-bit truncation) would give near-black
  images. Non-finite pixels (NaN, inf: nodata) are left out of the percentiles and become 0.
* degenerate images: a 16-bit/float image that is constant or has no finite pixel has no
  contrast and no known display range, so it cannot become a meaningful picture; reading it
  raises :class:`DegenerateImageError` (GeoPile skips and counts such files). An 8-bit image
  is taken as it is, flat or not: its levels are colours.
* more than three bands (e.g. NAIP RGB + NIR): the first three are taken as RGB; two bands:
  the first is taken as grayscale.

.. versionadded:: 0.1
"""

import os
import warnings
import zlib
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


class DegenerateImageError(ValueError):
    """Raised when an image has no content to learn from (constant, or no finite pixel).

    .. versionadded:: 0.1
    """


#: ImageFinder attribute -> (what was left out, what to do), for its warnings.
_FINDER_PROBLEMS: dict[str, tuple[str, str]] = {
    'unreadable': (
        'folder(s) could not be listed, so their images are left out',
        (
            'Give the user that runs training read and execute permission (chmod -R a+rX) '
            'or remove them'
        ),
    ),
    'skipped_links': (
        (
            'directory link(s) were not followed (their target is already included; no '
            'image is counted twice)'
        ),
        'Remove the link(s) to silence this warning',
    ),
    'broken_links': (
        'image link(s) point to no readable file and are left out',
        'Fix or remove the link(s)',
    ),
}


class ImageFinder:
    """Find image files under folders, each file once however it is reached.

    Real folders are walked first; a directory symlink is followed afterwards, and only
    if its target was not walked already (so a symlink loop, or a second link to the
    same folder, adds nothing). File links and hard links to a file already found are
    dropped. Hidden files and folders are skipped. What was left out is recorded and
    reported by :meth:`warn`: folders that could not be listed (e.g. no permission),
    directory links not followed, links to missing files.

    One finder may search several folders; a file is counted once across all of them.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        """Initialize a new ImageFinder."""
        self.unreadable: list[str] = []
        self.skipped_links: list[str] = []
        self.broken_links: list[str] = []
        self._dirs: set[tuple[int, int]] = set()
        self._files: set[tuple[int, int]] = set()

    def find(self, folder: str | os.PathLike[str]) -> list[str]:
        """All image files under ``folder`` (any depth), sorted.

        Args:
            folder: folder to search.

        Returns:
            Sorted file paths, none of them already returned by this finder.
        """
        found: list[str] = []
        dir_links: list[str] = [os.fspath(folder)]
        file_links: list[str] = []
        while dir_links:  # each round walks the real folders under the new targets
            link = dir_links.pop(0)
            if self._enter(link):
                self._walk(link, found, dir_links, file_links)
        for path in file_links:  # after the real files, so those are the ones kept
            try:
                st = os.stat(path)
            except OSError:
                self.broken_links.append(path)
                continue
            if self._new(self._files, (st.st_dev, st.st_ino)):
                found.append(path)
        return sorted(found)

    def _enter(self, path: str) -> bool:
        """Whether a folder (given or reached by a link) is new; records it if so."""
        try:
            st = os.stat(path)
        except OSError as error:
            self.unreadable.append(f'{path} ({type(error).__name__})')
            return False
        target = os.path.realpath(path)
        here = os.path.realpath(os.path.dirname(path))
        if os.path.commonpath([target, here]) == target:  # leads to its own ancestor
            reason = 'a symlink loop: it leads back to a folder above it'
        elif self._new(self._dirs, (st.st_dev, st.st_ino)):
            return True
        else:
            reason = 'already included'
        self.skipped_links.append(f'{path} -> {target} ({reason})')
        return False

    def _walk(
        self, top: str, found: list[str], dir_links: list[str], file_links: list[str]
    ) -> None:
        """Walk the real folders under ``top`` in name order; collect links for later."""
        stack = [top]
        while stack:
            path = stack.pop()
            try:
                dev = os.stat(path).st_dev
                with os.scandir(path) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as error:
                self.unreadable.append(f'{path} ({type(error).__name__})')
                continue
            folders = []
            for entry in entries:
                if entry.name.startswith('.'):
                    continue
                if entry.is_symlink():
                    links = dir_links if entry.is_dir() else file_links
                    if links is dir_links or is_image(entry.name):
                        links.append(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    if self._new(self._dirs, (dev, entry.inode())):
                        folders.append(entry.path)
                elif is_image(entry.name) and self._new(
                    self._files, (dev, entry.inode())
                ):
                    found.append(entry.path)
            stack.extend(reversed(folders))  # so the first name is walked first

    @staticmethod
    def _new(seen: set[tuple[int, int]], key: tuple[int, int]) -> bool:
        """Add ``key`` to ``seen``; whether it was not there."""
        if key in seen:
            return False
        seen.add(key)
        return True

    def warn(self, where: str | os.PathLike[str], stacklevel: int = 2) -> None:
        """Warn once per kind of problem met so far, naming the paths.

        Args:
            where: the searched root, for the messages.
            stacklevel: passed to :func:`warnings.warn` (1 is the caller of this method).
        """
        for attr, (what, action) in _FINDER_PROBLEMS.items():
            paths: list[str] = getattr(self, attr)
            if paths:
                shown = '; '.join(paths[:5]) + ('; ...' if len(paths) > 5 else '')
                warnings.warn(
                    f'under {os.fspath(where)!r}, {len(paths)} {what}: {shown}. {action}',
                    UserWarning,
                    stacklevel=stacklevel + 1,
                )


def find_images(folder: str | os.PathLike[str]) -> list[str]:
    """All image files under ``folder`` (any depth, hidden files skipped), sorted.

    Symlink loops and duplicate links are not followed and unlistable folders are left
    out, each with a warning (see :class:`ImageFinder`).

    Args:
        folder: folder to search.

    Returns:
        Sorted file paths, each file once.

    .. versionadded:: 0.1
    """
    finder = ImageFinder()
    found = finder.find(folder)
    finder.warn(folder, stacklevel=2)
    return found


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

    Raises:
        DegenerateImageError: if the array is constant or has no finite value.

    .. versionadded:: 0.1
    """
    data = array.astype(np.float32, copy=False)
    finite = np.isfinite(data)
    valid = data if finite.all() else data[finite]
    if not valid.size:
        raise DegenerateImageError(
            f'no finite pixel ({array.dtype} image, all NaN/inf): nothing to show'
        )
    lo, hi = np.percentile(valid, (lower, upper))
    if hi <= lo:  # a few outliers on a flat image: stretch between them
        lo, hi = valid.min(), valid.max()
    if hi <= lo:
        raise DegenerateImageError(
            f'constant {array.dtype} image (every pixel {lo:g}): no contrast and no '
            'known display range'
        )
    out = (np.where(finite, data, lo) - lo) * (255.0 / (hi - lo))
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
    """Whether PIL cannot be trusted with this file (deep or many-band TIFF, 16-bit PNG).

    PIL decodes 16-bit RGB(A)/LA PNGs to 8 bits by dropping the low byte, which turns
    12-bit sensor data near-black; GDAL (rasterio) reads them at full depth.
    """
    if image.format == 'PNG':
        tiles = getattr(image, 'tile', [])  # decoder arguments hold the raw mode
        return any(';16' in str(tile.args) for tile in tiles)
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
        DegenerateImageError: if a 16-bit or float image is constant or all NaN.

    .. versionadded:: 0.1
    """
    try:
        return _open_rgb(path, min_size)
    except DegenerateImageError as error:
        raise DegenerateImageError(f'{path}: {error}') from None


def _open_rgb(path: str, min_size: int | None) -> Image.Image:
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
        DegenerateImageError: if a 16-bit or float image is constant or all NaN.

    .. versionadded:: 0.1
    """
    image = pil_to_tensor(open_rgb(os.fspath(path), min_size=size))
    return fit_square(image, size) if size is not None else image


def hash_fraction(key: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) from a string, for file-based splits.

    CRC-32 rather than :func:`hash`, which Python salts per process: a file must land
    in the same split on every machine and in every DataLoader worker.

    Args:
        key: e.g. a file name.
        seed: changes the assignment.

    Returns:
        The number.

    .. versionadded:: 0.1
    """
    return zlib.crc32(f'{seed}/{key}'.encode(errors='surrogateescape')) / 2**32


def read_binary_mask(path: str | os.PathLike[str]) -> Tensor:
    """Read a 0/255 (or 0/1) mask as a long ``[1, H, W]`` tensor of 0/1.

    Args:
        path: mask file.

    Returns:
        The mask: 1 where the file is non-zero.

    .. versionadded:: 0.1
    """
    with Image.open(path) as img:
        array = np.array(img.convert('L'))
    return torch.from_numpy(array > 0).long().unsqueeze(0)
