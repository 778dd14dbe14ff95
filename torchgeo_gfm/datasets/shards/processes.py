# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The writer's worker processes: they stop when the command stops, whatever stops it.

litdata's ``optimize`` forks workers (and they fork helpers) that it leaves running when
it is interrupted; they would go on writing into a partial output that is being removed.
While :func:`workers_ignore_sigint` is active, processes forked by this one ignore SIGINT
(Ctrl-C reaches the whole process group: no worker prints a KeyboardInterrupt traceback),
and the writer stops them itself with :func:`stop_workers`. A worker whose parent was
killed (SIGKILL cannot be handled) stops itself (:func:`stop_if_orphaned`). Linux's
``/proc`` tells the processes apart; elsewhere none are found.

.. versionadded:: 0.2
"""

import contextlib
import os
import signal
import time
from collections.abc import Iterator

#: pid of the process in :func:`workers_ignore_sigint` (0 if none)
_OPTIMIZING = 0
_HOOKED = False


def _forked_child_ignores_sigint() -> None:
    if _OPTIMIZING and os.getpid() != _OPTIMIZING:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def workers_ignore_sigint() -> Iterator[None]:
    """Make the processes this one forks during the block ignore SIGINT.

    Yields:
        Nothing.
    """
    global _OPTIMIZING, _HOOKED
    if not _HOOKED and hasattr(os, 'register_at_fork'):  # POSIX; once per process
        os.register_at_fork(after_in_child=_forked_child_ignores_sigint)
        _HOOKED = True
    _OPTIMIZING = os.getpid()
    try:
        yield
    finally:
        _OPTIMIZING = 0


def stop_if_orphaned(owner: int) -> None:
    """In a worker of *owner*: exit, with its helpers, if *owner* is gone.

    Args:
        owner: pid of the process that runs ``optimize``.
    """
    if os.getpid() != owner and os.getppid() != owner:
        for pid in descendants(os.getpid()):  # litdata's helpers of this worker
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os._exit(1)


def stop_workers(before: set[int], timeout: float = 5.0) -> None:
    """Terminate the processes started since *before* (litdata's workers).

    Only the descendants that were not there before are stopped, then killed if they do
    not stop within *timeout* seconds.

    Args:
        before: :func:`descendants` of this process before ``optimize`` started.
        timeout: seconds to wait for SIGTERM before SIGKILL.
    """
    children = [pid for pid in descendants(os.getpid()) if pid not in before]
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while children and time.monotonic() < deadline:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            if not running(pid):
                children.remove(pid)
        time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def running(pid: int) -> bool:
    """Whether *pid* runs (a zombie does not).

    Args:
        pid: a process id.

    Returns:
        True while it runs.
    """
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rpartition(')')[2].split()[0] != 'Z'
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """The processes under *pid* (Linux's /proc; none found elsewhere).

    Args:
        pid: a process id.

    Returns:
        Its children, their children, and so on.
    """
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
