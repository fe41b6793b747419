"""Keep a command's stdout its own while user code (verifiers) runs: everything else's stdout goes to stderr.

A verifier may print, from Python or from C (straight to file descriptor 1), and may fork processes that outlive
it. Where stdout carries machine-read output (``interlock replay --json``), either would corrupt it, forge
records, or hold a pipe open until the forked process ends. :func:`own_stdout` moves the command's stdout to a
private descriptor that only the command writes to (unbuffered, closed in any process forked from this one) and
points descriptor 1 and ``sys.stdout`` at stderr until it returns. :func:`stdout_to_stderr` does the second half
for a worker process, which never writes to stdout itself. :func:`stdout_reader_left` tells a BrokenPipeError
about stdout (``interlock replay --json | head``: stop quietly) from one about anything else (an error).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Iterator
from typing import IO

__all__ = ["discard_stdout", "own_stdout", "stdout_reader_left", "stdout_to_stderr"]

_PRIVATE: set[int] = set()  # descriptors holding a command's real stdout: closed in every forked child


def _close_private_in_child() -> None:
    for fd in list(_PRIVATE):
        with contextlib.suppress(OSError):
            os.close(fd)
    _PRIVATE.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_private_in_child)


class _FdWriter:
    """A text stream on a descriptor that writes each call through at once: no buffer a fork could copy."""

    def __init__(self, fd: int, encoding: str) -> None:
        self.fd = fd
        self.encoding = encoding

    def write(self, text: str) -> int:
        data = text.encode(self.encoding, errors="replace")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def fileno(self) -> int:
        return self.fd


def _is_fd1(stream: IO[str]) -> bool:
    try:
        return stream.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False  # replaced by a test harness or a notebook: not the process's descriptor


def _to_stderr() -> int | None:
    """Point descriptor 1 and ``sys.stdout`` at stderr; returns a descriptor holding what descriptor 1 was (None
    where there was none to move)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.stdout = sys.stderr
    try:
        saved = os.dup(1)
    except OSError:
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved


def stdout_to_stderr() -> None:
    """For good, in a worker process that never writes to stdout: descriptor 1 and ``sys.stdout`` are stderr, and
    nothing (no verifier, no process it forks) holds the stdout the worker was started with."""
    saved = _to_stderr()
    if saved is not None:
        os.close(saved)


@contextlib.contextmanager
def own_stdout() -> Iterator[IO[str]]:
    """Yield the stream to write the command's output to; meanwhile all other output meant for stdout (Python's
    and C's, this process's and its children's) goes to stderr. Restored on return."""
    original = sys.stdout
    real = _is_fd1(original)
    encoding = getattr(original, "encoding", None) or "utf-8"
    saved = _to_stderr()
    out: IO[str] = original
    if saved is not None:
        _PRIVATE.add(saved)  # what descriptor 1 was: no forked process may hold it (a pipe would stay open)
        if real:
            out = _FdWriter(saved, encoding)  # type: ignore[assignment]
    try:
        yield out
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stdout = original
        if saved is not None:
            _PRIVATE.discard(saved)
            with contextlib.suppress(OSError):
                os.dup2(saved, 1)
            os.close(saved)


def _stdout_fds() -> set[int]:
    fds = {1}
    with contextlib.suppress(AttributeError, OSError, ValueError):
        fds.add(sys.stdout.fileno())
    return fds


def _reader_gone(fd: int) -> bool:
    """Whether ``fd`` is the write end of a pipe or socket whose reader has gone: poll reports an error or a
    hang-up on it (a file or a terminal reports neither)."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


def stdout_reader_left() -> bool:
    """Whether the reader of this process's stdout (descriptor 1, or what ``sys.stdout`` writes to) has gone away,
    so that a BrokenPipeError was about stdout. Where the system cannot poll a descriptor, it is taken as so."""
    if not hasattr(select, "poll"):
        return True
    return any(_reader_gone(fd) for fd in _stdout_fds())


def discard_stdout() -> None:
    """Point stdout's descriptors at the null device: what is still buffered for a reader that left goes nowhere,
    and Python's flush at exit has nothing to fail on."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in _stdout_fds():
        if fd == 1 or _reader_gone(fd):
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    os.close(devnull)
