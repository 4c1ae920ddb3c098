"""A process stopped with SIGTERM writes its queued records first.

Servers stop gracefully on SIGTERM and then leave through ``atexit`` (gunicorn's
workers) or ``multiprocessing``'s finalizers (uvicorn's ``--workers``), where
the writer drains its queue (``writer.flush_at_exit``). uvicorn is the
exception: after its graceful stop it puts the default action back and raises
SIGTERM again, from the main thread, so that the process dies "by the signal",
skipping both. Under uvicorn its handler is wrapped: once SIGTERM has arrived,
the re-raised one is held (blocked in the main thread, it stays pending) and
the process leaves normally, through its exit handlers, with status 0.

Nothing else is touched: a process with no handler of its own keeps SIGTERM's
default action (it dies at once, even inside a long database call); its queued
rows are in the call log, for ``claude_ingest_log``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


def _is_uvicorns(handler: Any) -> bool:
    owner = getattr(handler, "__self__", None)
    return type(owner).__module__.split(".")[0] == "uvicorn"


def drain_on_sigterm() -> None:
    """Wrap uvicorn's SIGTERM handler (from ``AppConfig.ready()``, which uvicorn
    runs in the main thread with its handlers installed). Idempotent."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no re-raise to hold
        return
    previous: Any = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "drains_records", False) or not _is_uvicorns(previous):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        previous(signum, frame)

    on_sigterm.drains_records = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_sigterm)
