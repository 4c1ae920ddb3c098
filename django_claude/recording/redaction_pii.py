"""The redactor's PII rules: emails, numbers, addresses and dates of birth.

Emails (unicode and IDN domains, quoted local parts, IP-literal domains,
and obfuscated forms: ``name [at] example [dot] com``, ``name(at)example``,
``name at example dot com``), IBANs (mod 97 and the country's length), card
numbers (Luhn; spaces, dashes or dots), SSNs, UK National Insurance
numbers, IPv4/IPv6 addresses, phone numbers (``+``/``00`` international,
spaces, dots, dashes, parentheses; bare digits only after a phone label),
street addresses and PO boxes, and dates of birth (a date after a birth
label; other dates survive).
"""

from __future__ import annotations

import ipaddress
import re

from django_claude.recording.redaction_rules import (
    ADDRESS,
    CARD,
    DOB,
    EMAIL,
    IBAN,
    IBAN_LENGTHS,
    IP,
    NINO,
    PHONE,
    SSN,
    LowerRule,
    Rule,
    at_least_digits,
    bounded,
    contains,
    finds,
    has_digit,
    iban_ok,
    luhn_ok,
    original,
    ssn_ok,
    word_trie,
)

# --------------------------------------------------------------------------
# Emails

# The first character is one class (so the engine scans for it); a quoted
# local part is told apart by a look-behind.
_LOCAL_START = r"[\w%+\"-](?<![\]\w%+-].)"
_LOCAL = r"(?:(?<=\")(?:[^\"\\\r\n\x00]|\\.){1,64}+\"|(?<!\")[\w.%+'-]{0,63})"
_DOMAIN = (
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}(?:[^\W\d_]{2,24}|xn--[a-z0-9-]{1,59})(?![\w\[-])"
)
_IP_LITERAL = r"\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]{2,45})\]"
EMAIL_RULE = Rule(
    "email",
    re.compile(rf"{_LOCAL_START}{_LOCAL}@(?:{_DOMAIN}|{_IP_LITERAL})"),
    EMAIL,
    gate=contains("@"),
)

# Obfuscated: name [at] example [dot] com, name(at)example(dot)com,
# name @ example.com, and name at example dot com (spelled out, which needs a
# spelled-out dot and a well-known top-level domain, so prose survives).
_AT = r"(?:[ \t]*[\[({<][ \t]*(?:at|@)[ \t]*[\])}>][ \t]*|[ \t]*@[ \t]*|[ \t]+at[ \t]+)"
_DOT = r"(?:[ \t]*[\[({<][ \t]*(?:dot|\.)[ \t]*[\])}>][ \t]*|[ \t]+dot[ \t]+|\.)"
_LABEL = r"[^\W_][\w-]{0,62}+"
_SPELLED_TLDS = frozenset(
    ("com", "org", "net", "edu", "gov", "mil", "io", "co", "uk", "de", "fr", "nl", "ch", "ca",
     "au", "jp", "cn", "ru", "br", "es", "se", "pl", "eu", "info", "biz", "dev", "app", "ai",
     "xyz", "tech", "online")
)  # fmt: skip
OBFUSCATED_EMAIL = re.compile(
    rf"(?i)[\w+-](?<![\]\w.+-].)[\w.+-]{{0,63}}(?P<at>{_AT}){_LABEL}(?:{_DOT}{_LABEL}){{1,7}}(?![\w\[-])"
)
_SPELLED_DOT = re.compile(r"(?i)[\[({<][ \t]*(?:dot|\.)[ \t]*[\])}>]|[ \t]dot[ \t]")
_LAST_LABEL = re.compile(r"[^\W_][\w-]*$")


def _obfuscated_email(match: re.Match[str]) -> str | None:
    text = match.group(0)
    at = match.group("at").strip().lower()
    spelled_dot = _SPELLED_DOT.search(text) is not None
    if at == "@" and not spelled_dot and match.group("at") == "@":
        return None  # a plain email: the email rule's business
    tld = _LAST_LABEL.search(text)
    if tld is None or tld.group(0).isdigit():
        return None
    # A spelled-out "at" needs a spelled-out dot and a real top-level domain.
    if at == "at" and (not spelled_dot or tld.group(0).lower() not in _SPELLED_TLDS):
        return None
    return EMAIL


def _obfuscation_gate(text: str) -> bool:
    lowered = text.lower()
    return (
        " dot " in lowered
        or "dot]" in lowered
        or "dot)" in lowered
        or "dot}" in lowered
        or "dot>" in lowered
        or "at]" in lowered
        or "at)" in lowered
        or "at}" in lowered
        or "at>" in lowered
        or " @" in lowered
        or "@ " in lowered
    )


OBFUSCATED_EMAIL_RULE = Rule(
    "obfuscated_email", OBFUSCATED_EMAIL, _obfuscated_email, gate=_obfuscation_gate
)

# --------------------------------------------------------------------------
# Numbers: IBANs, cards, SSNs, NINOs, IPs, phones, addresses


def _end_of_nth_alnum(text: str, n: int) -> int | None:
    seen = 0
    for i, ch in enumerate(text):
        seen += ch.isalnum()
        if seen == n:
            return i + 1
    return None


def _iban(match: re.Match[str]) -> str | None:
    """The prefix of the match as long as its country's IBANs, if valid."""
    text = match.group(0)
    length = IBAN_LENGTHS.get(text[:2].upper())
    if length is None:
        return None
    end = _end_of_nth_alnum(text, length)
    if end is None:
        return None
    if end < len(text) and text[end].isalnum():
        return None  # the IBAN would end inside a group
    return IBAN + text[end:] if iban_ok(text[:end]) else None


IBAN_RULE = Rule(
    "iban",
    re.compile(
        bounded(r"[A-Za-z][A-Za-z][0-9]{2}(?:[ -]?[A-Za-z0-9]{4}){2,7}(?:[ -]?[A-Za-z0-9]{1,4})?")
        + r"(?![A-Za-z0-9\[])",
        # no IGNORECASE: explicit classes keep the first-character scan fast
    ),
    _iban,
    # two letters, then two digits: scanned for from the digits
    gate=finds(r"[0-9][0-9](?<=[A-Za-z][A-Za-z][0-9][0-9])"),
)


def _card(match: re.Match[str]) -> str | None:
    text = match.group(0)
    sep = match.group("sep")
    groups = text.split(sep) if sep else [text]
    for n in range(len(groups), 0, -1):
        digits = "".join(groups[:n])
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            rest = text[len(sep.join(groups[:n])) :] if sep else ""
            return CARD + rest
    return None


CARD_RULE = Rule(
    "card",
    re.compile(
        bounded(r"[2-6](?:\d{12,18}|\d{3}(?P<sep>[ .-])\d{4,6}(?:(?P=sep)\d{3,5}){1,3})", r"\w.,+")
        + r"(?![\w\[])"
    ),
    _card,
    gate=at_least_digits(13),  # what _card asks of a match
)


def _ssn(match: re.Match[str]) -> str | None:
    return SSN if ssn_ok(match.group(1), match.group(2), match.group(3)) else None


SSN_RULE = Rule(
    "ssn",
    re.compile(r"(\d(?<![\w-].)\d{2})-(\d{2})-(\d{4})(?![\w\[-])"),
    _ssn,
    gate=contains("-"),
)

_NINO_FIRST = set("ABCEGHJKLMNOPRSTWXYZ")
_NINO_SECOND = set("ABCEGHJKLMNPRSTWXYZ")
_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


_NINO_LABEL = re.compile(r"(?i)\b(?:ni|nino|nin|national[ \t]+insurance)\b[^\n]{0,24}$")


def _nino(match: re.Match[str]) -> str | None:
    """A valid prefix, or any two letters after a label (``QQ 12 34 56 C``
    is HMRC's own example, with a prefix never issued)."""
    if _NINO_LABEL.search(match.string, max(0, match.start() - 40), match.start()):
        return NINO
    prefix = match.group(1).upper()
    if prefix[0] not in _NINO_FIRST or prefix[1] not in _NINO_SECOND:
        return None
    return None if prefix in _NINO_BAD_PREFIXES else NINO


NINO_RULE = Rule(
    "nino",
    re.compile(
        r"([A-Za-z](?<![A-Za-z0-9].)[A-Za-z])[ \t]?\d{2}[ \t]?\d{2}[ \t]?\d{2}[ \t]?[A-Da-d]"
        r"(?![A-Za-z0-9\[])"
    ),
    _nino,
    gate=finds(r"\d\d[ \t]?\d\d[ \t]?\d\d"),
)


_FOUR_DIGITS = at_least_digits(4)


def _ipv4(match: re.Match[str]) -> str | None:
    try:
        ipaddress.IPv4Address(match.group(0))
    except ValueError:
        return None
    return IP


IPV4_RULE = Rule(
    "ipv4",
    re.compile(bounded(r"\d\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}", r"\w.") + r"(?![\w\[]|\.[\d\[])"),
    _ipv4,
    gate=lambda text: "." in text and _FOUR_DIGITS(text),
)


def _ipv6(match: re.Match[str]) -> str | None:
    candidate = match.group(0)
    stripped = candidate.rstrip(".")
    if stripped.count(":") < 2 or stripped.strip(":.") == "":
        return None  # a bare "::" is a scope operator, not an address
    try:
        ipaddress.IPv6Address(stripped)
    except ValueError:
        return None
    return IP + candidate[len(stripped) :]


_IPV6_HINT = re.compile(r":[0-9A-Fa-f:]")  # after the last colon: a group, or "::"

IPV6_RULE = Rule(
    "ipv6",
    re.compile(bounded(r"[0-9A-Fa-f:][0-9A-Fa-f:.]{1,44}", r"\w:.") + r"(?![\w:\[])"),
    _ipv6,
    # two colons, and one next to a hex digit or a colon ("::1", "db8:"), not
    # the colon of prose ("office: the")
    gate=lambda text: text.count(":") >= 2 and _IPV6_HINT.search(text) is not None,
)

# International (+ or 00), parenthesised area codes, US 3-3-4 with one
# separator, UK-style 0-trunk numbers and French pairs. One character class
# starts the pattern; look-behinds then tell the shapes apart.
_PHONE = (
    r"[+(0-9](?<![\w+.):\]].)(?:"
    r"(?:(?<=\+)[1-9]\d{0,2}|(?<=0)0[1-9]\d{0,2})(?>[ .-]?\(\d{1,4}\))?(?>[ .-]?\d{1,5}){1,6}"
    r"|(?<=\()\d{2,5}\)[ .-]?\d{2,5}(?>[ .-]?\d{2,5}){1,3}"
    r"|(?<=\d)\d{2}(?P<s>[ .-])\d{3}(?P=s)\d{4}"
    r"|(?<=0)\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}"
    r"|(?<=0)\d(?P<f>[ .-])\d{2}(?:(?P=f)\d{2}){3}"
    r")"
)


def _phone(match: re.Match[str]) -> str | None:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return PHONE if 7 <= digits <= 15 else None


PHONE_RULE = Rule(
    "phone",
    re.compile(rf"{_PHONE}(?![\w\[]|[.-][\d\[])"),
    _phone,
    gate=at_least_digits(7),  # what _phone asks of a match
)

_STREET_TYPES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square"
    r"|sq|terrace|ter|way|close|crescent|cres|highway|hwy|parkway|pkwy|circle|cir|row|mews"
    r"|gardens|grove|walk|alley|plaza|trail|pike|quay|wharf|rise|hill|green|gate|loop|strasse"
    r"|straße|str"
)
# House number, one to four capitalised words, a street type; or (French,
# Spanish, Italian, Portuguese) house number, street type, then the name.
_HOUSE = r"\d{0,4}[A-Za-z]?(?:-\d{1,5}[A-Za-z]?)?,?[ \t]+"
_STREET_FIRST = r"rue|via|viale|calle|avenida|avenue|allée|chemin|quai|piazza|carrer|rua|boulevard"
ADDRESS_RULE = Rule(
    "address",
    re.compile(
        bounded(r"\d", r"\w.,/:#$£€-")
        + _HOUSE
        + r"(?:(?:(?:[A-Z][\w'’-]*+\.?|\d{1,3}(?:st|nd|rd|th))[ \t]+){1,4}"
        + rf"(?i:{_STREET_TYPES})\b\.?"
        + r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?"
        + r"(?:,?[ \t]+(?i:apt|apartment|suite|ste|unit|flat|floor|fl)\.?[ \t]*#?[ \t]*\w{1,5}\b)?"
        + rf"|(?i:{_STREET_FIRST})[ \t]+(?:[\w'’-]+[ \t]+){{0,3}}[A-Z][\w'’-]*+)"
    ),
    ADDRESS,
    gate=has_digit,
)

# --------------------------------------------------------------------------
# Labelled PII, matched in the lower-cased text (see LowerRule)

# SSNs with spaces or no separators only after a label; the dashed form
# (SSN_RULE) is distinctive enough on its own.
SSN_LABELLED = re.compile(
    r"(?P<label>(?:"
    + word_trie(
        r"ssn|social[ \t]+security(?:[ \t]+(?:number|no\.?|#))?|ss[ \t]?#|ss[ \t]+no\.?",
        boundary=True,
    )
    + r")s?[ \t]*(?:[:=#-]|is|was)?[ \t]*)(\d{3})[ .-]?(\d{2})[ .-]?(\d{4})(?![\d\[-])"
)


def _ssn_labelled(match: re.Match[str], text: str) -> str | None:
    if not ssn_ok(match.group(2), match.group(3), match.group(4)):
        return None
    return (original(match, text, "label") or "") + SSN


SSN_LABELLED_RULE = LowerRule(
    "ssn_labelled", SSN_LABELLED, _ssn_labelled, words=("ssn", "social", "ss")
)

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = (
    rf"(?:\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.](?:\d{{4}}|\d{{2}})"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{_MONTH},?[ \t]+\d{{4}}"
    rf"|{_MONTH}[ \t]+\d{{1,2}}(?:st|nd|rd|th)?,?[ \t]+\d{{4}}|{_MONTH}[ \t]+\d{{4}})(?![\d\[])"
)
# A date is a date of birth only after a birth label; other dates survive.
DOB_LABELLED = re.compile(
    r"(?P<label>(?:"
    + word_trie(
        r"d\.?o\.?b\.?|date[ \t_-]*of[ \t_-]*birth|birth[ \t_-]?date|birthday|born|geboren",
        boundary=True,
    )
    + r")[\"']?(?:[ \t]*(?:[:=,-]|is|was|on|in))?[ \t]*[\"']?(?:(?:on|in)[ \t]+)?)"
    + _DATE
)


def _dob(match: re.Match[str], text: str) -> str:
    return (original(match, text, "label") or "") + DOB


DOB_RULE = LowerRule("dob", DOB_LABELLED, _dob, words=("dob", "d.o.b", "birth", "born", "geboren"))

# A bare number is a phone number only after a phone label.
PHONE_LABELLED = re.compile(
    r"(?P<label>(?:"
    + word_trie(
        r"phone|tel(?:ephone)?|mobile|cell(?:phone)?|fax|call|ring|whatsapp|sms", boundary=True
    )
    + r")(?:[ \t]*(?:no\.?|number|#))?[ \t]*[:=.-]?[ \t]*(?:me[ \t]+)?(?:(?:on|at)[ \t]+)?)"
    r"(?P<number>\+?\(?\d[\d \t.()/-]{5,22}(?<=\d))(?![\w\[])"
)
_DATE_ONLY = re.compile(_DATE)


def _phone_labelled(match: re.Match[str], text: str) -> str | None:
    number = match.group("number")
    digits = sum(ch.isdigit() for ch in number)
    if not 7 <= digits <= 15 or _DATE_ONLY.fullmatch(number):
        return None
    return (original(match, text, "label") or "") + PHONE


PHONE_LABELLED_RULE = LowerRule(
    "phone_labelled",
    PHONE_LABELLED,
    _phone_labelled,
    words=("phone", "tel", "mobile", "cell", "fax", "call", "ring", "whatsapp", "sms"),
)

PO_BOX_RULE = LowerRule(
    "po_box",
    re.compile(r"p(?<![a-z].)\.?[ \t]?o\.?[ \t]+box[ \t]+\d{1,6}(?![\d\[])"),
    lambda match, text: ADDRESS,
    words=("box",),
)
