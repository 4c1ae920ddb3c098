"""Redact PII and secrets from text before it reaches a log line or a row.

``redact(text)`` returns the text with each finding replaced by a typed
placeholder: ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[SSN]``, ``[IBAN]``,
``[IP]``, ``[NINO]``, ``[ADDRESS]``, ``[DOB]``, ``[SECRET]``,
``[PRIVATE_KEY]``, ``[JWT]``, ``[CREDENTIALS]``. ``prompt_prefix`` redacts
first and cuts second, so nothing that straddles the cut survives.

The passes run in the order of ``PASSES``: the most specific shapes first
(private keys, JWTs, vendor tokens, labelled secrets and PII), then emails,
IBANs, the number-shaped PII, and last unlabelled random tokens and encoded
runs. The rules are in ``redaction_secrets`` and ``redaction_pii`` (patterns,
written as ``redaction_rules`` explains) and ``redaction_tokens`` (the
entropy rule and decoding). Decisions worth knowing:

- SSNs: ``123-45-6789`` anywhere; spaced or unseparated only after a label
  (``SSN``, ``social security number``, ``SS#``), so order numbers survive.
- Dates of birth: a date after a birth label (``DOB``, ``born on``, ``date of
  birth``); other dates survive. Phone numbers without separators need a
  phone label too (``call 5551234567``).
- A secret's label followed by ``: `` takes up to eight words to the end of
  the line (``password: correct horse battery staple``), so prose such as
  ``your password: the link expires`` is redacted too: the safe mistake.
- Unlabelled secrets: see ``redaction_tokens.looks_random`` for the entropy
  rule; hex of 32+ characters is a secret unless it is in a URL or follows a
  hash word (``sha256``, ``commit``, ``etag``...).
- Base64, percent-, ``\\x``/``\\u``-escaped and HTML-entity text is
  decoded (two levels deep); a run whose decoded text holds a finding is
  replaced by that finding's placeholder.

Each pass is linear in its input; ``benchmarks/redaction.py`` measures every
adversarial shape against plain prose. No Django import here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from django_claude.recording import redaction_pii as pii
from django_claude.recording import redaction_secrets as secrets
from django_claude.recording.redaction_rules import LowerRule, Rule, iban_ok, luhn_ok
from django_claude.recording.redaction_tokens import redact_escaped, redact_tokens

__all__ = [
    "redact",
    "prompt_prefix",
    "clean_text",
    "escape_controls",
    "luhn_ok",
    "iban_ok",
    "PASSES",
]

# Characters that hide a secret from a pattern without changing how it looks.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"),
    None,
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(text: str) -> str:
    """NFKC-normalise, drop zero-width characters and lone surrogates."""
    if text.isascii():  # all three are outside ASCII, which NFKC leaves as it is
        return text
    text = _SURROGATES.sub("\ufffd", text)
    return unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).translate(_INVISIBLE)


# Decoded text is redacted again, with decoding, this many levels deep
# (base64 of a percent-encoded email is two levels).
MAX_DECODE_DEPTH = 2

Pass = Callable[[str, int], str]


def _rule(rule: Rule | LowerRule) -> Pass:
    return lambda text, depth: rule.apply(text)


def _escaped(text: str, depth: int) -> str:
    if depth >= MAX_DECODE_DEPTH:
        return text
    return redact_escaped(text, lambda decoded: _redact(clean_text(decoded), depth + 1))


def _tokens(text: str, depth: int) -> str:
    return redact_tokens(
        text,
        lambda decoded: _redact(clean_text(decoded), depth + 1),
        decode=depth < MAX_DECODE_DEPTH,
    )


PASSES: list[tuple[str, Pass]] = [
    ("private_key", _rule(secrets.PRIVATE_KEY_RULE)),
    ("jwt", _rule(secrets.JWT_RULE)),
    ("url_credentials", _rule(secrets.URL_CREDENTIALS_RULE)),
    ("webhook", _rule(secrets.WEBHOOK_RULE)),
    ("vendor_token", _rule(secrets.VENDOR_RULE)),
    ("discord_token", _rule(secrets.DISCORD_RULE)),
    ("telegram_token", _rule(secrets.TELEGRAM_RULE)),
    ("azure_ad_secret", _rule(secrets.AZURE_AD_RULE)),
    ("mailchimp_key", _rule(secrets.MAILCHIMP_RULE)),
    ("header", _rule(secrets.HEADER_RULE)),
    ("key_value", _rule(secrets.KEY_VALUE_RULE)),
    ("scheme", _rule(secrets.SCHEME_RULE)),
    ("ssn_labelled", _rule(pii.SSN_LABELLED_RULE)),
    ("dob", _rule(pii.DOB_RULE)),
    ("phone_labelled", _rule(pii.PHONE_LABELLED_RULE)),
    ("po_box", _rule(pii.PO_BOX_RULE)),
    ("email", _rule(pii.EMAIL_RULE)),
    ("obfuscated_email", _rule(pii.OBFUSCATED_EMAIL_RULE)),
    ("iban", _rule(pii.IBAN_RULE)),
    ("card", _rule(pii.CARD_RULE)),
    ("ssn", _rule(pii.SSN_RULE)),
    ("nino", _rule(pii.NINO_RULE)),
    ("ipv6", _rule(pii.IPV6_RULE)),
    ("ipv4", _rule(pii.IPV4_RULE)),
    ("phone", _rule(pii.PHONE_RULE)),
    ("address", _rule(pii.ADDRESS_RULE)),
    # Last: the placeholders of the rules above bound the tokens and encoded
    # runs these weigh, the same way on a second pass as on the first.
    ("tokens", _tokens),
    ("escaped", _escaped),
]


def _redact(text: str, depth: int) -> str:
    for _name, apply in PASSES:
        text = apply(text, depth)
    return text


# Texts up to this long are redacted again until nothing changes (at most
# FIXPOINT_ROUNDS passes), so redact(redact(x)) == redact(x) even where one
# finding's placeholder lets a neighbour match on a second pass. Longer texts
# get one pass (twice the time would break the 1 s per MB bound); the rules'
# boundaries treat placeholders as words, so they are stable in practice.
FIXPOINT_MAX_CHARS = 1 << 16
FIXPOINT_ROUNDS = 4


def redact(text: str) -> str:
    """Return ``text`` with PII and secrets replaced by typed placeholders.

    The text is NFKC-normalised and stripped of zero-width characters first,
    so full-width digits or a secret split by invisible characters are found.
    Never raises for any ``str``; ``redact(redact(x)) == redact(x)``.
    """
    cleaned = clean_text(text)
    text = _redact(cleaned, 0)
    # A pass that changed nothing is its own fixpoint: no second pass to prove it.
    if text != cleaned and len(text) <= FIXPOINT_MAX_CHARS:
        for _ in range(FIXPOINT_ROUNDS - 1):
            again = _redact(text, 0)
            if again == text:
                break
            text = again
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


# Only a window of a prompt is examined for the prefix: a 10 MB prompt costs
# the same as a 1 KB one, and a 1 KB one about half as much as redacting it
# all. The window holds PREFIX_MARGIN redacted characters past the kept part,
# longer than any match of a rule that spans whitespace (a labelled value, an
# address); a match without whitespace (a key, a token, an encoded run) is cut
# by the window's edge only far from the kept part, and a partial one is
# redacted all the same. PREFIX_SLACK more lets the window end at a whitespace
# and absorbs what placeholders save; when redaction ate more than that (a big
# secret near the start), the window grows.
PREFIX_MARGIN = 256
PREFIX_SLACK = 192
PREFIX_WINDOW_MAX = 1 << 20


def _window(text: str, size: int) -> str:
    """The first ``size`` characters, cut back to a whitespace when there is one
    in the last ``PREFIX_SLACK``, so no token (and no decision about it) is cut."""
    if len(text) <= size:
        return text
    chunk = text[:size]
    cut = max(chunk.rfind(" "), chunk.rfind("\n"), chunk.rfind("\t"))
    return chunk[:cut] if cut >= size - PREFIX_SLACK else chunk


def prompt_prefix(text: str, *, limit: int = 80, redactor: Callable[[str], str] = redact) -> str:
    """The first ``limit`` characters of ``text`` that are safe to store.

    Redacts first, then cuts, then escapes control characters. A trailing
    ``…`` (counted in ``limit``) says the prompt went on. Only a window of
    the text is redacted, but one that ends at a whitespace and reaches at
    least ``PREFIX_MARGIN`` redacted characters past ``limit``: whatever
    straddles the window's edge is far from the part kept.
    """
    if limit <= 0:
        return ""
    window = limit + PREFIX_MARGIN + PREFIX_SLACK
    while True:
        chunk = _window(text, window)
        redacted = redactor(chunk)
        # A big secret near the start shrinks the window; look further so a
        # partial secret cut at the window's edge can never slide into view.
        if (
            len(chunk) == len(text)
            or len(redacted) >= limit + PREFIX_MARGIN
            or window >= PREFIX_WINDOW_MAX
        ):
            break
        window *= 4
    escaped, complete = _escape_upto(redacted, limit)
    if len(chunk) < len(text) or not complete:
        return escape_controls(redacted, limit - 1) + "…"
    return escaped
