# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The scene engine: read tiles, run a model on batches, hand outputs to a writer.

Three threads, so that reading and writing overlap the model: a reader fills a small
queue with batches of windows (rasterio releases the GIL while GDAL decodes), the calling
thread runs the model (torch releases it too), and a writer blends and writes the outputs.
Queues are bounded, so memory is a few batches of tiles whatever the scene's size. Tiles
that are nodata everywhere never reach the model: the writer gets ``None`` for them.

.. versionadded:: 0.1
"""

import contextlib
import logging
import operator
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from rasterio.windows import Window
from tqdm import tqdm

from ..precision import MODES, autocast, describe, resolve
from .errors import SceneError
from .raster import Scene, WindowReader
from .tiling import TileGrid

logger = logging.getLogger(__name__)

#: one tile: (tile row, tile column, window, validity mask [h, w])
Tile = tuple[int, int, Window, np.ndarray]
#: the writer's callback: a tile and its model output (``None`` if skipped as nodata)
Consume = Callable[[Tile, np.ndarray | None], None]

_DONE = object()
#: tiles per batch at most, skipped (nodata) ones included
_MOST_SKIPPED = 256


@dataclass
class RunStats:
    """What a run did.

    Attributes:
        tiles: tiles in the grid.
        skipped: tiles skipped as all nodata.
        seconds: wall time of the run.

    .. versionadded:: 0.1
    """

    tiles: int = 0
    skipped: int = 0
    seconds: float = 0.0
    errors: list[BaseException] = field(default_factory=list)

    @property
    def tiles_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.tiles / self.seconds if self.seconds else 0.0


def run_tiles(
    scene: Scene,
    grid: TileGrid,
    model: Callable[[torch.Tensor], torch.Tensor],
    consume: Consume,
    fill: np.ndarray,
    batch_size: int = 8,
    device: str | torch.device = 'cpu',
    progress: bool = True,
    desc: str = 'tiles',
    precision: str = 'fp32',
) -> RunStats:
    """Run *model* over every tile of *grid*; *consume* gets each output in grid order.

    Args:
        scene: the input rasters.
        grid: the tiles.
        model: ``[B, T, C, tile, tile]`` raw float32 pixels -> ``[B, ...]`` outputs.
        consume: called in the writer thread with each tile and its output (cropped to
            the window for per-pixel outputs by the caller), in grid order.
        fill: per-band value put where the input has no data (the normalisation mean,
            so the model sees zeros there).
        batch_size: tiles per model call.
        device: where the model runs.
        progress: show a progress bar (tiles/s).
        desc: its label.
        precision: 'fp32' (the same output on every machine), 'bf16' or 'auto' (bf16
            autocast where native), see :func:`torchgeo_gfm.precision.resolve`.

    Returns:
        The run's statistics.

    Raises:
        SceneError: if every tile is nodata (the model never ran; the caller's writer
            is aborted by this error, so nothing is written), or a window cannot be read.
        BaseException: whatever a thread raised, after every thread has stopped.

    .. versionadded:: 0.1
    """
    stats = RunStats(tiles=len(grid))
    batch_size = _fit_batch(scene, grid, batch_size)
    batches: queue.Queue[object] = queue.Queue(maxsize=3)
    outputs: queue.Queue[object] = queue.Queue(maxsize=3)
    stop = threading.Event()
    reader = threading.Thread(
        target=_guard(stats, stop, _read, scene, grid, fill, batch_size, batches, stop),
        daemon=True,
    )
    writer = threading.Thread(
        target=_guard(stats, stop, _write, outputs, consume, stop), daemon=True
    )
    start = time.perf_counter()
    reader.start()
    writer.start()
    bar = tqdm(total=len(grid), desc=desc, unit='tile', disable=not progress)
    try:
        _compute(batches, outputs, model, device, precision, stats, stop, bar)
    except BaseException as error:  # noqa: BLE001  (re-raised below, after the threads stop)
        stats.errors.append(error)
        stop.set()
    finally:
        _put(outputs, _DONE, stop, force=True)
        reader.join()
        writer.join()
        bar.close()
    stats.seconds = time.perf_counter() - start
    if stats.errors:
        raise stats.errors[0]
    if stats.skipped == stats.tiles:
        raise SceneError(
            f'{" and ".join(scene.paths)}: every pixel is nodata (the nodata value, a '
            'mask or alpha band, NaN/Inf, or outside the second date); nothing to do, '
            'nothing written. Check the nodata value (gdalinfo) or pass another scene'
        )
    return stats


def _fit_batch(scene: Scene, grid: TileGrid, batch_size: int) -> int:
    """At most the grid's tiles per batch; refuse a batch whose pixels alone overfill memory."""
    batch_size = min(batch_size, len(grid))
    pixels = batch_size * len(scene.paths) * len(scene.bands) * grid.tile**2 * 4
    if pixels > _memory() // 2:
        raise SceneError(
            f'--batch-size {batch_size} of {grid.tile} px tiles: the input alone takes '
            f"{pixels / 2**30:.1f} GiB, more than half of this machine's memory; pass a "
            'smaller --batch-size or --tile'
        )
    return batch_size


def _memory() -> int:
    """Bytes of physical memory (a large number where unknown)."""
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError, AttributeError):
        return 2**62


def _guard(
    stats: RunStats, stop: threading.Event, fn: Callable[..., None], *args: object
) -> Callable[[], None]:
    """Run *fn*, recording its error and stopping the other threads."""

    def target() -> None:
        try:
            fn(*args)
        except BaseException as error:  # noqa: BLE001  (re-raised by run_tiles)
            stats.errors.append(error)
            stop.set()

    return target


def _put(
    q: queue.Queue[object], item: object, stop: threading.Event, force: bool = False
) -> bool:
    """Put unless the run is stopping (then give up, except when *force*)."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop.is_set() and not force:
                return False
            if stop.is_set():
                try:
                    q.get_nowait()  # make room: the consumer is gone or draining
                except queue.Empty:
                    pass


def _get(q: queue.Queue[object], stop: threading.Event) -> object:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _DONE


def _read(
    scene: Scene,
    grid: TileGrid,
    fill: np.ndarray,
    batch_size: int,
    batches: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """Reader thread: batches of (tiles, pixels) padded to the tile size."""
    reader = WindowReader(scene)
    # a batch is sent when it holds batch_size tiles to compute, or this many tiles in
    # all: long stretches of nodata reach the writer (and free memory) as they are read
    most = max(batch_size, _MOST_SKIPPED)
    try:
        tiles: list[Tile]
        pixels: list[np.ndarray]
        tiles, pixels, kept = [], [], 0
        for i, j, window in grid:
            if stop.is_set():  # an error or interrupt elsewhere: stop reading now
                return
            image, valid = reader.read(window)
            tile = (i, j, window, valid)
            if not valid.any():
                tiles.append(tile)
                pixels.append(np.empty(0))  # placeholder: skipped
            else:
                image[:, :, ~valid] = fill[None, :, None]
                tiles.append(tile)
                pixels.append(_pad(image, grid.tile))
                kept += 1
            if kept == batch_size or len(tiles) >= most:
                if not _put(batches, (tiles, pixels), stop):
                    return
                tiles, pixels, kept = [], [], 0
        if tiles:
            _put(batches, (tiles, pixels), stop)
    finally:
        reader.close()
        _put(batches, _DONE, stop, force=True)


def _pad(image: np.ndarray, tile: int) -> np.ndarray:
    """Pad ``[T, C, h, w]`` to ``tile`` x ``tile`` by reflection.

    For a scene smaller than a tile, or a chip running past the edge; reflection keeps
    the image's statistics, which zeros would not.
    """
    h, w = image.shape[-2:]
    if (h, w) == (tile, tile):
        return image
    mode = 'reflect' if min(h, w) > 1 and tile - min(h, w) < min(h, w) else 'edge'
    padding = ((0, 0), (0, 0), (0, tile - h), (0, tile - w))
    return np.pad(image, padding, mode=mode)  # type: ignore[call-overload]


def _compute(
    batches: queue.Queue[object],
    outputs: queue.Queue[object],
    model: Callable[[torch.Tensor], torch.Tensor],
    device: str | torch.device,
    precision: str,
    stats: RunStats,
    stop: threading.Event,
    bar: tqdm,
) -> None:
    """Calling thread: the model on each batch's non-skipped tiles."""
    while (item := _get(batches, stop)) is not _DONE:
        tiles: list[Tile] = item[0]  # type: ignore[index]
        pixels: list[np.ndarray] = item[1]  # type: ignore[index]
        keep = [k for k, p in enumerate(pixels) if p.size]
        results: list[np.ndarray | None] = [None] * len(tiles)
        if keep:
            x = torch.from_numpy(np.stack([pixels[k] for k in keep])).to(device)
            with autocast(device, precision), _out_of_memory(x):
                y = model(x).float().cpu().numpy()
            _check_finite(y, [tiles[k] for k in keep], precision)
            for n, k in enumerate(keep):
                results[k] = y[n]
        stats.skipped += len(tiles) - len(keep)
        if not _put(outputs, list(zip(tiles, results)), stop):
            return
        bar.update(len(tiles))


def _check_finite(y: np.ndarray, tiles: list[Tile], precision: str) -> None:
    """Refuse model outputs that are NaN or Inf: written, they would look like results.

    The pixels are finite (non-finite ones are nodata) and so are the weights and the
    statistics (checked when loaded), so this is an overflow: normalised values too large
    for the model (a tiny ``--std``, data on another scale than the statistics).
    """
    if np.isfinite(y).all():
        return
    bad = next(n for n in range(len(y)) if not np.isfinite(y[n]).all())
    _, _, window, _ = tiles[bad]
    raise SceneError(
        f'the model gave NaN or Inf on the tile at column {int(window.col_off)}, row '
        f'{int(window.row_off)} ({precision}): its inputs overflow once normalised; check '
        'that --mean/--std (or the statistics the checkpoint records) are on the '
        "raster's scale (e.g. 0-255 vs 0-1 vs 0-10000); nothing was written"
    )


@contextlib.contextmanager
def _out_of_memory(x: torch.Tensor) -> Iterator[None]:
    """An allocation failure of the model as a SceneError naming the options to lower."""
    try:
        yield
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and 'allocat' not in str(error):
            raise
        raise SceneError(
            f'out of memory running the model on {x.shape[0]} tiles of '
            f'{x.shape[-1]} px on {x.device}; pass a smaller --batch-size or --tile'
        ) from None


def _write(
    outputs: queue.Queue[object], consume: Consume, stop: threading.Event
) -> None:
    """Writer thread: hand each tile's output to *consume*."""
    while (item := _get(outputs, stop)) is not _DONE:
        for tile, result in item:  # type: ignore[attr-defined]
            consume(tile, result)


def model_only(
    model: Callable[[torch.Tensor], torch.Tensor],
    tiles: Iterable[np.ndarray],
    batch_size: int,
    device: str | torch.device = 'cpu',
    precision: str = 'fp32',
) -> float:
    """Seconds the model alone takes on in-memory tiles (the benchmark's baseline).

    Args:
        model: as for :func:`run_tiles`.
        tiles: ``[T, C, tile, tile]`` arrays.
        batch_size: tiles per call.
        device: where the model runs.
        precision: as for :func:`run_tiles`.

    Returns:
        Wall time in seconds.

    .. versionadded:: 0.1
    """
    items = list(tiles)
    start = time.perf_counter()
    for k in range(0, len(items), batch_size):
        x = torch.from_numpy(np.stack(items[k : k + batch_size])).to(device)
        with autocast(device, precision):
            model(x).float().cpu()
    return time.perf_counter() - start


def check_device(device: str | torch.device) -> torch.device:
    """The device to run on, refused before anything is loaded if it cannot run a model.

    Args:
        device: 'cpu', 'cuda', 'cuda:1', 'mps', a :class:`torch.device`, or 'auto'
            (the default of the commands: 'cuda' where PyTorch sees a GPU, else 'cpu').

    Returns:
        The device.

    Raises:
        SceneError: for an unknown name, a device with no data ('meta'), or a GPU that
            this machine or this PyTorch build lacks.

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
       'auto'.
    """
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        found = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise SceneError(
            f"--device {device!r}: not a device name; expected 'cpu', 'cuda', 'cuda:N' "
            "or 'auto'"
        ) from None
    if found.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (found.index or 0) >= count:
            raise SceneError(
                f'--device {device}: this machine has {count} CUDA GPU(s) usable by '
                'PyTorch; pass --device cpu (or install a CUDA build of PyTorch)'
            )
    elif found.type == 'mps':
        if not torch.backends.mps.is_available():
            raise SceneError(
                f'--device {device}: MPS is not available; pass --device cpu'
            )
    elif found.type != 'cpu':
        raise SceneError(
            f"--device {device}: the scene engine runs on 'cpu', 'cuda' or 'mps'"
        )
    return found


def resolve_precision(mode: str, device: torch.device) -> str:
    """What a checked ``--precision`` *mode* runs in on *device*; logged.

    Args:
        mode: 'fp32', 'bf16' or 'auto' (see :func:`check_precision`).
        device: from :func:`check_device`.

    Returns:
        'fp32' or 'bf16'.

    .. versionadded:: 0.2
    """
    logger.info('Precision: %s', describe(mode, device))
    return resolve(mode, device)


def check_integer(name: str, value: object, least: int) -> int:
    """*value* as an int, refused unless it is an integer of at least *least*.

    Args:
        name: the option, for the message ('--tile').
        value: what was given.
        least: the smallest value allowed.

    Returns:
        The integer.

    Raises:
        SceneError: naming the option, the value and the range.

    .. versionadded:: 0.1
    """
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < least:
        raise SceneError(f'{name} {value!r}: expected an integer of at least {least}')
    return number


def check_precision(mode: str) -> str:
    """*mode* if it is a ``--precision`` the engine takes, else a SceneError.

    Args:
        mode: 'fp32', 'bf16' or 'auto'.

    Returns:
        The mode.

    Raises:
        SceneError: naming the value and the choices.

    .. versionadded:: 0.1
    """
    if mode not in MODES:
        raise SceneError(
            f'--precision {mode!r}: expected one of {", ".join(MODES)} '
            '(fp32: the same output on every machine)'
        )
    return mode
