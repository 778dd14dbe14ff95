# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Reading scenes window by window, and writing Cloud-Optimized GeoTIFFs atomically.

Everything here is rasterio: inputs are checked once up front (readable, bands, overlap,
CRS), then each worker thread opens its own handles (GDAL handles are not thread-safe).
A second, co-registered raster whose grid differs from the first's is resampled onto the
first's grid by a :class:`rasterio.vrt.WarpedVRT`, window by window.

A pixel is valid where every raster has data: GDAL's dataset mask (nodata value, NaN
nodata, mask or alpha band), finite values in every band (NaN/Inf without a nodata tag
are nodata too), and, for a resampled raster, inside its footprint (the warped raster gets
an alpha band, so what it does not cover is nodata, never zeros). A raster without a CRS
is read in its pixel space: outputs have its transform and no CRS (a warning says so);
callers that need geography (embeddings in EPSG:4326) refuse it.

.. versionadded:: 0.1
"""

import contextlib
import datetime as dt
import logging
import math
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.crs
import rasterio.shutil
from rasterio.coords import disjoint_bounds
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from .. import outputs
from .errors import SceneError

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


def corners(transform: Affine, window: Window) -> list[tuple[float, float]]:
    """The four corners of *window* in the CRS of *transform*, clockwise from its origin.

    Args:
        transform: the raster's transform (any sign, rotated too).
        window: in its pixels.

    Returns:
        ``[(x, y), ...]`` of the window's top-left, top-right, bottom-right and bottom-left
        pixel corners (as stored: "top" is row 0, whatever the map's direction).

    .. versionadded:: 0.1
    """
    x, y = float(window.col_off), float(window.row_off)
    w, h = float(window.width), float(window.height)
    return [
        transform @ point for point in ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
    ]


def footprint(transform: Affine, window: Window) -> tuple[float, float, float, float]:
    """The bounds ``(minx, miny, maxx, maxy)`` of *window*, whatever the transform's sign.

    Rasterio's ``bounds`` assume a north-up transform: for a south-up raster (positive
    pixel height) they give ``miny > maxy``; here min is min, and a rotated transform
    gives the box around its four corners.

    Args:
        transform: the raster's transform.
        window: in its pixels.

    Returns:
        The bounds.

    .. versionadded:: 0.1
    """
    xs, ys = zip(*corners(transform, window))
    return min(xs), min(ys), max(xs), max(ys)


class LonLat:
    """Footprints of a raster's windows in EPSG:4326, right at the antimeridian and poles.

    Each window's outline (its edges sampled every few pixels, so that long edges follow
    the projection's curvature) is transformed to longitude/latitude. An outline that
    crosses the antimeridian is split there into a MultiPolygon whose parts lie in
    [-180, 180] (as are longitudes beyond it, in a geographic raster that runs past
    180); a window that holds a pole is the band of latitudes from its outline to the
    pole. The whole raster is checked once, up front: a CRS that cannot be transformed
    to EPSG:4326 (a local or engineering CRS), or a footprint beyond the poles, is
    refused before anything is computed.

    .. versionadded:: 0.1
    """

    #: points sampled per window edge
    EDGE = 8

    def __init__(self, scene: Scene) -> None:
        """Check that *scene* can be located in EPSG:4326.

        Args:
            scene: a georeferenced scene (``scene.crs`` set).

        Raises:
            SceneError: if its CRS cannot be transformed to EPSG:4326, or its footprint
                is not on the globe (latitudes beyond +-90, coordinates outside the
                CRS's area where it cannot be transformed).
        """
        from pyproj import Transformer
        from pyproj.exceptions import CRSError, ProjError

        self.path, self.transform = scene.paths[0], scene.transform
        try:
            crs = rasterio.crs.CRS.from_user_input(scene.crs).to_wkt()
            self._to = Transformer.from_crs(crs, 'EPSG:4326', always_xy=True)
            back = Transformer.from_crs('EPSG:4326', crs, always_xy=True)
        except (CRSError, ProjError, RasterioError) as error:
            raise SceneError(
                f'{self.path}: its CRS ({scene.crs}) cannot be transformed to '
                f'EPSG:4326 ({_cause(error)}), where embeddings are located; assign a '
                'geographic or projected CRS (gdal_edit.py -a_srs EPSG:XXXX)'
            ) from None
        # the poles in the raster's pixel space (inf where the projection cannot show them)
        self._poles: list[tuple[float, float, float]] = []
        inverse = ~scene.transform
        for lat in (90.0, -90.0):
            with contextlib.suppress(ProjError):
                xs, ys = back.transform([0.0, 90.0], [lat, lat], errcheck=True)
                # a point in this projection (a line in a geographic CRS: no window holds it)
                if (
                    np.isfinite([*xs, *ys]).all()
                    and np.allclose(xs[0], xs[1])
                    and np.allclose(ys[0], ys[1])
                ):
                    col, row = inverse @ (xs[0], ys[0])
                    self._poles.append((col, row, lat))
        self.polygon(Window(0, 0, scene.width, scene.height))

    def polygon(self, window: Window) -> Any:
        """The footprint of *window* in EPSG:4326.

        Args:
            window: in the raster's pixels.

        Returns:
            A shapely Polygon (or MultiPolygon, split at the antimeridian), oriented
            counter-clockwise.

        Raises:
            SceneError: if it cannot be transformed or lies beyond the poles.
        """
        from shapely.geometry import MultiPolygon, Polygon, box
        from shapely.geometry.polygon import orient

        x, y = float(window.col_off), float(window.row_off)
        w, h = float(window.width), float(window.height)
        t = np.linspace(0.0, 1.0, self.EDGE, endpoint=False)
        cols = np.concatenate(
            [x + w * t, np.full_like(t, x + w), x + w * (1 - t), np.full_like(t, x)]
        )
        rows = np.concatenate(
            [np.full_like(t, y), y + h * t, np.full_like(t, y + h), y + h * (1 - t)]
        )
        xs, ys = self.transform @ (cols, rows)
        lon, lat = (np.asarray(v, np.float64) for v in self._to.transform(xs, ys))
        where = f'{self.path}: the window at column {int(x)}, row {int(y)} ({int(w)} x {int(h)} px)'
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise SceneError(
                f'{where} cannot be located in EPSG:4326 (outside the area its CRS '
                'covers?); check its CRS and transform (gdalinfo)'
            )
        if np.abs(lat).max() > 90.0 + 1e-9:
            raise SceneError(
                f'{where} reaches latitude {lat[np.abs(lat).argmax()]:.6g}, beyond the '
                'poles: its georeferencing is wrong; check its CRS and transform (gdalinfo)'
            )
        for col, row, pole in self._poles:
            if x <= col <= x + w and y <= row <= y + h:  # the window holds the pole
                south, north = (lat.min(), 90.0) if pole > 0 else (-90.0, lat.max())
                return orient(box(-180.0, south, 180.0, north))
        lon = np.unwrap(lon, period=360.0)
        shape = Polygon(zip(lon, lat))
        if not shape.is_valid:
            shape = shape.buffer(0)
        parts = []
        first, last = (
            math.floor((lon.min() + 180) / 360),
            math.ceil((lon.max() - 180) / 360),
        )
        for k in range(first, last + 1):
            piece = shape.intersection(box(360 * k - 180, -90, 360 * k + 180, 90))
            for part in getattr(piece, 'geoms', [piece]):
                if isinstance(part, Polygon) and part.area > 0:
                    parts.append(orient(shapely_translate(part, xoff=-360.0 * k)))
        if not parts:
            raise SceneError(f'{where} has no area in EPSG:4326; check its transform')
        return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def shapely_translate(geometry: Any, xoff: float) -> Any:
    """*geometry* moved by *xoff* along x."""
    from shapely import affinity

    return affinity.translate(geometry, xoff=xoff) if xoff else geometry


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
                    f'px): {_cause(error)}; the file is truncated or corrupt (check it '
                    'with gdalinfo -checksum), nothing was written'
                ) from None
            valid &= np.isfinite(image).all(0)
            images.append(image)
        return np.stack(images), valid

    def close(self) -> None:
        """Close every handle."""
        self._stack.close()


def _cause(error: BaseException) -> str:
    """GDAL's own message, which rasterio often chains under a generic one."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).strip() or type(error).__name__


class COGWriter:
    """Writes windows into a tiled GeoTIFF, then copies it to a COG at *final*.

    Windows may arrive in any order and size: they go to an uncompressed tiled GTiff
    (GDAL rewrites its blocks in place), which :meth:`finish` turns into a compressed
    Cloud-Optimized GeoTIFF with overviews (GDAL's COG driver) and renames onto *final*.
    Open it in the thread that writes. The temporary GTiff is sparse: windows that are
    nodata everywhere are not written (GDAL reads missing blocks as nodata), so a mostly
    empty scene takes little disk; a warning says when the scene could need more than
    the folder has free. A write that fails (disk full, I/O error) is a
    :class:`SceneError` naming the output; nothing is left at *final*.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        final: Path,
        profile: dict[str, Any],
        overview_resampling: str = 'nearest',
        blocksize: int = 256,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Open the temporary GTiff.

        Args:
            final: where the COG goes (written only by :meth:`finish`).
            profile: ``count, dtype, nodata, crs, transform, height, width``.
            overview_resampling: 'nearest' for classes, 'average' for continuous values.
            blocksize: COG tile size.
            tags: dataset metadata of the COG (``rasterio``'s ``tags()``), e.g. how it
                was computed.
        """
        self.final = final
        self.overview_resampling = overview_resampling
        self.blocksize = blocksize
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(
            outputs.temporary_output(final, '.tiled.tif')
        )
        self.nodata = profile.get('nodata')
        _warn_disk(final, profile)
        with self._failing('create'):
            self.dst = self._stack.enter_context(
                rasterio.open(
                    self.tmp,
                    'w',
                    driver='GTiff',
                    tiled=True,
                    blockxsize=blocksize,
                    blockysize=blocksize,
                    BIGTIFF='IF_SAFER',
                    SPARSE_OK=self.nodata is not None,
                    **profile,
                )
            )
            if tags:  # the COG driver copies them from this GTiff
                self.dst.update_tags(**tags)

    @contextlib.contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """A failed write (disk full, I/O error) as a SceneError naming the output."""
        try:
            yield
        except (RasterioError, OSError) as error:
            self.abort()
            raise SceneError(
                f'{self.final}: cannot {what} it ({_cause(error)}); nothing was written '
                'there: free some space or choose another folder'
            ) from None

    def write(self, window: Window, array: np.ndarray) -> None:
        """Write ``[bands, h, w]`` at *window*.

        Args:
            window: in the output grid.
            array: the values, already in the output dtype.
        """
        if self.nodata is not None and _all_equal(array, self.nodata):
            return  # a missing block of the sparse GTiff reads as nodata
        with self._failing('write'):
            self.dst.write(array, window=window)

    def finish(self) -> None:
        """Close the GTiff, copy it to a COG, rename the COG onto the output."""
        with self._failing('write'):
            self.dst.close()
            with outputs.atomic_output(self.final, '.cog.tif') as cog:
                rasterio.shutil.copy(
                    self.tmp,
                    cog,
                    driver='COG',
                    COMPRESS='DEFLATE',
                    BLOCKSIZE=self.blocksize,
                    OVERVIEW_RESAMPLING=self.overview_resampling.upper(),
                    NUM_THREADS='ALL_CPUS',
                    BIGTIFF='IF_SAFER',
                )
            self._stack.close()

    def abort(self) -> None:
        """Close and remove the temporary file."""
        with contextlib.suppress(Exception):
            self.dst.close()
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError('aborted'), None)


def _all_equal(array: np.ndarray, value: float) -> bool:
    """Whether every element is *value* (NaN equal to NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return bool(np.isnan(array).all())
    return bool((array == value).all())


def _warn_disk(final: Path, profile: dict[str, Any]) -> None:
    """Warn when the temporary GTiff could outgrow the output folder's free space."""
    size = (
        int(profile['height'])
        * int(profile['width'])
        * int(profile['count'])
        * np.dtype(profile['dtype']).itemsize
    )
    try:
        free = shutil.disk_usage(Path(final).absolute().parent).free
    except OSError:
        return
    if size > free:
        logger.warning(
            '%s: the output may need up to %.1f GiB while written (less where the '
            'scene is nodata), and its folder has %.1f GiB free',
            final,
            size / 2**30,
            free / 2**30,
        )


#: extensions users name outputs by: raster, table and vector formats
KNOWN_SUFFIXES = (
    *('.tif', '.tiff', '.cog', '.vrt', '.png', '.jpg', '.jpeg', '.jp2'),
    *('.parquet', '.geoparquet', '.csv', '.feather', '.arrow'),
    *('.gpkg', '.shp', '.geojson', '.json', '.fgb', '.kml', '.gml'),
)
#: what the scene commands write -> (its description, its own extensions)
FORMATS = {
    'cog': ('a Cloud-Optimized GeoTIFF (.tif)', ('.tif', '.tiff', '.cog')),
    'geoparquet': ('GeoParquet (.parquet)', ('.parquet', '.geoparquet')),
    'geopackage': ('a GeoPackage (.gpkg)', ('.gpkg',)),
}

Output = tuple[str | os.PathLike[str] | None, str, str]


def check_scene_outputs(
    output: Output, extra: Output, *, protect: Sequence[Any], overwrite: bool
) -> tuple[Path, Path | None]:
    """Check a command's two outputs before any work: the file rules, then the format.

    The rules of :func:`torchgeo_gfm.outputs.check_outputs` (never an input in *protect*
    nor each other, even with *overwrite*), then an output whose extension names another
    known format than the one written there is refused (``-o x.gpkg`` for a COG).

    Args:
        output: ``(path, option, format)`` of the main output (a path is required).
        extra: the same for the optional one (its path None if not asked for).
        protect: the command's inputs (rasters, the model's file).
        overwrite: replace existing regular files.

    Returns:
        The two paths (the second None if not asked for).

    Raises:
        OutputError: if an output must not or cannot be written.
        SceneError: naming the option, the path and the format written there.

    .. versionadded:: 0.1
    """
    out, second = outputs.check_outputs(
        [output[0], extra[0]], overwrite=overwrite, protect=protect
    )
    assert out is not None
    for path, option, name in (output, extra):
        wanted, own = FORMATS[name]
        suffix = Path(os.fspath(path)).suffix.lower() if path is not None else ''
        if suffix in KNOWN_SUFFIXES and suffix not in own:
            raise SceneError(
                f'{option} {path}: its extension {suffix} names another format; '
                f'{option} is written as {wanted}: give it that extension'
            )
    return out, second
