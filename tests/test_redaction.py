"""The redactor: a corpus of every kind, false positives, and the prefix rules."""

from __future__ import annotations

import pytest

from django_claude.recording.redaction import clean_text, iban_ok, luhn_ok, prompt_prefix, redact

CORPUS = [
    # emails
    ("write to john.doe+tag@example.co.uk today", "write to [EMAIL] today"),
    ("ADA@EXAMPLE.ORG", "[EMAIL]"),
    # phones
    ("call +44 20 7946 0958 now", "call [PHONE] now"),
    ("call +1 (415) 555-2671", "call [PHONE]"),
    ("call (555) 123-4567", "call [PHONE]"),
    ("call 555-123-4567", "call [PHONE]"),
    ("call +33 6 12 34 56 78", "call [PHONE]"),
    ("ring +4915112345678", "ring [PHONE]"),
    # cards (Luhn)
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("card 5500005555555559", "card [CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    # SSN
    ("ssn 123-45-6789", "ssn [SSN]"),
    # IBAN (mod 97)
    ("iban GB82 WEST 1234 5698 7654 32", "iban [IBAN]"),
    ("iban DE89370400440532013000", "iban [IBAN]"),
    # IPs
    ("from 192.168.1.10 to 8.8.8.8", "from [IP] to [IP]"),
    ("v6 2001:db8::8a2e:370:7334 and ::1", "v6 [IP] and [IP]"),
    ("v6 fe80::1ff:fe23:4567:890a", "v6 [IP]"),
    # vendor keys
    ("key sk-ant-api03-abcdefghijklmnop_QRST-uv", "key [SECRET]"),
    ("openai sk-proj-abcdefghijklmnopqrstuvwx12", "openai [SECRET]"),
    ("openai sk-abcdefghijklmnopqrstuvwxyz012345", "openai [SECRET]"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]"),
    (
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key=[SECRET]",
    ),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [SECRET]"),
    ("gh github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "gh [SECRET]"),
    ("slack xoxb-1234567890-abcdefghij", "slack [SECRET]"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "google [SECRET]"),
    ("stripe sk_live_51Habcdefghij1234", "stripe [SECRET]"),
    ("stripe rk_test_51Habcdefghij1234", "stripe [SECRET]"),
    # PEM
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc+/=\n-----END RSA PRIVATE KEY-----",
        "[PRIVATE_KEY]",
    ),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA", "[PRIVATE_KEY]"),
    # JWT
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc_DEF-123", "jwt [JWT]"),
    # auth headers, URL credentials, key=value
    ("Authorization: Bearer abcdef1234567890", "Authorization: Bearer [SECRET]"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [SECRET]"),
    ("https://bob:hunter2@db.example.com/x", "https://[CREDENTIALS]@db.example.com/x"),
    ("postgres://app:s3cr3t@10.0.0.5:5432/db", "postgres://[CREDENTIALS]@[IP]:5432/db"),
    (
        "GET /cb?api_key=abc123&token=xyz789&page=2",
        "GET /cb?api_key=[SECRET]&token=[SECRET]&page=2",
    ),
    ('{"password": "s3cret!", "user": "x"}', '{"password": "[SECRET]", "user": "x"}'),
    ("PASSWORD=hunter2", "PASSWORD=[SECRET]"),
    # obfuscation: zero-width characters and full-width forms
    ("sk-ant-\u200bapi03-abcdefghijklmnop", "[SECRET]"),
    ("j\u200bo\u200dhn@example.com", "[EMAIL]"),
    ("ｊｏｈｎ@ｅｘａｍｐｌｅ.ｃｏｍ", "[EMAIL]"),
    ("card ４１１１ １１１１ １１１１ １１１１", "card [CARD]"),
]


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_corpus(text, expected):
    assert redact(text) == expected


LEFT_ALONE = [
    "Version 1.2.3 was released on 2024-01-15.",
    "It costs $1,234.56 or 1.234,56 EUR, about 3.14159 of them.",
    "Meet at 12:30:45 on 15/01/2024.",
    "Order 12345678 shipped; 42 items; ref 2024-0001.",
    "Python 3.11.7 and Django 5.2.19",
    "card 4111 1111 1111 1112 fails Luhn",
    "iban GB82 WEST 1234 5698 7654 33 fails mod 97",
    "ssn 000-12-3456 is not a valid area",
    "the ratio is 1:2:3",
    "call me maybe",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b",
    "a token of appreciation",
]


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_false_positives(text):
    assert redact(text) == text


def test_luhn_and_iban_checks():
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("GB82WEST12345698765433")


def test_prefix_redacts_before_cutting():
    # The email straddles the 20-character cut: cutting first would leave "jo".
    text = "hello there, write jo" + "hn@example.com please"
    prefix = prompt_prefix(text, limit=20)
    assert "jo" not in prefix.replace("[EMAIL]", "")
    assert len(prefix) <= 20


def test_prefix_escapes_line_breaks_and_control_characters():
    prefix = prompt_prefix("line1\r\nline2\tend\x1b[31m\x00", limit=80)
    assert prefix == "line1\\r\\nline2\\tend\\x1b[31m\\x00"
    assert "\n" not in prefix and "\x00" not in prefix


def test_prefix_never_exceeds_limit_even_when_escaping():
    prefix = prompt_prefix("\n" * 500, limit=80)
    assert len(prefix) <= 80
    assert prefix.endswith("…")
    assert "\\n" in prefix and not prefix.rstrip("…").endswith("\\")


def test_prefix_never_splits_a_character():
    prefix = prompt_prefix("é" * 50 + "🙂" * 100, limit=60)
    assert len(prefix) == 60
    prefix.encode("utf-8")  # no half characters, no surrogates


def test_prefix_replaces_lone_surrogates():
    prefix = prompt_prefix("a\ud800b", limit=80)
    assert prefix == "a\ufffdb"
    prefix.encode("utf-8")


def test_prefix_of_a_huge_prompt_reads_only_a_window():
    seen = []

    def spy(text):
        seen.append(len(text))
        return redact(text)

    prefix = prompt_prefix("hello " + "x" * 10_000_000, limit=80, redactor=spy)
    assert prefix.startswith("hello ")
    assert max(seen) <= 8192


def test_prefix_looks_further_when_a_big_secret_shrinks_the_window():
    key = "-----BEGIN PRIVATE KEY-----\n" + "A" * 6000 + "\n-----END PRIVATE KEY-----"
    text = key + " then sk-ant-api03-" + "z" * 40 + " and more"
    prefix = prompt_prefix(text, limit=80)
    assert prefix.startswith("[PRIVATE_KEY]")
    assert "zzzz" not in prefix


def test_adversarial_inputs_finish():
    # Linear-time patterns: these would take minutes with nested quantifiers.
    # benchmarks/redaction.py measures them against plain text.
    for text in ("a." * 50_000, "eyJ" + "A" * 100_000, "1" * 100_000, "1 " * 50_000):
        assert isinstance(redact(text), str)


# A random base64 run (an image, a key) in which another rule finds a match:
# an IBAN after a "/" (a valid one: GB82 WEST 1234 5698 7654 32), a card
# number after a "+" (4111 1111 1111 1111 passes Luhn). The rule replaces its
# match, and what follows it in the run is still judged as a token.
RANDOM_RUN = "kQ7vX2pLm9Rz4TbW8yHc3NfJ6dGs1AeUoZiYqPrVtKwMxBn5CjEh0SgDlFaIuOy"


@pytest.mark.parametrize(
    "inner",
    ["/GB82WEST12345698765432", "+4111111111111111", "/GB82WEST12345698765432+4111111111111111"],
)
def test_a_match_inside_a_random_run_leaves_none_of_the_run(inner):
    text = f"Describe this image: data:image/png;base64,{RANDOM_RUN}{inner}/{RANDOM_RUN[::-1]}"
    out = redact(text)
    for piece in (RANDOM_RUN[:16], RANDOM_RUN[::-1][:16], RANDOM_RUN[::-1][-16:]):
        assert piece not in out, out


def test_a_prefix_cut_inside_a_random_run_shows_none_of_it():
    text = "Describe this: data:image/png;base64," + RANDOM_RUN * 3 + "/GB82WEST12345698765432"
    tail = ("/" + RANDOM_RUN) * 40
    out = prompt_prefix(text + tail, limit=80)
    assert RANDOM_RUN[:12] not in out and RANDOM_RUN[-12:] not in out, out


def test_clean_text_leaves_ascii_as_nfkc_would():
    # clean_text returns ASCII text as it is: exact, since NFKC maps every
    # ASCII character to itself and what it drops (zero-width characters,
    # surrogates) lies outside ASCII.
    import unicodedata

    every_ascii = "".join(map(chr, range(128)))
    assert clean_text(every_ascii) == unicodedata.normalize("NFKC", every_ascii) == every_ascii
    assert clean_text("a\u200bb\uff11") == "ab1"  # and the rest is still cleaned
