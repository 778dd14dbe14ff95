# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Every file the package writes: one output check, one atomic writer.

Commands check their outputs before any work (:func:`check_output`,
:func:`check_outputs`), then write each one under a temporary name next to it and rename
it into place only when complete (:func:`atomic_output`). The rules:

* an output is never an input of the command (the raster, the checkpoint: *protect*) nor
  another of its outputs, even with ``--overwrite``; two paths are the same file when
  :func:`os.path.samefile` says so (hard links) or, if one does not exist yet, when their
  resolved paths (symlinks followed) are equal;
* an existing output is replaced only with ``--overwrite``, and only if it is a regular
  file: a folder, device (``/dev/null``, ``/dev/stdout``), FIFO or socket never is;
* the folder of the output must exist and be writable; the path is not empty, holds no
  NUL byte, has a name the file system takes, and does not look like a URL
  (``s3://...``, ``S3:x``, ``ftp://...``: these are written to object storage or not at
  all, never as a local folder named ``s3:``; ``./NAME`` writes a local name with a colon);
* an output folder that is a symlink to an empty folder is written through the link;
* temporary files are named ``.NAME.partial-<pid>-<random><suffix>``; the output gets
  the mode a plain ``open()`` gives (the user's umask, or the mode of the file it
  replaces), whatever mode the writer created it with;
* temporary files are removed on any exception, including ``KeyboardInterrupt`` (SIGINT)
  and the ``SystemExit`` that :func:`sigterm_exits` turns SIGTERM into;
* a partial left by a process that no longer runs (killed with SIGKILL) is removed, with
  a warning naming it, the next time the same output is written.

.. versionadded:: 0.1
"""

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import stat
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType

__all__ = (
    'OutputError',
    'atomic_output',
    'check_output',
    'check_outputs',
    'looks_like_url',
    'sigterm_exits',
    'temporary_output',
)

Pathish = str | os.PathLike[str]


class OutputError(ValueError):
    """An output path that must not or cannot be written; the message says what to do.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------
# The check


def same_file(a: Pathish, b: Pathish) -> bool:
    """Whether two paths name the same file (hard and symbolic links included).

    Args:
        a: a path, existing or not.
        b: another.

    Returns:
        True if :func:`os.path.samefile` says so when both exist, else if their
        resolved paths are equal.

    .. versionadded:: 0.1
    """
    with contextlib.suppress(OSError):  # one is missing (or unreadable): compare names
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


#: where devices and the kernel's files live (``/dev/stdout`` may lead to a regular file)
_SYSTEM = ('/dev/', '/proc/', '/sys/')


#: ``scheme:`` at the start of a path (RFC 3986's scheme syntax), or a known scheme
#: name followed by ``//`` (``s3//bucket``: a typo); a Windows drive (``C:\\``) as well
_URL = re.compile(
    r'^\s*([A-Za-z][A-Za-z0-9+.-]*:|(s3|gs|gcs|azure|az|abfss?|hf|https?|s?ftp|file|r2)//)',
    re.IGNORECASE,
)


def looks_like_url(path: Pathish) -> bool:
    """Whether *path* reads as a URL (``s3://b/k``, ``S3:b``, ``ftp:/x``) or a typo of one.

    Such a path is never written as a local folder named after the scheme. A local name
    with a colon is written as ``./NAME``.

    Args:
        path: an output path as given.

    Returns:
        True if it starts with ``scheme:`` or with a known scheme followed by ``//``.

    .. versionadded:: 0.1
    """
    return bool(_URL.match(os.fspath(path)))


#: bytes a temporary name adds to the output's name: '.' + '.partial-PID-TOKEN' + suffix
_PARTIAL_OVERHEAD = 1 + len('.partial-') + 10 + 1 + 8


def _name_max(folder: Path) -> int:
    """Longest file name (bytes) the file system of *folder* takes."""
    with contextlib.suppress(OSError, ValueError):
        return os.pathconf(folder, 'PC_NAME_MAX')
    return 255


def _refuse_malformed(out: Path, given: str) -> None:
    """A NUL byte, a URL, a name longer than the file system takes."""
    if '\0' in given:
        raise OutputError(
            f'{given!r}: the output path holds a NUL byte; give a file name'
        )
    if looks_like_url(given):
        raise OutputError(
            f'{given}: looks like a URL, and this command writes local files only; give '
            'a local path (write ./NAME for a local name with a colon)'
        )
    name = len(os.fsencode(out.name))
    parent = out.absolute().parent
    limit = _name_max(parent if parent.is_dir() else Path('/'))
    if name > limit:
        raise OutputError(
            f'{given}: the name is {name} bytes long, and the file system takes names of '
            f'at most {limit}; give a shorter name'
        )


def _refuse_system(out: Path) -> None:
    for where in (os.path.abspath(out), os.path.realpath(out)):
        if where.startswith(_SYSTEM):
            raise OutputError(
                f'{out}: is a device or system file ({where}); it is never written, even '
                'with overwrite: write to a file'
            )


def _refuse_protected(out: Path, protect: Iterable[Pathish]) -> None:
    for source in protect:
        if same_file(out, source):
            raise OutputError(
                f'{out}: is the input {os.fspath(source)}; an input is never replaced, '
                'even with overwrite: write to another file'
            )


def _check_existing(out: Path, overwrite: bool, option: str, folder: bool) -> None:
    """Refuse to replace what exists, unless it is a file and *overwrite* is given."""
    mode = os.stat(out).st_mode  # follows symlinks: a link to /dev/null is a device
    if stat.S_ISDIR(mode):
        if folder and not any(out.iterdir()):
            return  # an empty folder stands for the folder to create
        raise OutputError(
            f'{out}: is a folder that is not empty; choose a new or empty folder'
            if folder
            else f'{out}: is a folder; expected the path of the output file'
        )
    if not stat.S_ISREG(mode):
        raise OutputError(
            f'{out}: exists and is not a regular file (a device, FIFO or socket); it is '
            'never replaced: write to a file'
        )
    if folder:
        raise OutputError(f'{out}: is a file; expected a new or empty folder')
    if not overwrite:
        raise OutputError(f'{out}: exists; pass {option} to replace it')


def check_output(
    path: Pathish,
    *,
    overwrite: bool = False,
    protect: Iterable[Pathish] = (),
    option: str = '--overwrite',
    folder: bool = False,
) -> Path:
    """Refuse an output that must not or cannot be written, before any work.

    Args:
        path: the output file (or folder, with *folder*).
        overwrite: replace an existing regular file.
        protect: the command's inputs; *path* is refused if it is one of them.
        option: how the user asks for *overwrite*, named in the error (``--force``).
        folder: *path* is a folder to create; an existing empty folder is accepted,
            anything else that exists is refused whatever *overwrite* says.

    Returns:
        The path.

    Raises:
        OutputError: naming the path, what is wrong and what to do.

    .. versionadded:: 0.1
    """
    if not os.fspath(path):
        raise OutputError('the output path is empty; give a file name')
    out = Path(path)
    _refuse_malformed(out, os.fspath(path))
    if not folder and os.fspath(path).endswith(('/', os.sep)):
        raise OutputError(
            f'{os.fspath(path)}: ends with a slash, the mark of a folder; give the '
            'path of the output file (without the slash)'
        )
    _refuse_system(out)
    _refuse_protected(out, protect)
    if os.path.exists(out):
        _check_existing(out, overwrite, option, folder)
    elif os.path.lexists(out) and not overwrite:  # a dangling symlink
        raise OutputError(f'{out}: exists (a broken link); pass {option} to replace it')
    parent = out.absolute().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f'{out}: cannot be written (folder {parent} is missing or not writable); '
            'create it or choose another output path'
        )
    return out


def check_outputs(
    paths: Sequence[Pathish | None],
    *,
    overwrite: bool = False,
    protect: Iterable[Pathish] = (),
    option: str = '--overwrite',
) -> list[Path | None]:
    """:func:`check_output` each of a command's outputs, and refuse the same one twice.

    Args:
        paths: the outputs; None (an output not asked for) passes through.
        overwrite: replace existing regular files.
        protect: the command's inputs.
        option: how the user asks for *overwrite*.

    Returns:
        The paths, None where None was given.

    Raises:
        OutputError: if one is refused, or two name the same file.

    .. versionadded:: 0.1
    """
    given = [p for p in paths if p is not None]
    for i, a in enumerate(given):
        for b in given[i + 1 :]:
            if same_file(a, b):
                raise OutputError(
                    f'{os.fspath(a)} and {os.fspath(b)}: two outputs of the command are '
                    'the same file; give each its own path'
                )
    protect = list(protect)
    return [
        None
        if p is None
        else check_output(p, overwrite=overwrite, protect=protect, option=option)
        for p in paths
    ]


# ---------------------------------------------------------------------------------------
# The writer

#: ``.NAME.partial-<pid>-<random><suffix>``: the pid tells a stale partial from a live one
_PARTIAL = '.{name}.partial-{pid}-{token}{suffix}'
_PARTIAL_PID = re.compile(r'\.partial-(\d+)-[0-9a-f]+')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    """Remove a file or folder, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _partial_stem(name: str) -> str:
    """*name* as it appears in its partials: shortened (with a hash) if it would not fit.

    The file system limits a name to 255 bytes; the partial adds
    :data:`_PARTIAL_OVERHEAD` and a suffix, so a long output name is cut, and a hash of
    the whole name keeps the partials of different outputs apart.
    """
    raw = os.fsencode(name)
    if len(raw) <= 255 - _PARTIAL_OVERHEAD - 24:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return os.fsdecode(raw[:160]) + '~' + digest


def _glob_escape(name: str) -> str:
    """*name* with glob's special characters matched literally."""
    return re.sub(r'([*?\[])', r'[\1]', name)


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove the partials of *final* left by processes that no longer run.

    A process killed with SIGKILL cannot clean up; its partial is recognised by its pid.
    Partials of running processes (another run writing the same output) are left alone.

    Args:
        final: the output.

    Returns:
        The partials removed (each also named in a warning).

    .. versionadded:: 0.1
    """
    removed = []
    parent = final.absolute().parent
    with contextlib.suppress(OSError):  # unreadable folder: nothing to clean
        stem = _partial_stem(final.name)
        for partial in parent.glob(f'.{_glob_escape(stem)}.partial-*'):
            match = _PARTIAL_PID.match(partial.name, len(stem) + 1)
            if match is None or _alive(int(match[1])):
                continue
            _remove(partial)
            removed.append(partial)
            warnings.warn(
                f'removed {partial}: a partial {final.name} left by process {match[1]}, '
                'which no longer runs (killed before it could clean up)',
                stacklevel=4,
            )
    return removed


@contextlib.contextmanager
def temporary_output(final: Pathish, suffix: str = '') -> Iterator[Path]:
    """A hidden temporary path next to *final*, always removed at the end.

    Nothing is created at the path: the writer creates it (a file, or a folder). Stale
    partials of *final* are removed first (see :func:`remove_stale_partials`).

    Args:
        final: the output it belongs to.
        suffix: appended to the temporary name (e.g. an extension a library needs).

    Yields:
        ``.NAME.partial-<pid>-<random><suffix>`` in *final*'s folder.

    .. versionadded:: 0.1
    """
    final = Path(final)
    remove_stale_partials(final)
    name = _PARTIAL.format(
        name=_partial_stem(final.name),
        pid=os.getpid(),
        token=secrets.token_hex(4),
        suffix=suffix,
    )
    tmp = final.with_name(name)
    try:
        yield tmp
    finally:
        _remove(tmp)


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open('/proc/self/status') as status:
            line = next(x for x in status if x.startswith('Umask:'))
        return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


def _mode(final: Path, folder: bool) -> int:
    """The mode a plain ``open()``/``mkdir()`` would give *final*.

    Some writers create files 0600 (``mkstemp``, safetensors): the temporary file gets
    the mode of the file it replaces, else the default under the user's umask.
    """
    with contextlib.suppress(OSError):
        if not folder and stat.S_ISREG(os.stat(final).st_mode):
            return stat.S_IMODE(os.stat(final).st_mode)
    return (0o777 if folder else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_output(final: Pathish, suffix: str = '') -> Iterator[Path]:
    """A temporary path next to *final*, renamed onto it only if the block succeeds.

    The block writes the file (or creates the folder) at the yielded path; on success it
    replaces *final* in one rename (a folder replaces a missing or empty folder), on any
    exception it is removed and *final* is untouched. The result has the mode a plain
    ``open()`` gives: the replaced file's, else the default under the user's umask.

    Args:
        final: the output (checked beforehand with :func:`check_output`).
        suffix: appended to the temporary name.

    Yields:
        The temporary path (see :func:`temporary_output`).

    .. versionadded:: 0.1
    """
    final = Path(final)
    if final.is_symlink() and final.is_dir():  # a link to the (empty) folder to fill
        final = Path(os.path.realpath(final))
    with temporary_output(final, suffix) as tmp:
        yield tmp
        if not os.path.lexists(tmp):
            raise OutputError(f'{final}: nothing was written to {tmp}; not replaced')
        os.chmod(tmp, _mode(final, tmp.is_dir()))
        os.replace(tmp, final)


# ---------------------------------------------------------------------------------------
# Signals


@contextlib.contextmanager
def sigterm_exits(status: int = 128 + signal.SIGTERM) -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(status)`` for the block, so cleanups run.

    Python's default SIGTERM kills the process at once, leaving temporary files behind;
    SIGINT already raises ``KeyboardInterrupt``. Only the main thread can install a
    handler (elsewhere this does nothing); processes forked inside the block keep the
    default behaviour.

    Args:
        status: the exit status (143, as a shell reports a SIGTERM).

    Yields:
        Nothing.

    .. versionadded:: 0.1
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker: die as it would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise SystemExit(status)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
