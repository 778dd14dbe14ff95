# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""GeoPile as litdata shards: written once, streamed from a folder or object storage.

``torchgeo-gfm shard ROOT OUT`` turns any GeoPile that :class:`~torchgeo_gfm.datasets.GeoPile`
reads (``ROOT/<source>/<class>/<image>``, NAIP chips written by ``torchgeo-gfm naip-chips``
included) into `litdata <https://github.com/Lightning-AI/litData>`_ chunks with
``litdata.optimize``. ``--naip TILES... --naip-chips N`` adds NAIP chips cut straight from
the GeoTIFFs, with no chip files in between: the same chips, names and bytes as
``torchgeo-gfm naip-chips`` with the same options (cut in order by one of the workers). Each sample holds the image file's bytes as they are (a JPEG is not
re-encoded), its source index and name, its class folder and its path relative to ROOT.
OUT is a folder or an ``s3://`` or ``gs://`` URL; object-storage settings come
from the standard environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ...) or ``--storage-options``.

Every image is decoded once while sharding: unreadable or degenerate files are left out
and listed (as GeoPile warns about them), so training never meets them. The same files,
``--num-workers`` and ``--chunk-bytes`` give the same shards (files in GeoPile's sorted
order, each worker a fixed contiguous slice).

:class:`GeoPileStreamingDataset` reads the shards back (litdata's ``StreamingDataset``:
shuffling across shards, exactly-once assignment to ranks and workers, resumable state,
a bounded local cache) and decodes each image as GeoPile does.

.. versionadded:: 0.1
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import signal
import stat
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset, optimize
from litdata.exceptions import ChunkWaitTimeoutError
from litdata.utilities.format import _convert_bytes_to_int
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchgeo.datasets.utils import Sample
from tqdm import tqdm

from ..cli import report_error
from ..outputs import OutputError, atomic_output, check_output, looks_like_url
from .geopile import TORCHGEO_SOURCES, GeoPile
from .naip_chips import NAIPChipSpec, add_chip_options, chip_spec, positive_int
from .utils import _needs_rasterio, _pil_to_rgb, array_to_rgb, fit_square, pil_to_tensor


def _allow_http_endpoints() -> None:
    """Let litdata's obstore S3 path reach ``http://`` endpoints, as its boto3 path does.

    litdata (0.2.7x) uploads and prefetches through obstore, whose client refuses plain
    HTTP unless told otherwise, while the endpoint (``AWS_ENDPOINT_URL``) is the user's
    explicit choice: an on-premise MinIO/Ceph or a local test server is often HTTP. The
    option only permits what boto3 already does; HTTPS endpoints are unaffected. The fix
    for litdata itself, to drop this when released: upstream/litdata/README.md.
    """
    try:
        from litdata.streaming import downloader
    except ImportError:  # pragma: no cover (litdata without obstore support)
        return
    options = getattr(downloader, '_OBSTORE_CLIENT_OPTIONS', None)
    if isinstance(options, dict):
        options.setdefault('allow_http', 'true')


_allow_http_endpoints()

#: URL schemes litdata streams from (anything else is a local folder).
REMOTE_SCHEMES = ('s3://', 'gs://', 'azure://', 'hf://')
#: those it can also write shards to (litdata 0.2.7x's optimize)
WRITABLE_SCHEMES = ('s3://', 'gs://')
_TIFF = ('.tif', '.tiff')


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an object-storage URL rather than a local folder.

    Args:
        path: folder or URL.

    Returns:
        True for ``s3://``, ``gs://``, ``azure://`` and ``hf://`` URLs.

    .. versionadded:: 0.1
    """
    return os.fspath(path).startswith(REMOTE_SCHEMES)


def _read_rasterio_bytes(data: bytes) -> Image.Image:
    """Deep or many-band TIFF bytes to RGB, as GeoPile reads such files (GDAL)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():  # plain TIFFs have no georeference; pixels suffice
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        with MemoryFile(data) as memfile, memfile.open() as src:
            bands = src.read(indexes=list(range(1, min(src.count, 3) + 1)))
    return Image.fromarray(array_to_rgb(np.moveaxis(bands, 0, -1)))


def decode_rgb(data: bytes, name: str, size: int | None = None) -> Tensor:
    """Decode image file bytes as GeoPile reads the file itself.

    Same conversion rule as :func:`~torchgeo_gfm.datasets.utils.read_rgb` (which takes
    a path): 8-bit RGB, 16-bit and many-band TIFFs through GDAL, large JPEGs decoded at
    reduced DCT scale when ``size`` allows it.

    Args:
        data: the image file's bytes.
        name: its file name (the extension tells TIFFs apart).
        size: if given, a random square of the shorter side resized to ``size``.

    Returns:
        The uint8 ``[3, H, W]`` image.

    Raises:
        OSError: (or another decoder error) if the bytes are not a readable image.

    .. versionadded:: 0.1
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if not name.lower().endswith(_TIFF):
            raise
        rgb = _read_rasterio_bytes(data)  # e.g. 16-bit multi-band GeoTIFF
    else:
        with image:
            if _needs_rasterio(image, name):
                rgb = _read_rasterio_bytes(data)
            else:
                if size is not None and image.format == 'JPEG':
                    image.draft('RGB', (size, size))
                image.load()  # decode now, so truncation errors surface here
                rgb = _pil_to_rgb(image)
    tensor = pil_to_tensor(rgb)
    return fit_square(tensor, size) if size is not None else tensor


def _read_regular(path: str) -> bytes:
    """A file's bytes; a FIFO, device or socket posing as an image is refused, not read.

    Reading a FIFO would wait for a writer forever, ``/dev/zero`` would fill memory.
    """
    with open(path, 'rb', opener=_nonblocking) as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f'not a regular file (mode {stat.filemode(mode)}); not read')
        return f.read()


def _nonblocking(path: str, flags: int) -> int:
    """``open`` that does not wait for a FIFO's writer (the mode is checked next)."""
    return os.open(path, flags | getattr(os, 'O_NONBLOCK', 0))


def _text(name: str) -> str:
    r"""A file name as UTF-8-encodable text (bytes that are not UTF-8 as ``\xNN``)."""
    return os.fsencode(name).decode('utf-8', 'backslashreplace')


#: ``optimize`` input standing for all the NAIP chips (the other inputs are file indices)
_NAIP = -1


@dataclass
class _Encode:
    """``optimize``'s per-input function: the samples of a file index or of the NAIP job.

    A class (not a closure) so that litdata's worker processes can unpickle it; a
    generator, so that the NAIP job streams its chips and a bad file yields nothing. Bad
    files are appended to a per-process list under ``log_dir`` (workers share no memory).
    """

    root: str
    files: list[tuple[str, int]]
    sources: tuple[str, ...]
    log_dir: str
    naip: NAIPChipSpec | None = None
    #: the process that runs ``optimize`` (a worker whose parent is gone stops)
    owner: int = field(default_factory=os.getpid)

    def _orphaned(self) -> None:
        """Stop this worker if the command was killed (SIGKILL: it could not stop us)."""
        if os.getpid() != self.owner and os.getppid() != self.owner:
            for pid in _descendants(os.getpid()):  # litdata's helpers of this worker
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            os._exit(1)

    def __call__(self, index: int) -> Iterator[dict[str, Any]]:
        self._orphaned()
        if index == _NAIP:
            yield from self._naip_chips()
            return
        # inputs are indices, not paths: litdata would copy path inputs to a cache first
        path, source = self.files[index]
        try:
            data = _read_regular(path)
            decode_rgb(data, path)  # the whole image: truncation shows up here
        except Exception as error:  # noqa: BLE001 (any decoder error: bad data, not a bug)
            # one JSON line per file: any name (tabs, newlines, bytes that are not UTF-8)
            line = json.dumps([path, f'{type(error).__name__}: {error}'])
            with open(os.path.join(self.log_dir, f'{os.getpid()}.jsonl'), 'a') as log:
                print(line, file=log)
            return
        yield self._sample(data, source, os.path.relpath(path, self.root))

    def _sample(self, data: bytes, source: int, path: str) -> dict[str, Any]:
        path = _text(path)
        return {
            'image': data,
            'source': source,
            'source_name': _text(self.sources[source]),
            'class': Path(path).parent.name,
            'path': path,
        }

    def _naip_chips(self) -> Iterator[dict[str, Any]]:
        """The chips, as if ``naip-chips`` had written them under ROOT/<source>/."""
        assert self.naip is not None
        # a forked worker must not start torch's OpenMP pool, which the parent may
        # hold: its first parallel op (in TorchGeo's NAIP reads) would never return
        torch.set_num_threads(1)
        source, count = self.sources.index(self.naip.source), 0
        # litdata's bar counts inputs, and all the chips are one input: a bar of their own
        chips = tqdm(desc='NAIP chips', total=self.naip.n, unit='chip', leave=False)
        for name, data, _, _ in self.naip.encoded(self.naip.open()):
            self._orphaned()
            yield self._sample(data, source, f'{self.naip.source}/{name}')
            count += 1
            chips.update()
        chips.close()
        Path(self.log_dir, 'naip-chips').write_text(str(count))


@dataclass
class ShardReport:
    """What :func:`write_geopile_shards` did.

    .. versionadded:: 0.1
    """

    #: where the shards are (folder or URL).
    output_dir: str
    #: images written.
    written: int
    #: source names, in index order.
    sources: tuple[str, ...]
    #: ``(path, reason)`` of each file left out because it could not be decoded.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: NAIP chips cut from rasters (included in ``written``).
    naip_chips: int = 0


def _source_order(
    found: tuple[str, ...], sources: list[str] | None, naip: str
) -> list[str]:
    """Sources with the NAIP chips' one: sorted, or where ``sources`` puts it."""
    if naip in found:
        raise ValueError(
            f'source {naip!r} is both a folder of the GeoPile root and the source of '
            'the NAIP chips from rasters: give the chips another name (--naip-source)'
        )
    if sources is None:
        return sorted([*found, naip])
    return list(sources) if naip in sources else [*sources, naip]


def _collect_skips(log_dir: str) -> list[tuple[str, str]]:
    """Gather the workers' lists of bad files, sorted by path."""
    skipped = []
    for log in Path(log_dir).glob('*.jsonl'):
        for line in log.read_text().splitlines():
            path, reason = json.loads(line)
            skipped.append((path, reason))
    return sorted(skipped)


def write_geopile_shards(
    root: str | os.PathLike[str] | None,
    output_dir: str,
    sources: list[str] | None = None,
    chunk_bytes: str | int = '64MB',
    num_workers: int = 1,
    storage_options: dict[str, Any] | None = None,
    from_torchgeo: bool = False,
    naip: NAIPChipSpec | None = None,
) -> ShardReport:
    """Write a GeoPile as litdata shards, the image bytes stored as they are.

    Args:
        root: GeoPile root (``root/<source>/<class>/<image>``), or with
            ``from_torchgeo`` the parent of the per-source TorchGeo dataset folders;
            None for NAIP chips only.
        output_dir: empty or missing folder, or an ``s3://`` or ``gs://`` URL.
        sources: source folders to include, in this order (None: all, sorted).
        chunk_bytes: target shard size: bytes, or text with a unit ('64MB'; see
            :func:`parse_chunk_bytes`).
        num_workers: processes reading and checking images; part of what makes the
            shards reproducible (each worker writes its own chunks).
        storage_options: object-storage client options (litdata's
            ``storage_options``; boto3 ``endpoint_url``, keys, ...); None uses the
            standard environment variables.
        from_torchgeo: compose the corpus with :meth:`GeoPile.from_torchgeo`.
        naip: NAIP chips to cut from GeoTIFFs into the shards, as source
            ``naip.source`` (placed among the sources as a ROOT folder of that name
            would be).

    Returns:
        What was written and what was skipped.

    Raises:
        GeoPileLayoutError: if root does not hold a GeoPile.
        OutputError: (a ValueError) if ``output_dir`` is a non-empty local folder or a
            file, looks like a URL of a scheme litdata cannot write, or is an object
            store whose backend package is missing, that has no such bucket or
            refuses the credentials.
        FileNotFoundError: if a NAIP path is missing or holds no NAIP GeoTIFF.
        ValueError: if ``output_dir`` is a URL litdata cannot write to (``azure://``,
            ``hf://``), both root and naip are None, the NAIP source is also a folder
            of root, or no NAIP chip fits in the imagery.
        RuntimeError: if no image could be decoded (a local output is then not
            created).

    .. versionadded:: 0.1
    """
    if root is None and naip is None:
        raise ValueError('nothing to shard: give a GeoPile root, NAIP tiles, or both')
    chunk_bytes = parse_chunk_bytes(chunk_bytes)
    _check_workers(num_workers)
    _check_storage_options(storage_options)
    _check_sources(sources, root, naip)
    output_dir = _check_output(output_dir, storage_options, root)
    # NAIP's errors now, not in a worker after the other sources are written
    if naip is not None:
        naip.check_fits(dataset := naip.open())
        if next(naip.encoded(dataset), None) is None:
            raise naip.no_chip_error()
    pile = _open_pile(root, sources, from_torchgeo, naip)
    found = pile.sources if pile else ()
    order = _source_order(found, sources, naip.source) if naip else list(found)
    files, inputs = _inputs(pile, order, naip)
    encode = _Encode(os.fspath(root or ''), files, tuple(order), '', naip)
    with (
        tempfile.TemporaryDirectory(prefix='geopile-shard-') as encode.log_dir,
        _target(output_dir, storage_options) as target,
    ):
        before = set(_descendants(os.getpid()))
        try:
            with _sigint_stays_ours():
                optimize(
                    fn=encode,
                    inputs=inputs,
                    output_dir=target,
                    chunk_bytes=chunk_bytes,
                    num_workers=num_workers,
                    reorder_files=False,  # litdata would sort by size: keep GeoPile's order
                    keep_data_ordered=True,
                    storage_options=storage_options or {},
                    # litdata defaults to spawn, which re-imports torch in every worker
                    # (~10 s each); forking shares the parent's imports and the file list
                    start_method='fork' if sys.platform == 'linux' else None,
                )
        except Exception as error:
            _stop_workers(before)
            raise ShardWriteError(_worker_failure(error)) from error
        except BaseException:  # SIGINT, or SIGTERM (sigterm_exits): workers stop too
            _stop_workers(before)
            raise
        skipped = _collect_skips(encode.log_dir)
        chips_file = Path(encode.log_dir, 'naip-chips')
        chips = int(chips_file.read_text()) if chips_file.exists() else 0
        written = len(files) - len(skipped) + chips
        if not written:  # raised inside _target: a local output is removed
            raise RuntimeError(
                f'none of the {len(files)} images under {str(root)!r} could be '
                f'decoded (first: {skipped[:3]}); nothing was written; check the files'
            )
    return ShardReport(output_dir, written, tuple(order), skipped, chips)


#: most worker processes (each a fork of this one); more cannot run at once usefully
MAX_WORKERS = max(64, 4 * (os.cpu_count() or 1))


def _check_workers(num_workers: int) -> None:
    """Refuse a worker count that is not an integer in [0, MAX_WORKERS]."""
    if (
        isinstance(num_workers, bool)
        or not isinstance(num_workers, int)
        or not 0 <= num_workers <= MAX_WORKERS
    ):
        raise ValueError(
            f'num_workers {num_workers!r}: expected an integer from 0 (read in this '
            f'process) to {MAX_WORKERS} (4 per CPU, at least 64); each worker is a process'
        )


def _check_storage_options(options: Any) -> None:
    """Refuse storage options that are not a JSON object with string keys."""
    if options is not None and not (
        isinstance(options, dict) and all(isinstance(k, str) for k in options)
    ):
        raise ValueError(
            f'storage options {options!r}: expected a JSON object of client options, '
            'e.g. {"endpoint_url": "https://...", "aws_access_key_id": "..."}'
        )


def _check_sources(
    sources: list[str] | None,
    root: str | os.PathLike[str] | None,
    naip: NAIPChipSpec | None,
) -> None:
    """Refuse sources named twice, or that only a GeoPile root could hold (none given)."""
    if sources is None:
        return
    if isinstance(sources, str) or not all(isinstance(s, str) for s in sources):
        raise ValueError(f'sources {sources!r}: expected a list of source folder names')
    twice = sorted({s for s in sources if sources.count(s) > 1})
    if twice:
        raise ValueError(f'sources {twice} are given more than once: name each once')
    others = [s for s in sources if naip is None or s != naip.source]
    if root is None and others:
        raise ValueError(
            f'sources {others} are folders of a GeoPile ROOT, and none was given: give '
            f'ROOT, or leave them out (the NAIP chips are source {naip and naip.source!r})'
        )


@contextlib.contextmanager
def _sigint_stays_ours() -> Iterator[None]:
    """Keep litdata from taking SIGINT over while ``optimize`` runs.

    litdata (0.2.7x) installs a SIGINT handler that ends the process with
    ``os._exit(0)``: Ctrl-C would exit with status 0, leave the partial output and the
    workers' own processes behind, and the handler stays installed after ``optimize``
    returns. Its module's ``signal.signal`` is replaced, for the block, by one that
    leaves SIGINT alone; Ctrl-C then raises KeyboardInterrupt here, which stops the
    workers and removes the partial output.
    """
    from litdata.processing import data_processor

    real = data_processor.signal

    def install(signum: int, handler: Any) -> Any:
        if signum == real.SIGINT:
            return real.getsignal(signum)
        return real.signal(signum, handler)

    proxy = types.SimpleNamespace(
        **{k: getattr(real, k) for k in dir(real) if not k.startswith('__')}
    )
    proxy.signal = install
    data_processor.signal = proxy
    global _OPTIMIZING
    _OPTIMIZING = os.getpid()
    try:
        yield
    finally:
        _OPTIMIZING = 0
        data_processor.signal = real


#: pid of the process running ``optimize`` (0 if none): processes forked meanwhile
#: (litdata's workers and their helpers) ignore SIGINT, which Ctrl-C sends to the whole
#: process group; the command stops them itself (:func:`_stop_workers`), so none
#: prints a KeyboardInterrupt traceback
_OPTIMIZING = 0


def _forked_child_ignores_sigint() -> None:
    if _OPTIMIZING and os.getpid() != _OPTIMIZING:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if hasattr(os, 'register_at_fork'):  # pragma: no branch (POSIX)
    os.register_at_fork(after_in_child=_forked_child_ignores_sigint)


def _stop_workers(before: set[int], timeout: float = 5.0) -> None:
    """Terminate the processes started by ``optimize`` (litdata's workers).

    litdata leaves its worker processes running when ``optimize`` is interrupted; they
    would go on reading and writing into a partial output that is being removed. Only
    the descendants that were not there before (*before*) are stopped, then killed if
    they do not stop within *timeout* seconds.
    """
    children = [pid for pid in _descendants(os.getpid()) if pid not in before]
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while children and time.monotonic() < deadline:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            if not _running(pid):
                children.remove(pid)
        time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _running(pid: int) -> bool:
    """Whether *pid* runs (a zombie does not)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rpartition(')')[2].split()[0] != 'Z'
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """The processes under *pid* (Linux's /proc; none found elsewhere)."""
    parents: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir('/proc'):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f'/proc/{entry.name}/stat') as f:
                    ppid = int(f.read().rpartition(')')[2].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ShardWriteError(RuntimeError):
    """Writing the shards failed part-way (a worker's error, a full disk, ...).

    Its message is one line: the root cause, without litdata's tracebacks.

    .. versionadded:: 0.1
    """


#: the exception line of a formatted traceback (``module.Error: message``)
_EXCEPTION_LINE = re.compile(
    r'^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)): ?(.*)$'
)


def _worker_failure(error: BaseException) -> str:
    """One line for an error of ``optimize``: the root cause its workers reported.

    litdata re-raises a worker's failure as a RuntimeError holding the formatted
    traceback; the first exception line in it is the cause.
    """
    text = str(error)
    if 'Traceback (most recent call last)' in text:
        causes = [m for line in text.splitlines() if (m := _EXCEPTION_LINE.match(line))]
        if causes:
            text = f'{causes[0][1]}: {causes[0][3]}'
    else:
        text = f'{type(error).__name__}: {text}'
    return (
        f'writing the shards failed ({" ".join(text.split())}); nothing was written. '
        'Check the disk or the object store, then run the command again'
    )


def _inputs(
    pile: GeoPile | None, order: list[str], naip: NAIPChipSpec | None
) -> tuple[list[tuple[str, int]], list[int]]:
    """``optimize``'s inputs: the files of each source in order, then the NAIP job.

    Sources in order, each source's files in GeoPile's sorted order, one contiguous
    slice of inputs per worker: reproducible.
    """
    files: list[tuple[str, int]] = []  # (path, index of its source in order)
    inputs: list[int] = []
    found = pile.sources if pile else ()
    for source, name in enumerate(order):
        if naip is not None and name == naip.source:
            inputs.append(_NAIP)
            continue
        assert pile is not None
        first, ids = len(files), pile._source_ids
        files += [
            (pile.file(int(i)), source)
            for i in np.flatnonzero(ids == found.index(name))
        ]
        inputs += range(first, len(files))
    return files, inputs


@contextlib.contextmanager
def _target(
    output_dir: str, storage_options: dict[str, Any] | None = None
) -> Iterator[str]:
    """Where ``optimize`` writes: the URL, or a local partial folder renamed when done.

    A local OUT appears only complete (:func:`~torchgeo_gfm.outputs.atomic_output`);
    missing parent folders are created, and removed again on failure. On an S3 URL,
    whose prefix was checked to be empty, what was uploaded is deleted on failure.
    """
    if is_remote(output_dir):
        try:
            yield output_dir
        except (
            BaseException
        ):  # the prefix was empty (checked): remove what was uploaded
            _remove_remote(output_dir, storage_options)
            raise
        return
    out = Path(output_dir)
    created = [p for p in out.parents if not p.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(out) as tmp:
            yield str(tmp)
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):  # not empty: no longer only ours
                folder.rmdir()
        raise


def _remove_remote(url: str, storage_options: dict[str, Any] | None) -> None:
    """Delete the objects under an S3 URL's prefix (best effort: errors are ignored)."""
    if not url.startswith('s3://'):
        return  # gs:// is not cleaned up (untested here: no GCS server in the tests)
    with contextlib.suppress(Exception):
        import boto3

        bucket, _, prefix = url.removeprefix('s3://').partition('/')
        prefix = prefix.strip('/')
        client = boto3.client('s3', **(storage_options or {}))
        pages = client.get_paginator('list_objects_v2').paginate(
            Bucket=bucket, Prefix=f'{prefix}/' if prefix else ''
        )
        for page in pages:
            keys = [{'Key': o['Key']} for o in page.get('Contents', [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={'Objects': keys})


def _open_pile(
    root: str | os.PathLike[str] | None,
    sources: list[str] | None,
    from_torchgeo: bool,
    naip: NAIPChipSpec | None,
) -> GeoPile | None:
    """The GeoPile under root (None if there is no root), without the NAIP source."""
    if root is None:
        return None
    if sources is not None and naip is not None:
        sources = [s for s in sources if s != naip.source]
    if from_torchgeo:
        return GeoPile.from_torchgeo(root, sources=sources or TORCHGEO_SOURCES)
    return GeoPile(root, sources=sources)


def _check_output(
    output_dir: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> str:
    """Refuse what litdata cannot write, to mix shards with other files, or the input."""
    output_dir = os.fspath(output_dir)
    if not output_dir.strip():
        raise OutputError(
            'the output is empty; give a new or empty folder, or an s3:// or gs:// URL'
        )
    if output_dir.startswith(WRITABLE_SCHEMES):
        _check_remote(output_dir, storage_options)
        return output_dir
    if is_remote(output_dir):
        raise OutputError(
            f'cannot write shards to {output_dir!r}: litdata uploads to '
            f'{" and ".join(WRITABLE_SCHEMES)} only. Write them to a local folder and '
            'upload it (e.g. `az storage blob upload-batch`), then stream from the URL'
        )
    if looks_like_url(output_dir):
        raise OutputError(
            f'cannot write shards to {output_dir!r}: it looks like a URL, and shards '
            f'are written to a local folder or to {" or ".join(WRITABLE_SCHEMES)} URLs '
            '(lower case, as in s3://bucket/prefix); fix the URL, or give a folder path '
            '(./NAME for a local folder whose name has a colon)'
        )
    if storage_options:
        raise OutputError(
            f'storage options are for s3:// and gs:// outputs; {output_dir!r} is a local '
            'folder: leave --storage-options out'
        )
    out = Path(output_dir).absolute()
    if root is not None and _inside(out, Path(root)):
        raise OutputError(
            f'{output_dir}: is inside the GeoPile root {os.fspath(root)}; shards written '
            'there would become part of the input: choose a folder outside it'
        )
    # missing folders are created by the write: check the first of them
    missing = [p for p in (out, *out.parents) if not os.path.lexists(p)]
    check_output(missing[-1] if missing else out, folder=True)
    return str(out)


def _inside(path: Path, folder: Path) -> bool:
    """Whether *path* (existing or not) is *folder* or lies under it, links resolved."""
    inner, outer = os.path.realpath(path), os.path.realpath(folder)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


#: URL prefix -> (module, the pip package that provides it) litdata writes through
_BACKENDS = {
    's3://': ('boto3', 'boto3'),
    'gs://': ('google.cloud.storage', 'google-cloud-storage'),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def _check_remote(url: str, storage_options: dict[str, Any] | None) -> None:
    """Refuse, before any work, a URL whose backend is missing or that refuses us."""
    prefix = url[: url.index('://') + 3]
    module, package = _BACKENDS[prefix]
    if not _installed(module):
        raise OutputError(
            f'cannot write shards to {url!r}: {prefix} needs the {package!r} package, '
            f'which is not installed; `pip install {package}` or write to a local folder'
        )
    if not url[len(prefix) :].split('/', 1)[0]:
        raise OutputError(f'{url!r} names no bucket; expected {prefix}BUCKET/PREFIX')
    if prefix == 's3://':
        _check_s3(url, storage_options)


def _check_s3(url: str, storage_options: dict[str, Any] | None) -> None:
    """Ask the S3 server whether the bucket exists and the credentials are good."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    options = storage_options or {}
    bucket = url.removeprefix('s3://').split('/', 1)[0]
    if 'aws_access_key_id' not in options and boto3.Session().get_credentials() is None:
        raise OutputError(f'no object-storage credentials for {url!r}; {_CREDENTIALS}')
    prefix = url.removeprefix('s3://').partition('/')[2].strip('/')
    try:
        client = boto3.client('s3', **options)
        client.head_bucket(Bucket=bucket)
        listed = client.list_objects_v2(
            Bucket=bucket, Prefix=f'{prefix}/' if prefix else '', MaxKeys=1
        )
    except ClientError as error:
        status = _status(error)
        reason = {
            '403': 'the credentials are wrong or lack permission',
            '404': f'bucket {bucket!r} does not exist',
        }.get(status, str(error))
        raise OutputError(
            f'cannot write shards to {url!r}: {reason} (HTTP {status}); {_CREDENTIALS}'
        ) from None
    except (BotoCoreError, TypeError, ValueError) as error:  # endpoint, bad options
        raise OutputError(
            f'cannot write shards to {url!r} ({type(error).__name__}: {error}); '
            f'{_CREDENTIALS}'
        ) from None
    if listed.get('KeyCount', len(listed.get('Contents', []))):
        raise OutputError(
            f'cannot write shards to {url!r}: it already holds objects (e.g. '
            f'{listed["Contents"][0]["Key"]!r}); shards are never mixed with other '
            'files: choose a new prefix'
        )


def parse_chunk_bytes(value: str | int) -> int:
    """A shard size: bytes as an integer (``67108864``) or with a unit (``64MB``).

    Args:
        value: an int, or text litdata reads (``'64MB'``, ``'1.5GB'``, ``'16kb'``).

    Returns:
        The size in bytes (units of 1000, as litdata counts them).

    Raises:
        ValueError: if it is not a positive size.

    .. versionadded:: 0.1
    """
    text = str(value).strip()
    try:
        size = int(text) if text.lstrip('-').isdigit() else _convert_bytes_to_int(text)
    except (ValueError, OverflowError):
        size = 0
    if isinstance(value, bool) or size <= 0:
        raise ValueError(
            f'chunk_bytes {value!r}: expected a positive size in bytes, as an integer '
            '(67108864) or with a unit (64MB, 1GB, 512kb)'
        )
    return size


def _chunk_bytes_arg(text: str) -> int:
    """Argparse ``type=`` of ``--chunk-bytes``."""
    try:
        return parse_chunk_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _workers_arg(text: str) -> int:
    """Argparse ``type=`` of ``--num-workers``."""
    try:
        value = int(text)
        _check_workers(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected an integer from 0 to {MAX_WORKERS}, got {text!r}'
        ) from None
    return value


def _storage_options_arg(text: str) -> dict[str, Any]:
    """Argparse ``type=`` of ``--storage-options``: a JSON object."""
    try:
        options = json.loads(text)
        _check_storage_options(options)
    except ValueError:  # also json.JSONDecodeError
        raise argparse.ArgumentTypeError(
            f'expected a JSON object such as \'{{"endpoint_url": "https://..."}}\', '
            f'got {text!r}'
        ) from None
    return dict(options or {})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm shard``.

    Args:
        parser: the sub-command's parser.

    .. versionadded:: 0.1
    """
    parser.add_argument(
        'root',
        nargs='?',
        help='GeoPile root (ROOT/<source>/<class>/<image>); optional with --naip',
    )
    parser.add_argument('out', help='empty folder, or s3:// or gs:// URL')
    parser.add_argument('--sources', nargs='+', help='source folders (default: all)')
    parser.add_argument(
        '--chunk-bytes',
        type=_chunk_bytes_arg,
        default='64MB',
        help='shard size: bytes (67108864) or with a unit (64MB, the default)',
    )
    parser.add_argument(
        '--num-workers',
        type=_workers_arg,
        default=1,
        help=f'reading processes, 0 to {MAX_WORKERS} (default 1; 0: in this process)',
    )
    parser.add_argument(
        '--storage-options',
        type=_storage_options_arg,
        default=None,
        help='JSON object of object-storage client options (default: environment)',
    )
    parser.add_argument(
        '--from-torchgeo',
        action='store_true',
        help='ROOT holds the per-source TorchGeo datasets (GeoPile.from_torchgeo)',
    )
    naip = parser.add_argument_group(
        'NAIP chips straight from rasters (as torchgeo-gfm naip-chips, no chip files)'
    )
    naip.add_argument('--naip', nargs='+', metavar='PATH', help='NAIP GeoTIFFs/folders')
    naip.add_argument('--naip-chips', type=positive_int, metavar='N', help='chips')
    add_chip_options(naip, prefix='naip-')
    parser.epilog = __doc__.split('\n\n')[1] if __doc__ else None


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm shard``.

    Args:
        args: parsed arguments.

    Returns:
        0 on success (bad files are listed, not fatal), 1 if the imagery ran out of
        NAIP chips, 2 (one line on stderr) on a bad input or an error.

    .. versionadded:: 0.1
    """
    if bool(args.naip) != bool(args.naip_chips):
        return report_error('shard', '--naip and --naip-chips go together')
    if args.root is None and not args.naip:
        return report_error('shard', 'give a GeoPile ROOT, --naip tiles, or both')
    try:
        naip = (
            chip_spec(args, args.naip, args.naip_chips, 'naip-') if args.naip else None
        )
        report = write_geopile_shards(
            args.root,
            args.out,
            sources=args.sources,
            chunk_bytes=args.chunk_bytes,
            num_workers=args.num_workers,
            storage_options=args.storage_options,
            from_torchgeo=args.from_torchgeo,
            naip=naip,
        )
    except (ValueError, OSError, RuntimeError) as error:
        if isinstance(error, ShardWriteError):  # after litdata's progress bars
            print(file=sys.stderr)
        return report_error('shard', error)
    for path, reason in report.skipped:
        print(f'skipped bad image {path} ({reason})', file=sys.stderr)
    print(
        f'wrote {report.written} images of {len(report.sources)} sources '
        f'({", ".join(report.sources)}) to {report.output_dir}; '
        f'{len(report.skipped)} unreadable file(s) skipped'
    )
    if naip is not None:
        print(
            f'{report.naip_chips} of them NAIP chips cut from {len(naip.paths)} path(s)'
        )
        if report.naip_chips < naip.n:
            print(
                f'only {report.naip_chips} of {naip.n} NAIP chips had <= '
                f'{naip.max_nodata:.0%} empty pixels; add tiles or lower --naip-chips',
                file=sys.stderr,
            )
            return 1
    return 0


class ShardError(RuntimeError):
    """Raised when GeoPile shards cannot be opened or read.

    .. versionadded:: 0.1
    """


def _status(error: BaseException) -> str:
    """HTTP status of a botocore error in ``error``'s chain ('' if none)."""
    while error is not None:
        response = getattr(error, 'response', None)
        if isinstance(response, dict):
            meta = response.get('ResponseMetadata', {})
            code = response.get('Error', {}).get('Code', '')
            return str(meta.get('HTTPStatusCode', code))
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return ''


def _bucket_exists(url: str, storage_options: dict[str, Any] | None) -> bool | None:
    """Whether the S3 bucket of ``url`` exists (None if that cannot be told)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = url.removeprefix('s3://').split('/', 1)[0]
    try:
        boto3.client('s3', **(storage_options or {})).head_bucket(Bucket=bucket)
    except ClientError as error:
        return False if _status(error) == '404' else None
    except BotoCoreError:
        return None
    return True


_CREDENTIALS = (
    'set the object-storage credentials the standard way (AWS_ACCESS_KEY_ID, '
    'AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for S3-compatible servers; '
    'GOOGLE_APPLICATION_CREDENTIALS for gs://) or pass storage_options'
)


def _open_error(
    input_dir: str, storage_options: dict[str, Any] | None, error: Exception
) -> ShardError:
    """A ShardError saying what was not found or allowed, and what to do."""
    expected = (
        f'expected the output of `torchgeo-gfm shard ROOT {input_dir}` '
        '(index.json and chunk-*.bin files)'
    )
    status = _status(error)
    if status in ('403', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'):
        return ShardError(
            f'access to {input_dir!r} was refused (HTTP {status}: the credentials are '
            f'wrong or lack read permission); {_CREDENTIALS}'
        )
    if status == '404' and input_dir.startswith('s3://'):
        bucket = input_dir.removeprefix('s3://').split('/', 1)[0]
        if _bucket_exists(input_dir, storage_options) is False:
            return ShardError(
                f'bucket {bucket!r} of {input_dir!r} does not exist on the object '
                f'store; {expected}. Check the URL and AWS_ENDPOINT_URL'
            )
        return ShardError(f'no shard index at {input_dir}/index.json; {expected}')
    if not is_remote(input_dir) and not os.path.isfile(
        os.path.join(input_dir, 'index.json')
    ):
        return ShardError(f'no shard index at {input_dir}/index.json; {expected}')
    return ShardError(
        f'cannot open GeoPile shards at {input_dir!r} ({type(error).__name__}: '
        f'{error}); {expected}; for object storage, {_CREDENTIALS}'
    )


class GeoPileStreamingDataset(StreamingDataset):
    """GeoPile shards written by ``torchgeo-gfm shard``, streamed with litdata.

    Samples are decoded as :class:`~torchgeo_gfm.datasets.GeoPile` decodes files:
    ``{'image': uint8 [3, size, size], 'source': int64 scalar}``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        input_dir: str,
        size: int | None = 256,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool | None = None,
        max_cache_size: int | str | None = None,
        cache_dir: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        """Initialize a new GeoPileStreamingDataset instance.

        Args:
            input_dir: shard folder or URL (``s3://bucket/geopile``).
            size: side of the square each image is cut and resized to; None keeps the
                native size.
            shuffle: shuffle shards and the samples within them, anew each epoch.
            seed: shuffling seed (the same on every rank).
            drop_last: drop the samples that do not fill a batch on every rank
                (litdata's default in a distributed run: collectives stay in step).
            max_cache_size: largest local cache of downloaded shards (e.g. '50GB').
            cache_dir: local cache folder (litdata's default if None).
            storage_options: object-storage client options; None: environment.
        """
        try:
            super().__init__(
                input_dir,
                cache_dir=cache_dir,
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_last,
                max_cache_size=max_cache_size or '100GB',
                storage_options=storage_options or {},
            )
        except Exception as error:
            raise _open_error(input_dir, storage_options, error) from error
        self.input_dir_name = input_dir
        self.size = size

    def __getitem__(self, index: Any) -> Sample:
        """Return a decoded image and its source.

        Args:
            index: litdata's chunk index.

        Returns:
            ``{'image': uint8 [3, size, size], 'source': int64 scalar}``.
        """
        try:
            item = super().__getitem__(index)
        except ChunkWaitTimeoutError as error:
            raise ShardError(
                f'a shard of {self.input_dir_name!r} is shorter than its index.json '
                f'says, or its download failed ({error.args[0] if error.args else error}'
                '); expected complete chunk files as written by `torchgeo-gfm shard`. '
                'Re-run the shard command (or re-upload the file) and clear the local '
                'cache (cache_dir) before training again'
            ) from error
        image = decode_rgb(item['image'], item['path'], self.size)
        return {'image': image, 'source': torch.tensor(int(item['source']))}
