"""A process stopped with SIGTERM writes its queued records first.

Servers stop gracefully on SIGTERM and then leave through ``atexit`` (gunicorn's
workers) or ``multiprocessing``'s finalizers (uvicorn's ``--workers``), where
the writer drains its queue (``writer.EXIT_DRAIN``). Two exits skip both:

- no handler at all (a script, ``runserver``): the default action kills the
  process at once. The handler installed here drains first, then lets the
  default action happen.
- uvicorn, which after its graceful stop puts the default action back and
  raises SIGTERM again, from the main thread, so that the process dies "by
  the signal". The handler wraps the server's and, once SIGTERM has arrived,
  holds that second one (blocked in the main thread, it stays pending): the
  process leaves normally, through its exit handlers. Another SIGTERM from
  outside still reaches the process (a blocked thread is skipped, not the
  process).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django_claude.recording.writer import EXIT_DRAIN, flush_pending


def drain_on_sigterm() -> None:
    """Install the handler (from ``AppConfig.ready()``; only the main thread
    may). Idempotent; a SIGTERM the process ignores stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous: Any = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_IGN, None) or getattr(previous, "drains_records", False):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if previous is signal.SIG_DFL:
            flush_pending(EXIT_DRAIN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
            return
        if hasattr(signal, "pthread_sigmask"):  # POSIX; Windows has no re-raise to hold
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        previous(signum, frame)

    on_sigterm.drains_records = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_sigterm)
