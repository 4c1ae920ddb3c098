"""The redactor's building blocks: the entropy rule, decoding, batching, rules."""

from __future__ import annotations

import base64

import pytest

from django_claude.recording.redaction import FIXPOINT_MAX_CHARS, PASSES, redact
from django_claude.recording.redaction_rules import (
    IBAN_LENGTHS,
    bounded,
    iban_ok,
    lower_copy,
    luhn_ok,
    ssn_ok,
    word_trie,
)
from django_claude.recording.redaction_tokens import (
    SEPARATOR,
    decode_escapes,
    finding,
    looks_random,
    redact_batch,
    shannon_entropy,
)

RANDOM = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # AWS's documented secret key
    "9fJ3kLm2Qx7Rt5Vw8Yz1Ab4Cd6Ef0Gh2",
    "k5N1rI9ROWXLi7ZKfHzbauWFgEu-jCSSX38_7Xy85ZI",
    "h16qNAMde9fFmEYT4BTnSDIT8Jtus5HR",
]
NOT_RANDOM = [
    "get_user_profile_by_id_2024",  # words
    "Base64UrlSafeEncoder2",
    "InvoiceNumberINV20240001",
    "claude-sonnet-4-5-20250929",  # short segments
    "my-app-frontend-7d9f8b6c5-x2k4p",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",  # an alphabet
    "aaaaaaaaaaaaaaaaaaaaaaaa1",  # repetitive
    "DJANGO_SETTINGS_MODULE",  # no digit
    "1234567890123456789012",  # no letter
    "Ab3dE5fG7h",  # too short
]


@pytest.mark.parametrize("token", RANDOM)
def test_random_tokens_look_random(token):
    assert looks_random(token)


@pytest.mark.parametrize("token", NOT_RANDOM)
def test_words_ids_and_sequences_do_not(token):
    assert not looks_random(token)


def test_entropy():
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2
    assert shannon_entropy("x" * 5000 + "y" * 5000) == pytest.approx(1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sha256 " + "ab12" * 16, "sha256 " + "ab12" * 16),  # introduced as a hash
        ("Commit: " + "3f78" * 10, "Commit: " + "3f78" * 10),
        ("see https://x.test/" + "9e" * 32, "see https://x.test/" + "9e" * 32),
        ("id " + "0a1b2c3d4e5f6789" * 2, "id [SECRET]"),  # a bare 32-hex token
        ("id " + "0a1b2c3d4e5f6789", "id " + "0a1b2c3d4e5f6789"),  # short: an id
    ],
)
def test_hex_is_a_secret_only_outside_urls_and_hash_words(text, expected):
    assert redact(text) == expected


def test_base64_is_decoded_and_its_finding_named():
    email = base64.b64encode(b"ada@example.com").decode()
    key = base64.urlsafe_b64encode(b"sk-ant-api03-0123456789abcdef").decode()
    prose = base64.b64encode(b"hello world").decode()
    assert redact(f"a {email} b") == "a [EMAIL] b"
    assert redact(f"a {key} b") == "a [SECRET] b"
    assert redact(f"a {prose} b") == f"a {prose} b"


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("a%40b.co", "a@b.co"),
        ("%E2%82%AC", "€"),
        ("\\x61\\x40", "a@"),
        ("\\xe2\\x82\\xac", "€"),  # UTF-8 bytes written as \x escapes
        ("\\u0040\\u{1F600}", "@😀"),
        ("\\ud83d\\ude00", "😀"),
        ("&#64;&#x40;", "@@"),
        ("%zz\\q", "%zz\\q"),  # not escapes: left as they are
    ],
)
def test_decode_escapes(encoded, decoded):
    assert decode_escapes(encoded) == decoded


def test_escaped_runs_become_the_placeholder_of_what_they_hide():
    assert redact("to: bob%40example.com") == "to: [EMAIL]"
    assert redact("q=a%20b&email=bob%40example.com") == "q=a%20b&email=[EMAIL]"
    assert redact("path /a%20b/c%2Fd") == "path /a%20b/c%2Fd"


def test_finding():
    assert finding("a@b.co", "[EMAIL]") == "[EMAIL]"
    assert finding("[EMAIL] x", "[EMAIL] x") == ""
    assert finding("plain", "plain") == ""


def test_batch_falls_back_when_a_text_holds_the_separator():
    calls = []

    def upper(text):
        calls.append(text)
        return text.upper()

    assert redact_batch(["a", "b"], upper) == ["A", "B"]
    assert len(calls) == 1
    assert redact_batch(["a" + SEPARATOR + "b", "c"], upper) == ["A" + SEPARATOR + "B", "C"]
    assert redact_batch([], upper) == []


def test_lower_copy_keeps_positions():
    text = "İstanbul PASSWORD=hunter2"
    assert len(lower_copy(text)) == len(text)
    assert redact(text) == "İstanbul PASSWORD=[SECRET]"


def test_bounded_refuses_a_repeated_first_character():
    assert bounded("ab") == "a(?<![\\]A-Za-z0-9_-].)b"
    with pytest.raises(ValueError):
        bounded("[0-9]{8}")


def test_word_trie_expands_and_bounds():
    pattern = word_trie("(?:access|refresh)[_-]?token|pin", boundary=True)
    assert "a(?<![a-z].)" in pattern and "p(?<![a-z].)in" in pattern


def test_validators():
    assert luhn_ok("4242424242424242") and not luhn_ok("4242424242424241")
    assert iban_ok("gb82-west-1234-5698-7654-32")
    assert not iban_ok("GB82WEST1234569876543!")
    assert IBAN_LENGTHS["DE"] == 22
    assert ssn_ok("123", "45", "6789")
    assert not ssn_ok("666", "45", "6789") and not ssn_ok("900", "45", "6789")


def test_every_pass_has_a_name_once():
    names = [name for name, _ in PASSES]
    assert len(names) == len(set(names))
    assert names[-2:] == ["tokens", "escaped"]


def test_long_texts_are_redacted_in_one_pass():
    text = "x " * FIXPOINT_MAX_CHARS + "mail ada@example.com"
    assert redact(text).endswith("mail [EMAIL]")
