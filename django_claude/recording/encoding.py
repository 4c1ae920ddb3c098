"""The log line's JSON: safe by construction, whatever a call carried.

A call is answered only with its line written, so encoding must not fail:
``json_safe`` turns every value a call can carry (UUID, Decimal, dates,
enums, sets, bytes, big or non-finite numbers, objects) into plain JSON
values, and ``to_json`` writes a line from them.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# Integers beyond this lose precision in JavaScript and most JSON tools: kept as text.
JSON_SAFE_INT = 2**53 - 1
MAX_DEPTH = 20


def json_safe(value: Any, *, depth: int = 0) -> Any:
    """``value`` as None, bool, int, float, str, list or dict of those, only."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return json_safe(value.value, depth=depth + 1)
    if isinstance(value, int):
        return value if -JSON_SAFE_INT <= value <= JSON_SAFE_INT else _text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if depth >= MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return {
            str(json_safe(k, depth=depth + 1)): json_safe(v, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item, depth=depth + 1) for item in value]
    return _text(value)


def _text(value: Any) -> str:
    """Any object as text, even one whose ``str()`` fails or is endless."""
    try:
        if isinstance(value, int):
            return (
                f"<int of {value.bit_length()} bits>" if value.bit_length() > 4000 else str(value)
            )
        text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text[:200]


_plain = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def to_json(line: Mapping[str, Any]) -> str:
    """One line of JSON (no newline inside): non-ASCII kept readable."""
    return _plain(json_safe(line))


def call_line_json(line: Mapping[str, Any]) -> str:
    """``to_json`` of a call's line, whose nested values (tags, the user id)
    are ``json_safe`` already: written as it is unless a top-level value
    needs making safe (a huge or non-finite number from upstream)."""
    try:
        if not any(type(v) is int and abs(v) > JSON_SAFE_INT for v in line.values()):
            return _plain(line)
    except (TypeError, ValueError):  # a value JSON has no word for: made safe below
        pass
    return to_json(line)


def json_column_text(value: Any) -> str | None:
    """``value`` as the text of a JSON column, or None when it cannot go as
    it is: a NUL in a string (PostgreSQL refuses ``\\u0000``; ``storable``
    mends it), a number JSON has no word for, an object JSON cannot hold."""
    try:
        text = _plain(value)
    except (TypeError, ValueError, RecursionError):
        return None
    return None if "\\u0000" in text else text


def storable(value: Any) -> Any:
    """JSON for a JSON column: no NUL in any string (PostgreSQL refuses them)."""
    if isinstance(value, (dict, list)) and json_column_text(value) is not None:
        return value  # (one encode in C: nothing in it to mend, and no walk)
    return _storable(value)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
