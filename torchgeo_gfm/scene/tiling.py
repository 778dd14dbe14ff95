# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Tile grids over a scene, and seamless blending of overlapping tile outputs.

Blending: each tile's output is weighted by a separable taper that is 0 in the outer quarter
of every overlap shared with a neighbour, rises linearly over the next half and is 1
elsewhere (and at the scene's own edges, which no neighbour covers). Weighted outputs are
summed and divided by the summed weights. So a pixel never takes a value computed within a
quarter-overlap of a tile's inner edge, where zero padding changes the model's output: on a
model whose receptive field radius is at most ``overlap / 4`` the tiled output equals the
whole-scene output, and on any model neighbouring tiles fade into each other (no seams).

Memory: the scene is cut into *cells* by every tile edge; a cell is written as soon as
the last tile covering it is done, so only the overlap bands of the current row of tiles
are held (``O(overlap x width)``), never the scene.

.. versionadded:: 0.1
"""

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

# the one tile grid of the package (the scene engine may import earlier steps)
from .._utils import tile_starts


@dataclass(frozen=True)
class TileGrid:
    """Windows of ``tile`` x ``tile`` pixels every ``tile - overlap``, inside the scene.

    The last row and column are shifted to end at the scene's edge; a scene smaller than
    the tile is one window of the scene's size (padded for the model by the engine).

    .. versionadded:: 0.1
    """

    height: int
    width: int
    tile: int
    overlap: int
    shift_last: bool = True

    @property
    def rows(self) -> list[int]:
        """Tile starts along y."""
        return tile_starts(
            self.height, self.tile, self.tile - self.overlap, self.shift_last
        )

    @property
    def cols(self) -> list[int]:
        """Tile starts along x."""
        return tile_starts(
            self.width, self.tile, self.tile - self.overlap, self.shift_last
        )

    def __len__(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[tuple[int, int, Window]]:
        """Tiles in row-major order: (tile row, tile column, window clipped to the scene)."""
        for i, y in enumerate(self.rows):
            for j, x in enumerate(self.cols):
                h = min(self.tile, self.height - y)
                w = min(self.tile, self.width - x)
                yield i, j, Window(x, y, w, h)


def taper(length: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    """1-D blending weights of a tile: 0, then a linear ramp, then 1, inside each overlap.

    Args:
        length: tile length (output pixels).
        overlap: overlap with a neighbour (output pixels).
        start: a neighbour overlaps the start.
        end: a neighbour overlaps the end.

    Returns:
        float32 weights of shape ``[length]``.

    .. versionadded:: 0.1
    """
    w = np.ones(length, np.float32)
    margin, ramp = overlap // 4, max(overlap // 2, 1)
    if overlap == 0:
        return w
    edge = np.clip(
        (np.arange(length, dtype=np.float32) - margin + 1) / (ramp + 1), 0, 1
    )
    if start:
        w = np.minimum(w, edge)
    if end:
        w = np.minimum(w, edge[::-1])
    return w


class Blender:
    """Accumulates weighted tile outputs, hands back each cell as soon as it is complete.

    Args (of :meth:`add`) and cells are in output pixels: ``scale`` output pixels per
    input pixel (4 for x4 super-resolution, else 1).

    .. versionadded:: 0.1
    """

    def __init__(self, grid: TileGrid, channels: int, scale: int = 1) -> None:
        """Prepare the cells of *grid*.

        Args:
            grid: the tiles that will be added, each exactly once.
            channels: output channels per pixel.
            scale: output pixels per input pixel.
        """
        self.grid, self.channels, self.scale = grid, channels, scale
        self.ys = _edges(grid.rows, grid.tile, grid.height)
        self.xs = _edges(grid.cols, grid.tile, grid.width)
        self.y_cover = _cover(grid.rows, grid.tile, grid.height, self.ys)
        self.x_cover = _cover(grid.cols, grid.tile, grid.width, self.xs)
        # (cell row, cell col) -> [channels + 2, h, w]: sum(w * y), sum(w * valid), sum(w)
        self.pending: dict[tuple[int, int], np.ndarray] = {}
        self.remaining: dict[tuple[int, int], int] = {}

    def weights(self, window: Window) -> np.ndarray:
        """The 2-D blending weights of the tile at *window* (input pixels).

        Args:
            window: the tile.

        Returns:
            ``[h * scale, w * scale]`` float32.
        """
        s, g = self.scale, self.grid
        y, x, h, w = (
            int(window.row_off),
            int(window.col_off),
            int(window.height),
            int(window.width),
        )
        wy = taper(h * s, g.overlap * s, y > 0, y + h < g.height)
        wx = taper(w * s, g.overlap * s, x > 0, x + w < g.width)
        return wy[:, None] * wx[None, :]

    def add(
        self, window: Window, output: np.ndarray, valid: np.ndarray
    ) -> list[tuple[Window, np.ndarray, np.ndarray]]:
        """Add one tile's output; return the cells it completes.

        Args:
            window: the tile (input pixels).
            output: ``[channels, h * scale, w * scale]``.
            valid: ``[h * scale, w * scale]`` bool, where the input had data.

        Returns:
            ``(window in output pixels, blended [channels, h, w], valid [h, w])`` for each
            completed cell.
        """
        weight = self.weights(window)
        s = self.scale
        y0, x0 = int(window.row_off), int(window.col_off)
        y1, x1 = y0 + int(window.height), x0 + int(window.width)
        done = []
        for i in range(self.ys.index(y0), self.ys.index(y1)):
            for j in range(self.xs.index(x0), self.xs.index(x1)):
                rows = slice((self.ys[i] - y0) * s, (self.ys[i + 1] - y0) * s)
                cols = slice((self.xs[j] - x0) * s, (self.xs[j + 1] - x0) * s)
                cell = self._cell(i, j, output.dtype)
                w = weight[rows, cols]
                cell[:-2] += output[:, rows, cols] * w
                cell[-2] += valid[rows, cols] * w
                cell[-1] += w
                self.remaining[i, j] -= 1
                if not self.remaining[i, j]:
                    done.append(self._finish(i, j))
        return done

    def _cell(self, i: int, j: int, dtype: np.dtype) -> np.ndarray:
        if (i, j) not in self.pending:
            s = self.scale
            h, w = (self.ys[i + 1] - self.ys[i]) * s, (self.xs[j + 1] - self.xs[j]) * s
            self.pending[i, j] = np.zeros((self.channels + 2, h, w), np.float32)
            self.remaining[i, j] = self.y_cover[i] * self.x_cover[j]
        return self.pending[i, j]

    def _finish(self, i: int, j: int) -> tuple[Window, np.ndarray, np.ndarray]:
        cell = self.pending.pop((i, j))
        del self.remaining[i, j]
        total = cell[-1]
        s = self.scale
        window = Window(self.xs[j] * s, self.ys[i] * s, cell.shape[2], cell.shape[1])
        return window, cell[:-2] / total, cell[-2] / total > 0.5


def _edges(starts: list[int], tile: int, size: int) -> list[int]:
    """Every tile start and end along one axis: the cell boundaries."""
    return sorted({0, size, *starts, *(min(s + tile, size) for s in starts)})


def _cover(starts: list[int], tile: int, size: int, edges: list[int]) -> list[int]:
    """How many tiles cover each cell along one axis."""
    return [
        sum(s <= a and b <= min(s + tile, size) for s in starts)
        for a, b in itertools.pairwise(edges)
    ]


def chip_grid(height: int, width: int, chip: int, stride: int) -> TileGrid:
    """Chips every *stride* from the origin; the last ones run past the edge (padded).

    Args:
        height: scene rows.
        width: scene columns.
        chip: chip size.
        stride: step.

    Returns:
        The grid (``shift_last=False``), whose chip ``(i, j)`` starts at
        ``(i * stride, j * stride)`` so chip outputs form a regular raster.

    .. versionadded:: 0.1
    """
    return TileGrid(height, width, chip, chip - stride, shift_last=False)


def grid_shape(size: int, stride: int) -> int:
    """Chips along an axis of a :func:`chip_grid` (its last chip may be partial).

    Args:
        size: scene rows or columns.
        stride: chip step.

    Returns:
        ``ceil(size / stride)`` at least 1.

    .. versionadded:: 0.1
    """
    return max(1, math.ceil(size / stride))


def cap_tile(tile: int, height: int, width: int, multiple: int, minimum: int) -> int:
    """*tile*, or the smallest size that covers the whole scene if that is smaller.

    A tile larger than the scene only adds padding (and memory: a 100 x 90 scene with a
    32768 px tile would allocate gigabytes), so it is capped to the smallest multiple of
    *multiple*, at least *minimum*, that covers ``max(height, width)``.

    Args:
        tile: the size asked for.
        height: scene rows.
        width: scene columns.
        multiple: tile sizes the model takes are multiples of this.
        minimum: the smallest tile the model takes (a multiple of *multiple*).

    Returns:
        The tile size to use.

    .. versionadded:: 0.1
    """
    covering = math.ceil(max(height, width) / multiple) * multiple
    return min(tile, max(minimum, covering))
