"""The call log as a file of its own: one ``write`` per line, no ``logging``.

By default each call's JSON line goes to the ``django_claude.calls`` logger,
and the site's ``LOGGING`` says where. With ``DJANGO_CLAUDE_CALL_LOG`` set to
a path, the line is appended to that file instead, with one ``os.write`` on a
descriptor opened with ``O_APPEND``:

- the line is in the kernel before the call returns, whole: a worker killed
  the next instant (``SIGKILL``, the OOM killer) leaves it for
  ``claude_ingest_log``, and the workers of a server share the file without
  ever interleaving two lines (``logging``'s buffered stream writes a long
  line in pieces, and builds a ``LogRecord`` and takes a lock for each);
- a rotated file (``logrotate``, ``mv``) is noticed within a second and a
  new one created at the path: no ``copytruncate``, no signal needed;
- a file that cannot be written (a full disk, a missing directory, no
  permission) never loses a line: it goes to the logger, or to stderr when
  the site gives the logger no handler, and one error says so, until the
  file takes lines again (tried again every second).

When the site's ``LOGGING`` also gives ``django_claude.calls`` (or
``django_claude``) a handler, the line goes there too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any

from django_claude.conf import conf

logger = logging.getLogger(__name__)

LOOK_EVERY = 1.0  # seconds between looks for a rotated file (or a retry of a failed one)
MODE = 0o640  # a new file: the owner writes, its group reads (less the process's umask)


class CallLogFile:
    """One path's descriptor, shared by the threads of a process."""

    _instances: weakref.WeakSet[CallLogFile] = weakref.WeakSet()

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = -1
        self._identity = (0, 0)  # (device, inode) of the file the descriptor is on
        self._looked = 0.0  # when the path was last looked at (monotonic)
        self._failing = ""  # why the last write failed, until one works
        CallLogFile._instances.add(self)

    def append(self, text: str) -> bool:
        """Append ``text`` and a newline; False (said once per episode) if
        the file could not take it. Never raises."""
        data = (text + "\n").encode("utf-8", "backslashreplace")  # a lone surrogate: "\udc80"
        with self._lock:
            try:
                now = time.monotonic()
                if now - self._looked >= LOOK_EVERY:
                    self._looked = now
                    self._open_current()
                if self._fd < 0:
                    return False  # failing; the next look tries again
                _write_all(self._fd, data)
            except OSError as exc:
                self._failed(exc)
                return False
            if self._failing:
                logger.warning("claude call log %s takes lines again", self.path)
                self._failing = ""
        return True

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open_current(self) -> None:
        """Make sure the descriptor is on the file now at the path: open it
        the first time, again after a rotation or a failure."""
        if self._fd >= 0:
            try:
                found = os.stat(self.path)
            except FileNotFoundError:
                found = None
            if found is not None and (found.st_dev, found.st_ino) == self._identity:
                return
            self._close()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, MODE)
        opened = os.fstat(fd)
        self._fd, self._identity = fd, (opened.st_dev, opened.st_ino)

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)

    def _failed(self, exc: OSError) -> None:
        self._close()  # the next look opens the path again
        why = exc.strerror or type(exc).__name__
        if self._failing != why:
            logger.error(
                "claude call log %s cannot be written (%s): call lines go to the "
                "django_claude.calls logger, or stderr, until it can",
                self.path,
                why,
            )
        self._failing = why

    def _after_fork(self) -> None:
        # The descriptor is shared with the parent (appends stay whole); the
        # lock may have been held by a thread the child does not have.
        self._lock = threading.Lock()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _after_fork_in_child() -> None:
    for log_file in list(CallLogFile._instances):
        log_file._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_files: dict[str, CallLogFile] = {}
_files_lock = threading.Lock()


def log_file(path: str) -> CallLogFile:
    """The ``CallLogFile`` of ``path`` in this process (one per path)."""
    found = _files.get(path)
    if found is None:
        with _files_lock:
            found = _files.setdefault(path, CallLogFile(path))
    return found


_package_logger = logging.getLogger("django_claude")


def site_logs_lines(call_logger: logging.Logger) -> bool:
    """Does the site's ``LOGGING`` give the call lines a handler of its own
    (on ``django_claude.calls`` or ``django_claude``, not the root's)?"""
    if _package_logger.handlers:
        return True
    return any(not getattr(h, "default_call_lines", False) for h in call_logger.handlers)


def emit(call_logger: logging.Logger, level: int, text: str, line: dict[str, Any]) -> None:
    """Write a call's line (``text``, the JSON of ``line``): to the call log
    file when there is one, else (and also, when the site's ``LOGGING``
    names it) to ``call_logger``. Never raises for a file that fails."""
    path = conf.CALL_LOG
    if not path:
        call_logger.log(level, text, extra={"claude": line})
        return
    written = log_file(path).append(text)
    if site_logs_lines(call_logger):
        call_logger.log(level, text, extra={"claude": line})
    elif not written:
        # No stderr either: the record (its row) still carries every field.
        with contextlib.suppress(OSError, ValueError, UnicodeError):
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
