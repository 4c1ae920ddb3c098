"""Properties of the redactor, fuzzed with Hypothesis on a fixed budget.

For any string: ``redact`` never raises, is idempotent, and its output is at
most ``GROWTH`` times the cleaned (NFKC) input plus a placeholder. The
strategies mix arbitrary text with fragments of every shape the rules look
for, so the fuzzer spends its budget near the rules' edges.
"""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from django_claude.recording.redaction import clean_text, prompt_prefix, redact  # noqa: E402

# The most a finding can grow: "://:x@" becomes "://[CREDENTIALS]@".
GROWTH = 3
SLACK = 16

FRAGMENTS = [
    "@", ".", ":", "::", "-", "_", "/", "+", "=", "%", "%40", "%3D", "\\x41", "\\u0040",
    "&#64;", "[at]", "(dot)", " at ", " dot ", " ", "\n", "\\n", "\t", '"', "'", "[", "]",
    "(", ")", "<", ">", "{", "}", ";", ",", "#", "0", "1", "00", "+44", "4111", "1111",
    "123-45-6789", "AB 12 34 56 C", "GB82 WEST 1234 5698 7654 32", "192.168.0.1",
    "2001:db8::1", "john@example.com", "x [at] y [dot] com", "password", "password: ",
    "newPassword=", "token=", "api_key", "Bearer ", "Authorization: ", "Cookie: ", "SSN ",
    "DOB: ", "born on ", "call ", "221B Baker Street", "10 Downing St", "PO Box 12",
    "1990-01-31", "31/01/1990", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "eyJhbGciOiJIUzI1NiJ9", "sk-ant-api03-", "sk-",
    "AKIA", "ghp_", "glpat-", "xoxb-", "SG.", "hf_", "AIza", "://", "https://", "user:pw@",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "3f786850e387550fdab836ed7e6dc881de23001b",
    "am9obkBleGFtcGxlLmNvbQ==", "550e8400-e29b-41d4-a716-446655440000", "[EMAIL]",
    "[SECRET]", "[CREDENTIALS]", "é", "İ", "ﷺ", "\u200b", "\ufeff", "١٢٣", "０",
]  # fmt: skip

mixed_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=24).map(
    "".join
)
any_text = st.one_of(st.text(max_size=200), mixed_text)

BUDGET = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@BUDGET
@given(any_text)
def test_redact_never_raises_and_returns_text(text):
    assert isinstance(redact(text), str)


@BUDGET
@given(any_text)
def test_redact_is_idempotent(text):
    once = redact(text)
    assert redact(once) == once


@BUDGET
@given(any_text)
def test_redact_output_is_bounded(text):
    assert len(redact(text)) <= GROWTH * len(clean_text(text)) + SLACK


@BUDGET
@given(any_text, st.integers(min_value=0, max_value=120))
def test_prompt_prefix_is_bounded_and_never_raises(text, limit):
    prefix = prompt_prefix(text, limit=limit)
    assert len(prefix) <= limit
    prefix.encode("utf-8")


# Texts near the gated rules' shapes: digit runs and groups in any script,
# dots and colons, token characters.
TOKENISH = [
    "4222222222222", "4111 1111 1111 1111", "5500-0000-0000-0004", "+44 20 7946 0958",
    "(020) 7946 0958", "555-123-4567", "0612 34 56 78", "10.0.0.1", "256.1.1.1",
    "MTk4NjIyNDgzNDcxOTI1MjQ4", ".Cl2FMQ.", "ZnCjm1XVW7vRze4b7Cq4se7kKWs",
    "123456789:", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
    " 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1 ",
    " MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs ",
    "٤١١١", "١٢٣٤٥٦٧", "0", "9", ".", ":", " ", "-", "(", ")", "+",
]  # fmt: skip
tokenish_text = st.lists(
    st.one_of(st.sampled_from(TOKENISH), st.text(alphabet="0123456789.:- +()abcXYZ_", max_size=8)),
    max_size=16,
).map("".join)


@BUDGET
@given(tokenish_text)
def test_a_rules_gate_only_skips_what_its_pattern_would_not_change(text):
    # A gate is a necessary condition of its rule's finding: with or without
    # it, the rule does the same to any text.
    from django_claude.recording import redaction_pii as pii
    from django_claude.recording import redaction_secrets as secrets

    rules = (pii.CARD_RULE, pii.PHONE_RULE, pii.IPV4_RULE, secrets.DISCORD_RULE)
    for rule in (*rules, secrets.TELEGRAM_RULE):
        ungated = type(rule)(rule.name, rule.pattern, rule.replacement)
        assert rule.apply(text) == ungated.apply(text), rule.name
