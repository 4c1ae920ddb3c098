"""The Lua scripts of the quota counters on Redis (each one round trip, atomic),
and the markers that name one reservation."""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

# Moves KEYS[first..last] by ARGV[first + shift..]: a counter whose window is
# over (gone) is left gone; none goes below zero (keeping its expiry).
_MOVE = """
local function move(first, last, shift)
  for i = first, last do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      if redis.call('INCRBY', KEYS[i], ARGV[i + shift]) < 0 then
        local ttl = redis.call('PTTL', KEYS[i])
        redis.call('SET', KEYS[i], 0)
        if ttl > 0 then
          redis.call('PEXPIRE', KEYS[i], ttl)
        end
      end
    end
  end
end
"""

# KEYS: the counters a carried settlement moves, then the counters to charge,
# then the reservation's marker; ARGV: how many counters are settled, the
# change of each, then amount, limit and ttl of each charge, then the marker's
# ttl (ms). Returns {} when every charge was made, else the 1-based indexes
# (among the charges) of every one that would pass its limit (then none is
# made), or {-1} when its CANCEL came first. The marker says what happened
# ("made" or "refused": the settlement was applied either way), so that a
# CANCEL undoes the charges, or applies the settlement, exactly once.
RESERVE = (
    _MOVE
    + """
local marker = KEYS[#KEYS]
if redis.call('EXISTS', marker) == 1 then
  return {-1}
end
local settled = tonumber(ARGV[1])
move(1, settled, 1)
local refused = {}
local charges = #KEYS - settled - 1
local base = 1 + settled
for i = 1, charges do
  local used = tonumber(redis.call('GET', KEYS[settled + i]) or '0')
  if used + tonumber(ARGV[base + 3 * i - 2]) > tonumber(ARGV[base + 3 * i - 1]) then
    refused[#refused + 1] = i
  end
end
if #refused > 0 then
  redis.call('SET', marker, 'refused', 'PX', ARGV[#ARGV])
  return refused
end
for i = 1, charges do
  local amount = tonumber(ARGV[base + 3 * i - 2])
  -- A counter that was absent (or at zero) starts its window's expiry now.
  if redis.call('INCRBY', KEYS[settled + i], amount) == amount then
    redis.call('EXPIRE', KEYS[settled + i], ARGV[base + 3 * i])
  end
end
redis.call('SET', marker, 'made', 'PX', ARGV[#ARGV])
return refused
"""
)

# A reservation its caller gave up on. KEYS: the counters it charges, then the
# counters its carried settlement moves, then its marker; ARGV: how many
# counters it charges, the amount of each (negated), the change of each
# settled counter, then the marker's ttl (ms). "made": the charges are undone;
# not there yet: the settlement is applied here, and the reservation will
# never be made; "refused" or "cancelled": nothing more to do.
CANCEL = (
    _MOVE
    + """
local marker = KEYS[#KEYS]
local state = redis.call('GET', marker)
local charged = tonumber(ARGV[1])
if state == 'made' then
  move(1, charged, 1)
elseif not state then
  move(charged + 1, #KEYS - 1, 1)
end
redis.call('SET', marker, 'cancelled', 'PX', ARGV[#ARGV])
return 0
"""
)

# KEYS: the counters; ARGV: the change for each.
ADJUST = (
    _MOVE
    + """
move(1, #KEYS, 0)
return 0
"""
)


_scripts: dict[str, Any] = {}
_scripts_lock = threading.Lock()


def script_of(client: Any, source: str) -> Any:
    """redis-py's ``Script`` for ``source`` (its ``sha``), one per source:
    Django's backend hands out a new client per call."""
    script = _scripts.get(source)
    if script is None:
        with _scripts_lock:
            script = _scripts.setdefault(source, client.register_script(source))
    return script


def run_script(client: Any, source: str, keys: list[str], args: list[int]) -> Any:
    """EVALSHA ``source`` (loading it when Redis does not know it) on ``client``."""
    return script_of(client, source)(keys=keys, args=args, client=client)


class _Markers:
    """Unique reservation markers: a random prefix per process (a fork's
    child draws its own) and a counter, without a system call per call."""

    def __init__(self) -> None:
        self.prefix = f"django_claude:quota:reservation:{os.urandom(9).hex()}:"
        self.count = itertools.count()
        self.lock = threading.Lock()

    def new(self) -> str:
        with self.lock:
            number = next(self.count)
        return f"{self.prefix}{number}"


_markers = _Markers()


def _markers_after_fork() -> None:
    global _markers
    _markers = _Markers()


os.register_at_fork(after_in_child=_markers_after_fork)


def new_marker() -> str:
    """A key for one reservation's marker, unique across processes."""
    return _markers.new()
