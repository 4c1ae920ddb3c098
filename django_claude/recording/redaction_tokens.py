"""Unlabelled secrets: long random tokens, and secrets hidden by an encoding.

Two passes of the redactor live here, both needing more than a pattern:

``redact_tokens`` looks at every run of 16 or more token characters
(``[A-Za-z0-9+/_~-]``) that no earlier rule took (what follows an earlier
rule's placeholder inside a run is judged as a run of its own: an IBAN found
inside a base64 blob must not leave the blob's tail raw), and replaces it with
``[SECRET]`` when it is

- a hex string of 32 or more characters outside a URL and not introduced by
  a hash word (``sha256``, ``commit``, ``etag``, ``digest``...): a hex token;
- base64 whose decoded text the redactor finds a secret or PII in (then the
  placeholder is the decoded finding's, e.g. ``[EMAIL]``);
- random-looking by the rule of :func:`looks_random`.

It keeps UUIDs, anything in a URL's path (git SHAs, content hashes, ids),
type-prefixed ids (``cus_…``, ``msg_…``), ``sha512-`` integrity strings, and
the parts of an email address.

``redact_escaped`` decodes runs holding percent-escapes, ``\\x``/``\\u``
escapes or numeric HTML entities, redacts the decoded text, and replaces a
run by the placeholder of what was found in it (runs that hide nothing stay
as they are).

Decoded texts are redacted in one batch (joined by a separator no rule
crosses), so a text with thousands of small encoded runs costs one pass.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable

from django_claude.recording.redaction_rules import PLACEHOLDER, SECRET

Redactor = Callable[[str], str]

# Joins decoded texts for one redaction call. No rule matches across a NUL
# between line breaks, and NULs in the decoded texts are replaced first.
SEPARATOR = "\n\x00\n"


def redact_batch(texts: list[str], redactor: Redactor) -> list[str]:
    """``[redactor(t) for t in texts]``, computed with one call when it can be."""
    if not texts:
        return []
    parts = redactor(SEPARATOR.join(texts)).split(SEPARATOR)
    if len(parts) == len(texts):
        return parts
    return [redactor(text) for text in texts]  # a rule ate a separator


def _sanitise(decoded: str) -> str:
    return decoded.replace("\x00", "\ufffd")


def finding(decoded: str, redacted: str) -> str:
    """The placeholder standing for what redacting ``decoded`` found, or "".

    A whole encoded run becomes that one placeholder: decoded text put back
    in place could join its neighbours into a finding a second pass sees.
    """
    new = PLACEHOLDER.findall(redacted)
    if len(new) <= len(PLACEHOLDER.findall(decoded)):
        return ""
    return new[0]


# --------------------------------------------------------------------------
# Unlabelled tokens

_TOKEN_CLASS = "A-Za-z0-9+/_~-"
TOKEN = re.compile(
    rf"[{_TOKEN_CLASS}](?<![\w{_TOKEN_CLASS}].)[{_TOKEN_CLASS}]{{15,}}+={{0,2}}"
    # a token cut by a line break goes on when the next line is only token
    rf"(?:(?:\r?\n|\\n)(?=[{_TOKEN_CLASS}]{{6,}}+={{0,2}}[ \t]*(?:\r?\n|\\n|$))"
    rf"[{_TOKEN_CLASS}]{{6,}}+={{0,2}})?"
)
_URL = re.compile(r"://[^\s\"'<>\[\]{}|\\^`]*+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_TYPED_ID = re.compile(r"[a-z]{2,10}_[A-Za-z0-9]{8,32}")
_HASH_PREFIX = r"(?i:sha[0-9]{0,3}|md5|sha3-[0-9]{3}|blake2[bs]?|crc32)[-_:]"
# Kept whole: UUIDs, type-prefixed ids (cus_…, msg_…), sha512-… integrity.
_KEPT_SHAPE = re.compile(rf"(?:{_UUID.pattern}|{_TYPED_ID.pattern})\Z|{_HASH_PREFIX}")
# Words that introduce a hash, matched in the lower-cased 40 characters
# before a hex token (case-sensitive, so the engine scans for first letters).
_HASH_WORD = re.compile(
    r"(?:sha[-_ ]?[0-9]{0,3}|md5|hash(?:es)?|digest|checksum|commit(?:ted)?|revision|rev"
    r"|etag|fingerprint|object|blob|tree|build|integrity|crc32|hexdigest|git)\b[^\n]{0,24}$"
)
_WORDISH = re.compile(r"[A-Za-z]?[a-z]{2,}")
_SEGMENT_SEPARATOR = re.compile(r"[-_]")
_VOWELS = frozenset("aeiouyAEIOUY")

# Thresholds of the entropy rule (see looks_random).
MIN_RANDOM_LENGTH = 20
MIN_HEX_SECRET_LENGTH = 32
MIN_ENTROPY_BITS = 3.5
MIN_HEX_ENTROPY_BITS = 3.0
MAX_WORD_SHARE = 0.4
MIN_LONGEST_SEGMENT = 12


_DIGIT_SET = frozenset("0123456789")
_LETTER_SET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Runs of consecutive characters (test alphabets, not secrets).
_SEQUENCES = " ".join(
    (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    )
)
# Base64 of ASCII text: each 4-character group starts with a character
# worth less than 32 (the top six bits of a byte below 0x80).
_ASCII_LEADS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")


# c * log2(c) for the character counts of tokens up to this long.
_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 1025)]


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s character distribution."""
    n = len(text)
    counts = Counter(text).values()
    if n < len(_C_LOG_C):
        return math.log2(n) - sum(map(_C_LOG_C.__getitem__, counts)) / n
    return math.log2(n) - sum(c * math.log2(c) for c in counts) / n


def looks_random(token: str) -> bool:
    """True for a token that reads as random characters, not as words.

    All must hold: at least ``MIN_RANDOM_LENGTH`` (20) characters; letters
    and at least one digit (pure words and pure numbers are left to other
    rules); a ``-``/``_``-separated segment of at least
    ``MIN_LONGEST_SEGMENT`` (12) characters (slugs, dates and pod names like
    ``my-app-7d9f8b6c5-x2k4p`` are short segments); not a run of
    consecutive characters (``abcdef…``, ``0123…``); less than
    ``MAX_WORD_SHARE`` (40 %) of it in word-like runs (an optional capital
    and two or more lower-case letters with a vowel: ``getUserProfile2024``
    is words); and Shannon entropy of at least ``MIN_ENTROPY_BITS`` (3.5)
    bits per character (repetitive strings fail).
    """
    n = len(token)
    if n < MIN_RANDOM_LENGTH or _DIGIT_SET.isdisjoint(token) or _LETTER_SET.isdisjoint(token):
        return False
    if ("-" in token or "_" in token) and max(
        map(len, _SEGMENT_SEPARATOR.split(token))
    ) < MIN_LONGEST_SEGMENT:
        return False
    if token[:6] in _SEQUENCES or token[-6:] in _SEQUENCES:
        return False
    words = sum(len(w) for w in _WORDISH.findall(token) if not _VOWELS.isdisjoint(w))
    if words >= MAX_WORD_SHARE * n:
        return False
    # Three quarters distinct characters already means 3.5+ bits (from 20
    # characters up); count only the others.
    return len(set(token)) * 4 >= n * 3 or shannon_entropy(token) >= MIN_ENTROPY_BITS


def _base64_text(token: str) -> str | None:
    """The printable UTF-8 text ``token`` decodes to as base64, if any."""
    body = token.rstrip("=")
    if len(body) % 4 == 1 or "~" in body or not _ASCII_LEADS.issuperset(body[::4]):
        return None
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    try:
        raw = base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if urlsafe else None, validate=True
        )
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if len(decoded) < 4 or not decoded.replace("\n", "").replace("\t", "").isprintable():
        return None
    return decoded


class _UrlIndex:
    """Where the URLs of a text are, found on first use: each span and where
    its query starts."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None if "://" in text else []
        self._spans: list[tuple[int, int]] = []

    def _find(self) -> list[int]:
        starts = []
        for match in _URL.finditer(self._text):
            start, end = match.span()
            query = self._text.find("?", start, end)
            starts.append(start)
            self._spans.append((end, end if query < 0 else query))
        return starts

    def part(self, position: int) -> str:
        """``"path"``, ``"query"`` or ``""`` (not in a URL) for a position."""
        if self._starts is None:
            self._starts = self._find()
        i = bisect_right(self._starts, position) - 1
        if i < 0:
            return ""
        end, query = self._spans[i]
        if position >= end:
            return ""
        return "query" if position >= query else "path"


_KEEP = ""
_PENDING = "?"


def _classify(text: str, match: re.Match[str], urls: _UrlIndex, decode: bool) -> str:
    """SECRET, _KEEP, or _PENDING (decide once the base64 text is redacted)."""
    start, end = match.span()
    if text[end : end + 1] == "@" or text[start - 1 : start] == "@":
        return _KEEP  # part of an email: the email rule's
    token = match.group(0)
    if "\n" in token or "\\" in token:  # a token continued on the next line
        token = token.replace("\\n", "").replace("\r", "").replace("\n", "")
    body = token.rstrip("=")
    where = urls.part(start)
    if _HEX.fullmatch(body):
        if len(body) < MIN_HEX_SECRET_LENGTH or where:
            return _KEEP
        if _HASH_WORD.search(text[max(0, start - 40) : start].lower()):
            return _KEEP
        return SECRET if shannon_entropy(body) >= MIN_HEX_ENTROPY_BITS else _KEEP
    if where == "path" or _KEPT_SHAPE.match(body):
        return _KEEP
    if decode and _base64_text(token) is not None:
        return _PENDING
    return SECRET if looks_random(body) else _KEEP


def redact_tokens(text: str, redactor: Redactor, *, decode: bool = True) -> str:
    """Replace unlabelled secrets among the long tokens of ``text``.

    ``redactor`` redacts decoded base64 text; ``decode=False`` skips the
    decoding (the redactor is then not called).
    """
    urls = _UrlIndex(text)
    found: list[tuple[int, int, str]] = []
    pending: list[tuple[int, int, str, str]] = []
    for match in TOKEN.finditer(text):
        verdict = _classify(text, match, urls, decode)
        if verdict == _PENDING:
            token = match.group(0)
            decoded = _sanitise(_base64_text(token.replace("\n", "").replace("\r", "")) or "")
            pending.append((match.start(), match.end(), token, decoded))
        elif verdict:
            found.append((match.start(), match.end(), verdict))
    if pending:
        redacted = redact_batch([p[3] for p in pending], redactor)
        for (start, end, token, decoded), clean in zip(pending, redacted, strict=True):
            placeholder = finding(decoded, clean)
            if placeholder:
                found.append((start, end, placeholder))
            elif looks_random(token.rstrip("=")):
                found.append((start, end, SECRET))
        found.sort()
    return _splice(text, found)


def _splice(text: str, replacements: list[tuple[int, int, str]]) -> str:
    if not replacements:
        return text
    out: list[str] = []
    pos = 0
    for start, end, new in replacements:
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------
# Escaped and percent-encoded runs

_ESCAPE = (
    r"\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|\\u\{[0-9A-Fa-f]{1,6}\}"
    r"|%[0-9A-Fa-f]{2}|&#(?:[0-9]{1,7}|[xX][0-9A-Fa-f]{1,6});"
)
# Runs stop at query separators, so "email=" stays when its value is found.
_PLAIN = r"[^\s\"'`<>\[\]{}()\\%&=?\x00]"
ESCAPE = re.compile(_ESCAPE)
ESCAPED_RUN = re.compile(rf"(?<!{_PLAIN}){_PLAIN}*+(?:{_ESCAPE})(?:{_PLAIN}|{_ESCAPE})*+")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _unquote(match: re.Match[str]) -> str:
    """A run of percent-escapes as UTF-8 text (one call per run, not per escape)."""
    return bytes.fromhex(match.group(0).replace("%", "")).decode("utf-8", "replace")


_BACKSLASH_RUN = re.compile(
    r"(?P<x>(?:\\x[0-9A-Fa-f]{2})+)|(?P<u>(?:\\u[0-9A-Fa-f]{4})+)"
    r"|\\U(?P<big>[0-9A-Fa-f]{8})|\\u\{(?P<braced>[0-9A-Fa-f]{1,6})\}"
)


def _unescape(match: re.Match[str]) -> str:
    """One run of backslash escapes as text (other backslashes are left be)."""
    if match.group("x"):
        raw = bytes.fromhex(match.group("x").replace("\\x", ""))
        try:  # \xHH escapes of UTF-8 bytes, else of Latin-1 characters
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if match.group("u"):  # UTF-16 code units: a surrogate pair is two escapes
        units = bytes.fromhex(match.group("u").replace("\\u", ""))
        return units.decode("utf-16-be", "surrogatepass")
    code = int(match.group("big") or match.group("braced"), 16)
    return chr(code) if code <= 0x10FFFF else match.group(0)


def decode_escapes(run: str) -> str:
    """``run`` with its numeric entities, percent- and backslash-escapes decoded."""
    if "&#" in run:
        run = html.unescape(run)
    if "%" in run:
        run = _PERCENT_RUN.sub(_unquote, run)
    if "\\" in run:
        run = _BACKSLASH_RUN.sub(_unescape, run)
    return run


def _decode_batch(runs: list[str]) -> list[str]:
    """``[decode_escapes(r) for r in runs]``, decoded in one call when it can be."""
    parts = decode_escapes(SEPARATOR.join(runs)).split(SEPARATOR)
    if len(parts) == len(runs):
        return parts
    return [decode_escapes(run) for run in runs]  # a run decoded to the separator


def redact_escaped(text: str, redactor: Redactor) -> str:
    """Redact what encoded runs of ``text`` decode to; keep runs that hide nothing."""
    if not ("%" in text or "\\" in text or "&#" in text) or ESCAPE.search(text) is None:
        return text
    matches = list(ESCAPED_RUN.finditer(text))
    raw = [match.group(0) for match in matches]
    runs = [
        (match.start(), match.end(), _sanitise(decoded))
        for match, encoded, decoded in zip(matches, raw, _decode_batch(raw), strict=True)
        if decoded != encoded
    ]
    redacted = redact_batch([r[2] for r in runs], redactor)
    found = []
    for (start, end, decoded), clean in zip(runs, redacted, strict=True):
        placeholder = finding(decoded, clean)
        if placeholder:
            found.append((start, end, placeholder))
    return _splice(text, found)
