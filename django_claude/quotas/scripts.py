"""The Lua scripts of the quota counters on Redis: each one round trip, atomic."""

from __future__ import annotations

import threading
from typing import Any

# KEYS: the counters a waiting settlement moves, then the counters to charge,
# then the reservation's marker; ARGV: how many counters are settled, the
# change of each, then amount, limit and ttl of each charge, then the marker's
# ttl (ms). The settlement is applied first, whatever follows. Returns {} when
# every charge was made (and marks the reservation made), else the 1-based
# indexes (among the charges) of every one that would pass its limit, then
# none is made; {-1} for a reservation its caller gave up on (CANCEL came first).
RESERVE = """
local settled = tonumber(ARGV[1])
for i = 1, settled do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[1 + i]) < 0 then
      local ttl = redis.call('PTTL', KEYS[i])
      redis.call('SET', KEYS[i], 0)
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[i], ttl)
      end
    end
  end
end
local marker = KEYS[#KEYS]
if redis.call('EXISTS', marker) == 1 then
  return {-1}
end
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

# KEYS: the counters a reservation charged, then its marker; ARGV: the amount
# of each, then the marker's ttl (ms). Undoes the reservation if it was made;
# if it has not arrived yet, marks it so that it never is.
CANCEL = """
local marker = KEYS[#KEYS]
if redis.call('GET', marker) == 'made' then
  for i = 1, #KEYS - 1 do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      if redis.call('DECRBY', KEYS[i], ARGV[i]) < 0 then
        local ttl = redis.call('PTTL', KEYS[i])
        redis.call('SET', KEYS[i], 0)
        if ttl > 0 then
          redis.call('PEXPIRE', KEYS[i], ttl)
        end
      end
    end
  end
end
redis.call('SET', marker, 'cancelled', 'PX', ARGV[#ARGV])
return 0
"""

# KEYS: the counters; ARGV: the change for each. A counter whose window is
# over (gone) is left gone; none goes below zero.
ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      local ttl = redis.call('PTTL', KEYS[i])
      redis.call('SET', KEYS[i], 0)
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[i], ttl)
      end
    end
  end
end
return 0
"""


_scripts: dict[str, Any] = {}
_scripts_lock = threading.Lock()


def run_script(client: Any, source: str, keys: list[str], args: list[int]) -> Any:
    """EVALSHA ``source`` (loading it when Redis does not know it) on ``client``.
    One ``Script`` per source: Django's backend hands out a new client per call."""
    script = _scripts.get(source)
    if script is None:
        with _scripts_lock:
            script = _scripts.setdefault(source, client.register_script(source))
    return script(keys=keys, args=args, client=client)
