# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Writing GeoPile as litdata shards: the image bytes as they are, bad files left out.

:func:`write_geopile_shards` checks every argument and the output first
(:mod:`.storage`), then runs litdata's ``optimize`` with :class:`_Encode` as its
per-input function: each input is a file index (or the one NAIP job, which cuts the chips
from the rasters as it goes), each file is decoded once (:func:`.reading.decode_rgb`) and
a file that does not decode is listed, not written. The same files, ``num_workers`` and
``chunk_bytes`` give the same shards. Ctrl-C, SIGTERM or a worker's error stop the
workers (:mod:`.processes`) and remove the partial output.

.. versionadded:: 0.2
"""

import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litdata import optimize
from tqdm import tqdm

from ..._compat import litdata_allow_http, litdata_keeps_off_sigint
from ..geopile import TORCHGEO_SOURCES, GeoPile
from ..naip_chips import NAIPChipSpec
from .processes import (
    descendants,
    stop_if_orphaned,
    stop_workers,
    workers_ignore_sigint,
)
from .reading import decode_rgb
from .storage import add_to_index, check_output_dir, output_target

#: most worker processes (each a fork of this one); more cannot run at once usefully
MAX_WORKERS = max(64, 4 * (os.cpu_count() or 1))


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

    def __call__(self, index: int) -> Iterator[dict[str, Any]]:
        stop_if_orphaned(self.owner)  # the command was killed (SIGKILL): stop too
        if index == _NAIP:
            yield from self._naip_chips()
            return
        # inputs are indices, not paths: litdata would copy path inputs to a cache first
        path, source = self.files[index]
        try:
            data = self._load(path)
        except Exception as error:  # noqa: BLE001 (any decoder error: bad data, not a bug)
            # one JSON line per file: any name (tabs, newlines, bytes that are not UTF-8)
            line = json.dumps([path, f'{type(error).__name__}: {error}'])
            with open(os.path.join(self.log_dir, f'{os.getpid()}.jsonl'), 'a') as log:
                print(line, file=log)
            return
        yield self._sample(data, source, self._relative(path, source))

    def _load(self, path: str) -> Any:
        """What a sample stores of the file: its bytes, once decoded as a check."""
        data = _read_regular(path)
        decode_rgb(data, path)  # the whole image: truncation shows up here
        return data

    def _relative(self, path: str, source: int) -> str:
        """The file's path as samples record it: relative to ROOT."""
        return os.path.relpath(path, self.root)

    def _sample(self, data: Any, source: int, path: str) -> dict[str, Any]:
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
            stop_if_orphaned(self.owner)
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
    #: the sensor of multiband arrays (``write_multiband_shards``); None: images.
    sensor: str | None = None


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
    check_num_workers(num_workers)
    _check_storage_options(storage_options)
    _check_sources(sources, root, naip)
    output_dir = check_output_dir(output_dir, storage_options, root)
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
    written, skipped, chips = shard(
        encode,
        inputs,
        output_dir,
        chunk_bytes,
        num_workers,
        storage_options,
        f'images under {str(root)!r}',
    )
    return ShardReport(output_dir, written, tuple(order), skipped, chips)


def shard(
    encode: _Encode,
    inputs: list[int],
    output_dir: str,
    chunk_bytes: int,
    num_workers: int,
    storage_options: dict[str, Any] | None,
    what: str,
    metadata: dict[str, Any] | None = None,
) -> tuple[int, list[tuple[str, str]], int]:
    """Run litdata's ``optimize`` over checked inputs; nothing is left on failure.

    Args:
        encode: the per-input function (its ``log_dir`` is set here).
        inputs: file indices (and the NAIP job).
        output_dir: a checked :func:`.storage.check_output_dir` result.
        chunk_bytes: target shard size in bytes.
        num_workers: worker processes.
        storage_options: object-storage client options (None: environment).
        what: the inputs, as the error that none could be read names them.
        metadata: recorded in index.json (:func:`.storage.add_to_index`), if given.

    Returns:
        ``(written, skipped, naip_chips)``.

    Raises:
        ShardWriteError: if a worker, the disk or the object store failed.
        RuntimeError: if no file could be read (nothing is written).
    """
    with (
        tempfile.TemporaryDirectory(prefix='geopile-shard-') as encode.log_dir,
        output_target(output_dir, storage_options) as target,
    ):
        before = set(descendants(os.getpid()))
        litdata_allow_http()  # http:// endpoints (MinIO, Ceph): torchgeo_gfm._compat
        try:  # Ctrl-C raises here (not litdata's exit 0), workers stay quiet
            with litdata_keeps_off_sigint(), workers_ignore_sigint():
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
            stop_workers(before)
            raise ShardWriteError(_worker_failure(error)) from error
        except BaseException:  # SIGINT, or SIGTERM (sigterm_exits): workers stop too
            stop_workers(before)
            raise
        skipped = _collect_skips(encode.log_dir)
        chips_file = Path(encode.log_dir, 'naip-chips')
        chips = int(chips_file.read_text()) if chips_file.exists() else 0
        written = len(encode.files) - len(skipped) + chips
        if not written:  # raised inside output_target: a local output is removed
            raise RuntimeError(
                f'none of the {len(encode.files)} {what} could be decoded (first: '
                f'{skipped[:3]}); nothing was written; check the files'
            )
        if metadata is not None:  # inside output_target: a local OUT appears complete
            add_to_index(target, metadata, storage_options)
    return written, skipped, chips


def check_num_workers(num_workers: int) -> None:
    """Refuse a worker count that is not an integer in [0, :data:`MAX_WORKERS`].

    Args:
        num_workers: the count to check.

    Raises:
        ValueError: if it is not.
    """
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


#: a shard size: a number, then perhaps a unit as litdata reads them ('64MB', '16kb', '1g')
_SIZE = re.compile(r'(\d+(?:\.\d*)?|\.\d+) *([kmgt]?)b?')
#: the units, in powers of 1000 as litdata counts them
_SIZE_UNITS = {'': 1, 'k': 1000, 'm': 1000**2, 'g': 1000**3, 't': 1000**4}


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
    match = _SIZE.fullmatch(str(value).strip().lower())
    size = 0
    if match and not isinstance(value, bool):
        number, unit = match.groups()
        size = int(float(number) * _SIZE_UNITS[unit])  # float: '1.5GB'
    if size <= 0:
        raise ValueError(
            f'chunk_bytes {value!r}: expected a positive size in bytes, as an integer '
            '(67108864) or with a unit (64MB, 1GB, 512kb)'
        )
    return size
