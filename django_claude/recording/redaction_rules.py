"""How the redactor's rules are written: rule types, placeholders, validators.

Each :class:`Rule` is a regular expression and what replaces a match; the
rules themselves are in ``redaction_secrets`` and ``redaction_pii``. They
are written for Python's backtracking engine so that a pass stays linear in
the input:

- a rule starts with a literal or a character class and puts its left-hand
  boundary check *after* the first character (``s(?<![\\w-].)k-ant-``), so
  the engine's first-character scan skips most positions without entering
  the pattern;
- every repetition is bounded, possessive, or over a class that cannot
  overlap what follows it, so a failed attempt costs a bounded number of
  steps;
- rules keyed by a word (``password``, ``SSN``, ``date of birth``) are
  :class:`LowerRule`: written in lower case and run over a lower-cased copy
  of the text, whose spans map back to the original (a case-insensitive
  pattern is tried at every position and costs ten times as much);
- a rule with a ``gate`` is skipped outright when its gate is absent (no
  digit, no ``@``...), so ordinary prose pays only for the rules it can
  trigger.

No Django import here: the redactor is pure logic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Placeholders. The existing names are kept; NINO, ADDRESS and DOB are new.
EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
SSN = "[SSN]"
IBAN = "[IBAN]"
IP = "[IP]"
SECRET = "[SECRET]"
PRIVATE_KEY = "[PRIVATE_KEY]"
JWT = "[JWT]"
CREDENTIALS = "[CREDENTIALS]"
NINO = "[NINO]"
ADDRESS = "[ADDRESS]"
DOB = "[DOB]"

PLACEHOLDER = re.compile(r"\[[A-Z_]{2,12}\]")

# A replacement callback returns the new text, or None to leave the match be.
Replacement = str | Callable[[re.Match[str]], "str | None"]
Gate = Callable[[str], bool]

_DIGITS = "0123456789"


def has_digit(text: str) -> bool:
    return any(d in text for d in _DIGITS)


def at_least_digits(count: int) -> Gate:
    """A gate that passes when the text holds ``count`` digits (``\\d``: any
    script's), anywhere: for a rule whose match needs that many. Linear: a
    failed search starts from at most ``count - 1`` digits."""
    return finds(rf"\d(?:\D*+\d){{{count - 1}}}")


def contains(*needles: str) -> Gate:
    def gate(text: str) -> bool:
        return any(n in text for n in needles)

    return gate


def finds(pattern: str) -> Gate:
    """A gate that passes when ``pattern`` occurs: for a rule whose own first
    character is common (any letter) but which needs something rare (a run
    of digits), a pattern that starts at the rare part and so scans fast."""
    search = re.compile(pattern).search

    def gate(text: str) -> bool:
        return search(text) is not None

    return gate


@dataclass(frozen=True)
class Rule:
    """One pattern and its replacement; ``gate`` skips the pass when false."""

    name: str
    pattern: re.Pattern[str]
    replacement: Replacement
    gate: Gate | None = None

    def apply(self, text: str) -> str:
        if self.gate is not None and not self.gate(text):
            return text
        replacement = self.replacement
        if isinstance(replacement, str):
            return self.pattern.sub(replacement, text)
        return self.pattern.sub(lambda m: _or_same(replacement(m), m), text)


def _or_same(result: str | None, match: re.Match[str]) -> str:
    return match.group(0) if result is None else result


LowerReplacement = Callable[[re.Match[str], str], "str | None"]


def lower_copy(text: str) -> str:
    """``text.lower()`` with the same length (U+0130 alone lowers to two)."""
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text.replace("\u0130", "i").lower()
    if len(lowered) != len(text):  # pragma: no cover - no other such letter today
        lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
    return lowered


@dataclass(frozen=True)
class LowerRule:
    """A rule keyed by words, matched against a lower-cased copy of the text.

    ``pattern`` is written in lower case without IGNORECASE, so the engine's
    first-character scan applies (a case-insensitive pattern is tried at
    every position and costs ten times as much). Spans map back to the
    original text, which the replacement callback receives with the match.
    The pass is skipped when none of ``words`` occurs.
    """

    name: str
    pattern: re.Pattern[str]
    replacement: LowerReplacement
    words: tuple[str, ...]

    def apply(self, text: str) -> str:
        lowered = lower_copy(text)
        if not any(word in lowered for word in self.words):
            return text
        if "[" in lowered:  # "[SECRET]" is not the word "secret": "[XXXXXX]"
            lowered = _LOWER_PLACEHOLDER.sub(_blank, lowered)
        out: list[str] = []
        pos = 0
        for match in self.pattern.finditer(lowered):
            new = self.replacement(match, text)
            if new is None:
                continue
            out.append(text[pos : match.start()])
            out.append(new)
            pos = match.end()
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)


_LOWER_PLACEHOLDER = re.compile(r"\[[a-z_]{2,12}\]")


def _blank(match: re.Match[str]) -> str:
    return "[" + "X" * (len(match.group(0)) - 2) + "]"


# A placeholder as LowerRule patterns see it: no word inside, upper case.
LOWER_PLACEHOLDER = r"\[X{2,12}\]"


def original(match: re.Match[str], text: str, group: str) -> str | None:
    """The original text of a group matched in the lower-cased copy."""
    start, end = match.span(group)
    return None if start < 0 else text[start:end]


# --------------------------------------------------------------------------
# Validators


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (card numbers)."""
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
    """True when ``candidate`` (spaces and dashes allowed) passes IBAN mod 97."""
    iban = candidate.replace(" ", "").replace("-", "").upper()
    if not 15 <= len(iban) <= 34 or not iban.isascii() or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


# Lengths by country (ISO 13616 registry): a checksum-valid string of the
# wrong length for its country is not an IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 9xx, group 00 or serial 0000."""
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


# --------------------------------------------------------------------------
# Helpers for writing fast patterns

_TOKEN_CHARS = "A-Za-z0-9_-"


def bounded(pattern: str, before: str = _TOKEN_CHARS) -> str:
    """``pattern`` with a left boundary checked after its first character.

    ``pattern`` must start with one literal character (escaped or not) or a
    character class; the engine then scans for that character quickly.
    """
    if pattern.startswith("\\"):
        first, rest = pattern[:2], pattern[2:]
    elif pattern.startswith("["):
        end = pattern.index("]", 1)
        first, rest = pattern[: end + 1], pattern[end + 1 :]
    else:
        first, rest = pattern[0], pattern[1:]
    if rest[:1] in ("?", "*", "+", "{"):
        raise ValueError(f"the first character of {pattern!r} is repeated")
    # "]" ends a placeholder, which stands where a word was: a boundary the
    # same on a second pass as on the first.
    return f"{first}(?<![\\]{before}].){rest}"


def word_trie(alternation: str, *, boundary: bool = False) -> str:
    """The alternatives of ``alternation`` as a trie, each starting with a
    literal letter; with ``boundary``, each must not follow a lower-case
    letter (checked after the first letter, to keep the scan fast)."""
    words = expand_words(alternation)
    if boundary:
        words = [f"{w[0]}(?<![a-z].){w[1:]}" for w in words]
    return trie(words)


def expand_words(alternation: str) -> list[str]:
    """The top-level alternatives, a leading ``(?:a|b)c`` expanded to ``ac|bc``."""
    words: list[str] = []
    for word in _split_top(alternation):
        if word.startswith("(?:"):
            inner, rest = _group_and_rest(word)
            words.extend(f"{w}{rest}" for w in _split_top(inner))
        else:
            words.append(word)
    return words


def trie(alternatives: list[str]) -> str:
    """The alternatives as a trie on their leading literal letters: the engine
    then tries a handful of branches per position instead of all of them."""
    groups: dict[str, list[str]] = {}
    tails: list[str] = []
    for alternative in alternatives:
        if alternative[:1].isalnum() and alternative[1:2] not in ("?", "*", "+", "{"):
            groups.setdefault(alternative[0], []).append(alternative[1:])
        else:
            tails.append(alternative)
    branches = []
    for first, rests in groups.items():
        if len(rests) == 1:
            branches.append(first + rests[0])
        else:
            inner = trie([r for r in rests if r])
            empty = "|" if "" in rests else ""
            branches.append(f"{first}(?:{inner}{empty})" if inner else first)
    return "|".join(branches + [t for t in tails if t])


def _split_top(alternation: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in alternation:
        if ch == "|" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    parts.append(current)
    return parts


def _group_and_rest(word: str) -> tuple[str, str]:
    depth = 0
    for i, ch in enumerate(word):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return word[3:i], word[i + 1 :]
    raise ValueError(word)
