"""Redact PII and secrets from text before it reaches a log line or a row.

``redact(text)`` returns the text with each finding replaced by a typed
placeholder (``[EMAIL]``, ``[CARD]``, ``[SECRET]``...). ``prompt_prefix``
redacts first and cuts second, so nothing that straddles the cut survives.

Every pattern is anchored by a look-behind or a literal and has bounded
repetition, so the work per start position is bounded and the whole pass is
linear in the input (see ``benchmarks/redaction.py``). No Django import here.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable

__all__ = ["redact", "prompt_prefix", "clean_text", "luhn_ok", "iban_ok"]

# Characters that hide a secret from a pattern without changing how it looks.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"),
    None,
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(text: str) -> str:
    """NFKC-normalise, drop zero-width characters and lone surrogates."""
    text = _SURROGATES.sub("\ufffd", text)
    return unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).translate(_INVISIBLE)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


Replacement = str | Callable[[re.Match[str]], str]

_KEY_NAMES = (
    r"api[_-]?key|apikey|x-api-key|access[_-]?token|refresh[_-]?token|auth[_-]?token|token"
    r"|secret|client[_-]?secret|secret[_-]?key|aws_secret_access_key|password|passwd|pwd"
    r"|passphrase|private[_-]?key|session[_-]?id|sessionid"
)


def _keep_group(group: int, placeholder: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return match.group(group) + placeholder

    return replace


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _iban(match: re.Match[str]) -> str:
    return "[IBAN]" if iban_ok(match.group(0)) else match.group(0)


def _ssn(match: re.Match[str]) -> str:
    area, group, serial = match.group(1), match.group(2), match.group(3)
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return match.group(0)
    return "[SSN]"


def _ipv6(match: re.Match[str]) -> str:
    candidate = match.group(0)
    if candidate.count(":") < 2:
        return candidate
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return candidate
    return "[IP]"


def _phone(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return "[PHONE]" if 7 <= digits <= 15 else match.group(0)


# Order matters: the most specific shapes go first, so a JWT is not taken
# for a phone number and a key inside a URL is not taken for an email.
PATTERNS: list[tuple[str, re.Pattern[str], Replacement]] = [
    (
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY( BLOCK)?-----"
            r"(?:[\s\S]{0,20000}?-----END[A-Z ]{0,40}PRIVATE KEY( BLOCK)?-----"
            r"|[A-Za-z0-9+/=\s:,-]{0,20000})"
        ),
        "[PRIVATE_KEY]",
    ),
    (
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
        "[JWT]",
    ),
    (
        "url_credentials",
        re.compile(r"(?<=://)[^\s/?#@:]{1,256}:[^\s/?#@]{1,256}@"),
        "[CREDENTIALS]@",
    ),
    (
        "auth_header",
        re.compile(r"(?i)\b((?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}"),
        _keep_group(1, "[SECRET]"),
    ),
    (
        "anthropic_key",
        re.compile(r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{8,}"),
        "[SECRET]",
    ),
    (
        "openai_key",
        re.compile(r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
        "[SECRET]",
    ),
    (
        "aws_access_key",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}(?![0-9A-Z])"),
        "[SECRET]",
    ),
    (
        "github_token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
        "[SECRET]",
    ),
    ("slack_token", re.compile(r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}"), "[SECRET]"),
    (
        "slack_webhook",
        re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/]{10,}"),
        "hooks.slack.com/services/[SECRET]",
    ),
    ("google_key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"), "[SECRET]"),
    (
        "stripe_key",
        re.compile(r"(?<![A-Za-z0-9_])(?:[srp]k|rk|whsec)_(?:live|test)_[0-9A-Za-z]{10,}"),
        "[SECRET]",
    ),
    (
        "key_value",
        re.compile(
            rf"(?i)((?<![A-Za-z0-9])(?:{_KEY_NAMES})[\"']?\s{{0,3}}[:=]\s{{0,3}}[\"']?)"
            r"(?!\[)[^\s\"'&,;}<>]{1,512}"
        ),
        _keep_group(1, "[SECRET]"),
    ),
    (
        "email",
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])"
        ),
        "[EMAIL]",
    ),
    (
        "iban",
        re.compile(
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
            r"(?![A-Za-z0-9])"
        ),
        _iban,
    ),
    ("card", re.compile(r"(?<![\d.,+])\d(?:[ -]?\d){12,18}(?![\d])"), _card),
    ("ssn", re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])"), _ssn),
    (
        "ipv4",
        re.compile(
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
            r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d]|\.\d)"
        ),
        "[IP]",
    ),
    (
        "ipv6",
        re.compile(
            r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![0-9A-Fa-f:])"
        ),
        _ipv6,
    ),
    (
        "phone",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
            r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}[.-]\d{3}[.-]\d{4}"
            r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4})(?![\w])"
        ),
        _phone,
    ),
]


def redact(text: str) -> str:
    """Return ``text`` with PII and secrets replaced by typed placeholders.

    The text is NFKC-normalised and stripped of zero-width characters first,
    so full-width digits or a secret split by invisible characters are found.
    """
    text = clean_text(text)
    for _name, pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if _CONTROL.match(ch):
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return ch


def escape_controls(text: str, limit: int | None = None) -> str:
    """Escape CR, LF and other control characters, stopping at ``limit`` chars.

    An escape sequence is never cut in half; the result never exceeds ``limit``.
    """
    return _escape_upto(text, limit)[0]


def _escape_upto(text: str, limit: int | None) -> tuple[str, bool]:
    """The escaped text within ``limit``, and whether all of it fitted."""
    if not _CONTROL.search(text):  # the common case: nothing to escape
        if limit is None or len(text) <= limit:
            return text, True
        return text[:limit], False
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _escape(ch)
        if limit is not None and used + len(piece) > limit:
            return "".join(out), False
        out.append(piece)
        used += len(piece)
    return "".join(out), True


# Only this much of a prompt is examined for the prefix: a 10 MB prompt costs
# the same as a 4 KB one. The window grows only when redaction ate most of it.
PREFIX_WINDOW = 4096
PREFIX_WINDOW_MAX = 1 << 20


def prompt_prefix(text: str, *, limit: int = 80, redactor: Callable[[str], str] = redact) -> str:
    """The first ``limit`` characters of ``text`` that are safe to store.

    Redacts first, then cuts, then escapes control characters. A trailing
    ``…`` (counted in ``limit``) says the prompt went on.
    """
    if limit <= 0:
        return ""
    window = PREFIX_WINDOW
    while True:
        chunk = text[:window]
        redacted = redactor(chunk)
        # A big secret near the start shrinks the window; look further so a
        # partial secret cut at the window's edge can never slide into view.
        if len(chunk) == len(text) or len(redacted) > limit + 512 or window >= PREFIX_WINDOW_MAX:
            break
        window *= 4
    escaped, complete = _escape_upto(redacted, limit)
    if len(chunk) < len(text) or not complete:
        return escape_controls(redacted, limit - 1) + "…"
    return escaped
