# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The outputs of the scene commands: checked up front, written atomically.

:func:`check_scene_outputs` refuses an output before any work (an input, the other
output, another format's extension); :class:`COGWriter` writes windows in any order to a
sparse tiled GTiff, then a Cloud-Optimized GeoTIFF; :func:`write_polygons` vectorizes a
class COG to a GeoPackage and :func:`write_geoparquet` writes embeddings. Each renames a
complete file onto the output; a write that fails (disk full, I/O error) is one
:class:`~.errors.SceneError` naming the output, and nothing is left there.

.. versionadded:: 0.2
   Moved here from :mod:`torchgeo_gfm.scene.raster`.
"""

import contextlib
import io
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .. import outputs
from .errors import SceneError, gdal_cause

logger = logging.getLogger(__name__)

#: what a failed write raises: disk full, I/O (rasterio's, pyogrio's RuntimeError)
_WRITE_ERRORS = (OSError, RuntimeError, RasterioError)

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
        except _WRITE_ERRORS as error:
            self.abort()
            raise _cannot(self.final, what, error) from None

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


def write_polygons(classes: Path, vectors: Path, block: int = 2048) -> None:
    """Polygons of equal class (band 1) of a class raster, to a GeoPackage in its CRS.

    Read block by block (memory bounded by the block and the polygons); polygons that a
    block edge cuts are merged again per class.

    Args:
        classes: a class COG written by :func:`~torchgeo_gfm.scene.predict_scene`.
        vectors: the GeoPackage (written to a temporary file, then renamed).
        block: rows and columns read at a time.

    .. versionadded:: 0.1
    """
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    records: list[dict[str, Any]] = []
    with rasterio.open(classes) as src:
        for y in range(0, src.height, block):
            for x in range(0, src.width, block):
                window = Window(
                    x, y, min(block, src.width - x), min(block, src.height - y)
                )
                data = src.read(1, window=window)
                mask = data != src.nodata
                transform = src.window_transform(window)
                for geom, value in shapes(data, mask=mask, transform=transform):
                    records.append({'class': int(value), 'geometry': shape(geom)})
        crs = src.crs
    frame = gpd.GeoDataFrame(
        records, columns=['class', 'geometry'], geometry='geometry', crs=crs
    )
    if len(frame):
        frame = frame.dissolve(by='class', as_index=False).explode(index_parts=False)
    try:
        with outputs.atomic_output(vectors, '.gpkg') as tmp:
            frame.to_file(tmp, driver='GPKG', layer='classes')
    except _WRITE_ERRORS as error:
        raise _cannot(vectors, 'write', error, f' ({classes} is complete)') from None


def write_geoparquet(out: Path, frames: list[Any], metadata: dict[str, Any]) -> int:
    """GeoParquet of GeoDataFrames in EPSG:4326, *metadata* under its ``torchgeo_gfm`` key.

    Args:
        out: the file (written to a temporary file, then renamed).
        frames: rows of each input raster, concatenated in order.
        metadata: how they were computed, as JSON in the file's metadata.

    Returns:
        The rows written.

    Raises:
        SceneError: if it cannot be written (nothing is left at *out*).

    .. versionadded:: 0.2
    """
    import geopandas as gpd
    import pandas as pd
    import pyarrow.parquet as pq

    frame = gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), geometry='geometry', crs=4326
    )
    buffer = io.BytesIO()  # geopandas writes the 'geo' metadata; ours is added to it
    frame.to_parquet(buffer)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b'torchgeo_gfm': json.dumps(metadata)}
    )
    try:
        with outputs.atomic_output(out, '.parquet') as tmp:
            pq.write_table(table, tmp)
    except _WRITE_ERRORS as error:
        raise _cannot(out, 'write', error) from None
    return len(frame)


def _cannot(path: Path, what: str, error: BaseException, note: str = '') -> SceneError:
    """The one-line error of a failed write; *note* says what was written (elsewhere)."""
    return SceneError(
        f'{path}: cannot {what} it ({" ".join(gdal_cause(error).split())}); nothing was '
        f'written there{note}: free some space or choose another folder'
    )
