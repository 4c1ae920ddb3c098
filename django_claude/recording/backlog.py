"""The background writer's bookkeeping: the outage window shared by every
queued row and episodes of a full queue (pure: the clock is passed in), and
the signal that someone is waiting for the queue to drain."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

# -- the outage window (pure: the clock is passed in) -------------------------------


@dataclass
class Outage:
    """Failed inserts into one database, shared by every row queued for it.

    Failures open a window and a success closes it. Once inserts have failed
    for ``retry_for`` seconds the outage is declared: rows are given up
    without an attempt, but for one probe every ``probe_every`` seconds, until
    an insert succeeds again. So N queued rows cost one window, not N.
    """

    failing_since: float | None = None
    declared_at: float | None = None
    last_probe: float = float("-inf")
    given_up: int = 0  # rows given up since the outage was declared

    @property
    def declared(self) -> bool:
        return self.declared_at is not None

    def may_attempt(self, now: float, *, probe_every: float) -> bool:
        """Try an insert now? False: give the row up at once."""
        if self.declared_at is None:
            return True
        if now - self.last_probe >= probe_every:
            self.last_probe = now
            return True
        return False

    def failed(self, now: float, *, retry_for: float) -> bool:
        """An insert failed: True to give the row up, False to retry it."""
        if self.failing_since is None:
            self.failing_since = now
        if self.declared_at is None and now - self.failing_since < retry_for:
            return False
        if self.declared_at is None:
            self.declared_at = now
            self.last_probe = now
        return True

    def succeeded(self) -> int:
        """An insert worked: the window closes. Returns how many rows the
        outage that just ended gave up (0: there was none)."""
        given_up = self.given_up if self.declared else 0
        self.failing_since = self.declared_at = None
        self.last_probe = float("-inf")
        self.given_up = 0
        return given_up


@dataclass
class Overflow:
    """Rows a full queue turned away, by episode: one starts with the first row
    turned away and ends once the queue is half empty again (not merely one
    slot free, or a queue at its brim would log a line per row)."""

    total: int = 0
    episode: int = 0  # rows turned away in the current episode

    def turned_away(self) -> bool:
        """Count one row; True when it starts an episode."""
        self.total += 1
        self.episode += 1
        return self.episode == 1

    def room_again(self, *, queued: int, capacity: int) -> int:
        """The rows the episode lost, when this queue length ends it; else 0."""
        if not self.episode or queued > capacity // 2:
            return 0
        lost, self.episode = self.episode, 0
        return lost


@dataclass(frozen=True)
class WriterStats:
    """What the background writer has done since the process started (or forked)."""

    queued: int  # rows waiting now
    overflowed: int  # rows never queued: the queue was full
    given_up: int  # rows not saved: an outage, or an insert failing unexpectedly
    outages: frozenset[str]  # database aliases in a declared outage now


class Hurry:
    """Set while anyone waits for the queue to drain (a flush, a stopping
    process): the writer stops waiting for more rows to join a batch."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiting = 0

    def linger(self, seconds: float) -> None:
        """Wait up to ``seconds`` for company, unless someone is in a hurry."""
        self._event.wait(seconds)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        with self._lock:
            self._waiting += 1
            self._event.set()
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1
                if not self._waiting:
                    self._event.clear()
