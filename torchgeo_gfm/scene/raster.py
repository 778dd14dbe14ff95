# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading scenes: the input rasters checked once, then read window by window.

Everything here is rasterio: inputs are checked once up front (readable, bands, overlap,
CRS), then each worker thread opens its own handles (GDAL handles are not thread-safe).
A second, co-registered raster whose grid differs from the first's is resampled onto the
first's grid by a :class:`rasterio.vrt.WarpedVRT`, window by window.

A pixel is valid where every raster has data: GDAL's dataset mask (nodata value, NaN
nodata, mask or alpha band), finite values in every band (NaN/Inf without a nodata tag
are nodata too), and, for a resampled raster, inside its footprint (the warped raster gets
an alpha band, so what it does not cover is nodata, never zeros). A raster without a CRS
is read in its pixel space: outputs have its transform and no CRS (a warning says so);
callers that need geography (embeddings in EPSG:4326) refuse it. Where windows lie is
:mod:`.footprints`; what is written, :mod:`.writers`.

.. versionadded:: 0.1
"""

import contextlib
import datetime as dt
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.coords import disjoint_bounds
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from .._deprecated import moved
from .errors import SceneError, gdal_cause
from .footprints import footprint

logger = logging.getLogger(__name__)

#: TIFF/GDAL metadata items that may hold the acquisition time, in order of preference
DATETIME_TAGS = ('ACQUISITIONDATETIME', 'DATETIME', 'TIFFTAG_DATETIME')


@dataclass(frozen=True)
class Scene:
    """What is known about the input rasters before any pixel is read.

    Attributes:
        paths: the rasters (one; two for change detection, the first sets the grid).
        bands: 1-based band indexes read from each raster.
        crs: the first raster's CRS.
        transform: the first raster's transform.
        height: rows of the first raster.
        width: columns of the first raster.
        resample: per raster, whether it is warped onto the first's grid.
        datetime: acquisition time of the first raster, if its metadata holds one.

    .. versionadded:: 0.1
    """

    paths: tuple[str, ...]
    bands: tuple[int, ...]
    crs: Any
    transform: Affine
    height: int
    width: int
    resample: tuple[bool, ...]
    datetime: dt.datetime | None = None


def parse_bands(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """Parse ``--bands`` ('3,2,1', 1-based as in rasterio and GDAL).

    Args:
        text: comma-separated band numbers, a sequence of them, or None (all bands).

    Returns:
        The band numbers, or None.

    Raises:
        SceneError: if a value is not a positive integer.

    .. versionadded:: 0.1
    """
    if text is None:
        return None
    items = text.split(',') if isinstance(text, str) else list(text)
    try:
        bands = tuple(int(b) for b in items)
    except ValueError:
        bands = ()
    if not bands or min(bands) < 1:
        raise SceneError(
            f'--bands {text!r}: expected 1-based band numbers separated by commas, '
            "e.g. '3,2,1' for bands 3, 2 and 1 (rasterio/GDAL numbering)"
        )
    return bands


def open_scene(
    paths: Sequence[str | os.PathLike[str]],
    bands: Sequence[int] | None,
    channels: int | None,
    georeferenced: bool = False,
) -> Scene:
    """Check the input rasters and describe their common grid.

    A second raster (change detection) must hold the same kind of values as the first:
    the same data type in the bands read, and the same number of bands unless *bands*
    chooses them. It is refused otherwise, not converted: both dates are normalised with
    one set of statistics, so a uint16 date beside a uint8 one would be silently wrong.

    Args:
        paths: one raster, or two for change detection (the second is resampled onto the
            first's grid if they differ).
        bands: 1-based bands to read from each raster (None: all of them).
        channels: the number of bands the model takes (None: any).
        georeferenced: refuse a raster without a CRS (else: read in pixel space, with a
            warning).

    Returns:
        The scene.

    Raises:
        SceneError: if a raster cannot be read, lacks a band, has the wrong number of
            bands, has no CRS where one is needed, does not overlap the first, or holds
            another data type or band count than the first.

    .. versionadded:: 0.1
    """
    infos = [_describe(os.fspath(p)) for p in paths]
    first = infos[0]
    chosen = tuple(bands) if bands else tuple(range(1, first['count'] + 1))
    for info in infos:
        _check_bands(info, chosen, channels, bands is not None)
        _check_crs(info, georeferenced)
    for info in infos[1:]:
        _check_same_values(first, info, chosen, bands is not None)
    resample = tuple(_check_grid(first, info) for info in infos)
    return Scene(
        paths=tuple(info['path'] for info in infos),
        bands=chosen,
        crs=first['crs'],
        transform=first['transform'],
        height=first['height'],
        width=first['width'],
        resample=resample,
        datetime=first['datetime'],
    )


def _describe(path: str) -> dict[str, Any]:
    """Metadata of one raster; an unreadable file is a SceneError naming it."""
    if not os.path.isfile(path):
        what = 'no such file' if not os.path.exists(path) else 'not a regular file'
        raise SceneError(f'{path}: {what}; expected a GeoTIFF (or any GDAL raster)')
    try:
        with _quiet(), rasterio.open(path) as src:
            info = {
                'path': path,
                'count': src.count,
                'dtypes': src.dtypes,
                'crs': src.crs,
                'transform': src.transform,
                'height': src.height,
                'width': src.width,
                'bounds': footprint(src.transform, Window(0, 0, src.width, src.height)),
                'datetime': read_datetime(src.tags()),
                'gcps': bool(src.gcps[0]),
            }
    except RasterioError as error:
        raise SceneError(
            f'{path}: cannot be read as a raster ({error}); expected a GeoTIFF or another '
            'format GDAL reads'
        ) from None
    transform = info['transform']
    if not (np.isfinite(tuple(transform)).all() and transform.determinant != 0):
        raise SceneError(
            f'{path}: its geotransform {tuple(transform)[:6]} is degenerate (a pixel size '
            'of 0, or not finite), so its pixels have no place; fix it (gdal_edit.py -a_ullr '
            'ULX ULY LRX LRY, or gdal_edit.py -unsetgt for pixel space)'
        )
    if not info['count']:
        raise SceneError(
            f'{path}: has no raster bands (a container of subdatasets?); pass one of the '
            'subdatasets that gdalinfo lists'
        )
    return info


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence rasterio's warning for a raster without geotransform (ours says more)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        yield


def _check_crs(info: dict[str, Any], georeferenced: bool) -> None:
    if info['crs']:
        return
    if info['gcps']:
        hint = (
            'it is located by ground control points only, which are not used: warp it '
            'onto a grid first (gdalwarp in.tif out.tif)'
        )
        if georeferenced:
            raise SceneError(f'{info["path"]}: has no CRS and geotransform; {hint}')
        logger.warning(
            '%s: has no CRS and geotransform; reading it in its pixel space (the output '
            'has no CRS); %s',
            info['path'],
            hint,
        )
        return
    if georeferenced:
        raise SceneError(
            f'{info["path"]}: has no CRS, and embeddings are located in EPSG:4326; '
            'assign its CRS and bounds first (gdal_translate -a_srs EPSG:XXXX -a_ullr '
            'ULX ULY LRX LRY in.png out.tif)'
        )
    logger.warning(
        '%s: has no CRS; reading it in its pixel space: the output has its transform '
        'and no CRS (assign one with gdal_edit.py -a_srs to georeference the output)',
        info['path'],
    )


def _check_same_values(
    first: dict[str, Any], info: dict[str, Any], bands: tuple[int, ...], given: bool
) -> None:
    """Refuse a second date that holds other values than the first (not converted)."""
    if not given and info['count'] != first['count']:
        raise SceneError(
            f'{info["path"]}: has {info["count"]} bands, {first["path"]} has '
            f'{first["count"]}; pass --bands to read the same bands of both dates '
            f'(e.g. --bands {",".join(map(str, bands))})'
        )
    ours = {info['dtypes'][b - 1] for b in bands}
    theirs = {first['dtypes'][b - 1] for b in bands}
    if ours != theirs:
        raise SceneError(
            f'{info["path"]}: holds {"/".join(sorted(ours))} values, {first["path"]} '
            f'{"/".join(sorted(theirs))}; both dates are normalised with the same '
            'statistics, so they must be on the same scale: convert one (gdal_translate '
            '-ot TYPE -scale ...) and pass them again'
        )


def _check_bands(
    info: dict[str, Any], bands: tuple[int, ...], channels: int | None, given: bool
) -> None:
    if max(bands) > info['count']:
        raise SceneError(
            f'{info["path"]}: has {info["count"]} bands, --bands asks for band '
            f'{max(bands)}; pass band numbers between 1 and {info["count"]}'
        )
    complex_ = sorted(
        {info['dtypes'][b - 1] for b in bands if 'complex' in info['dtypes'][b - 1]}
    )
    if complex_:
        raise SceneError(
            f'{info["path"]}: holds {"/".join(complex_)} values (complex: SAR phase and '
            'amplitude); the models take real values: convert it first, e.g. the '
            'amplitude with gdal_calc.py -A in.tif --calc="abs(A)" --type Float32'
        )
    if channels is not None and len(bands) != channels:
        what = f'--bands selects {len(bands)}' if given else f'has {len(bands)} bands'
        raise SceneError(
            f'{info["path"]}: {what}, the model takes {channels}; pass --bands with '
            f'{channels} band numbers (e.g. --bands {",".join(map(str, range(1, channels + 1)))})'
        )


def _check_grid(first: dict[str, Any], info: dict[str, Any]) -> bool:
    """Whether *info* must be warped onto *first*'s grid; refuse what cannot be."""
    same = (
        info['crs'] == first['crs']
        and info['transform'] == first['transform']
        and (info['height'], info['width']) == (first['height'], first['width'])
    )
    if same:
        return False
    if not first['crs'] or not info['crs']:
        raise SceneError(
            f'{info["path"]}: its grid differs from {first["path"]} and '
            f'{"it" if not info["crs"] else first["path"]} has no CRS, so one cannot be '
            'resampled onto the other; assign a CRS (gdal_edit.py -a_srs) or co-register them'
        )
    bounds = transform_bounds(info['crs'], first['crs'], *info['bounds'])
    if disjoint_bounds(bounds, first['bounds']) or _touches(bounds, first['bounds']):
        raise SceneError(
            f'{info["path"]} does not overlap {first["path"]} (bounds {tuple(bounds)} vs '
            f'{tuple(first["bounds"])} in {first["crs"]}); pass rasters of the same place'
        )
    return True


def _touches(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two bounds only share an edge (no area in common)."""
    return min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])


def read_datetime(tags: dict[str, str]) -> dt.datetime | None:
    """The acquisition time in a raster's metadata, if any.

    Args:
        tags: ``dataset.tags()``.

    Returns:
        The time (naive, as written), or None if no known tag holds a parseable one.

    .. versionadded:: 0.1
    """
    for key in DATETIME_TAGS:
        value = tags.get(key)
        if not value:
            continue
        for fmt in (
            '%Y:%m:%d %H:%M:%S',
            '%Y-%m-%dT%H:%M:%S',
            '%Y-%m-%d %H:%M:%S',
            '%Y-%m-%d',
        ):
            with contextlib.suppress(ValueError):
                return dt.datetime.strptime(value.strip().rstrip('Z'), fmt)
    return None


class WindowReader:
    """Reads the same window of every raster of a scene, with its validity mask.

    Open it in the thread that reads (GDAL handles are not thread-safe).

    .. versionadded:: 0.1
    """

    def __init__(self, scene: Scene) -> None:
        """Open the rasters, warping those on another grid onto the first's.

        Args:
            scene: from :func:`open_scene`.
        """
        self.scene = scene
        self._stack = contextlib.ExitStack()
        self.sources = [self._open(p, r) for p, r in zip(scene.paths, scene.resample)]

    def _open(self, path: str, resample: bool) -> Any:
        with _quiet():
            src = self._stack.enter_context(rasterio.open(path))
        if not resample:
            return src
        # an alpha band (unless it has one) marks what the raster does not cover as
        # nodata: without one, GDAL fills it with zeros that look like data
        vrt = WarpedVRT(
            src,
            crs=self.scene.crs,
            transform=self.scene.transform,
            width=self.scene.width,
            height=self.scene.height,
            resampling=Resampling.bilinear,
            add_alpha=ColorInterp.alpha not in src.colorinterp,
        )
        return self._stack.enter_context(vrt)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read a window of every raster.

        Args:
            window: inside the first raster's grid.

        Returns:
            The pixels ``[T, C, h, w]`` as float32, and a boolean ``[h, w]`` mask that is
            True where every raster has data (GDAL's dataset mask: nodata values, alpha
            bands, internal masks, and the area a warped raster does not cover) and
            every band is finite.

        Raises:
            SceneError: naming the file and the window, if GDAL cannot read it (a
                truncated or corrupt file).
        """
        images, valid = [], np.ones((int(window.height), int(window.width)), bool)
        for path, src in zip(self.scene.paths, self.sources):
            try:
                image = src.read(self.scene.bands, window=window, out_dtype='float32')
                valid &= src.dataset_mask(window=window) > 0
            except RasterioError as error:
                raise SceneError(
                    f'{path}: cannot read the window at column {int(window.col_off)}, row '
                    f'{int(window.row_off)} ({int(window.width)} x {int(window.height)} '
                    f'px): {gdal_cause(error)}; the file is truncated or corrupt (check it '
                    'with gdalinfo -checksum), nothing was written'
                ) from None
            valid &= np.isfinite(image).all(0)
            images.append(image)
        return np.stack(images), valid

    def close(self) -> None:
        """Close every handle."""
        self._stack.close()


# COGWriter moved in 0.2 (deprecated here, removed in 0.3)
__getattr__ = moved(__name__, 'torchgeo_gfm.scene.writers')
