# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Where a window of a raster lies: its bounds in the raster's CRS, its outline in EPSG:4326.

:func:`footprint` gives ``(minx, miny, maxx, maxy)`` whatever the transform's sign or
rotation; :class:`LonLat` gives the outline in longitude/latitude, right at the
antimeridian and the poles (the ``geometry`` of an embedding's row).

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.raster`.
"""

import contextlib
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio.crs
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from .errors import SceneError, gdal_cause

if TYPE_CHECKING:
    from .raster import Scene


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

    def __init__(self, scene: 'Scene') -> None:
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
                f'EPSG:4326 ({gdal_cause(error)}), where embeddings are located; assign a '
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
