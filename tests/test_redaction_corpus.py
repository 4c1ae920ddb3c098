"""The redactor against a corpus: every category of issue #11, and text to keep.

Each form is redacted as a whole field and compared with its expected output;
``KEEP`` lists ordinary text (prices, dates, order numbers, versions, UUIDs,
hashes in URLs, code) that must come back unchanged.
"""

from __future__ import annotations

import pytest

from django_claude.recording.redaction import (
    PREFIX_MARGIN,
    PREFIX_SLACK,
    escape_controls,
    prompt_prefix,
    redact,
)

CORPUS = [
    # emails
    ("email: jörg.müller@bücher.de", "email: [EMAIL]"),
    ("用户@例子.广告", "[EMAIL]"),
    ("contact: user@xn--mller-kva.de", "contact: [EMAIL]"),
    ('write to "john doe"@example.com', "write to [EMAIL]"),
    ("admin@[192.168.0.1] is the ops box", "[EMAIL] is the ops box"),
    ("ops@[IPv6:2001:db8::1]", "[EMAIL]"),
    ("mail me at O'Brien@example.ie please", "mail me at [EMAIL] please"),
    ("first.last+tag@sub.example.co.uk", "[EMAIL]"),
    ("<john@example.com>", "<[EMAIL]>"),
    ("(jane_doe-99@example.org)", "([EMAIL])"),
    ("name [at] example [dot] com", "[EMAIL]"),
    ("name(at)example(dot)com", "[EMAIL]"),
    ("name{at}example{dot}org", "[EMAIL]"),
    ("alice [ at ] example [ dot ] co [ dot ] uk", "[EMAIL]"),
    ("reach me: john at example dot com", "reach me: [EMAIL]"),
    ("mail jane AT example DOT org", "mail [EMAIL]"),
    ("bob at mail dot example dot net", "[EMAIL]"),
    ("john @ example.com", "[EMAIL]"),
    ("mailto:carol@example.com", "mailto:[EMAIL]"),
    # phones
    ("call +44 20 7946 0958 now", "call [PHONE] now"),
    ("call 020 7946 0958", "call [PHONE]"),
    ("call 0044 20 7946 0958", "call [PHONE]"),
    ("tel +1-800-555-0199", "tel [PHONE]"),
    ("phone: 555.123.4567", "phone: [PHONE]"),
    ("+1.415.555.2671", "[PHONE]"),
    ("ring (020) 7946 0958", "ring [PHONE]"),
    ("06 12 34 56 78", "[PHONE]"),
    ("06.12.34.56.78", "[PHONE]"),
    ("call 5551234567", "call [PHONE]"),
    ("Phone: (555)123-4567", "Phone: [PHONE]"),
    ("+49 (30) 1234567", "[PHONE]"),
    ("+44 (0)20 7946 0958", "[PHONE]"),
    ("001-415-555-2671", "[PHONE]"),
    ("mobile: 07700 900123", "mobile: [PHONE]"),
    ("whatsapp +61 4 1234 5678", "whatsapp [PHONE]"),
    ("555 123 4567", "[PHONE]"),
    # cards
    ("card 4111.1111.1111.1111", "card [CARD]"),
    ("card 4111 1111 1111 1111 2024", "card [CARD] 2024"),
    ("visa 4012-8888-8888-1881", "visa [CARD]"),
    ("mc 5555 5555 5555 4444", "mc [CARD]"),
    ("amex 3714-496353-98431", "amex [CARD]"),
    ("discover 6011111111111117", "discover [CARD]"),
    ("card no. 4242424242424242, exp 12/30", "card no. [CARD], exp 12/30"),
    # IBAN
    ("iban gb82 west 1234 5698 7654 32", "iban [IBAN]"),
    ("iban GB82-WEST-1234-5698-7654-32", "iban [IBAN]"),
    ("de89 3704 0044 0532 0130 00", "[IBAN]"),
    ("FR14 2004 1010 0505 0001 3M02 606", "[IBAN]"),
    ("pay to NL91ABNA0417164300 today", "pay to [IBAN] today"),
    ("ES9121000418450200051332", "[IBAN]"),
    # SSN
    ("SSN 123 45 6789", "SSN [SSN]"),
    ("social security number: 123456789", "social security number: [SSN]"),
    ("my ssn is 123-45-6789", "my ssn is [SSN]"),
    ("SS# 123-45-6789", "SS# [SSN]"),
    ("ssn: 078051120", "ssn: [SSN]"),
    ("Social Security No. 219 09 9999", "Social Security No. [SSN]"),
    # NINO
    ("NI number AB 12 34 56 C", "NI number [NINO]"),
    ("nino: QQ123456C", "nino: [NINO]"),
    ("AB123456C", "[NINO]"),
    ("her NI is JG 10 37 98 A.", "her NI is [NINO]."),
    # addresses
    ("I live at 221B Baker Street, London", "I live at [ADDRESS], London"),
    ("1600 Pennsylvania Avenue NW, Washington", "[ADDRESS], Washington"),
    ("10 Downing St", "[ADDRESS]"),
    ("PO Box 1234", "[ADDRESS]"),
    ("P.O. Box 77, Springfield", "[ADDRESS], Springfield"),
    ("ship to 742 Evergreen Terrace", "ship to [ADDRESS]"),
    ("350 Fifth Avenue, New York", "[ADDRESS], New York"),
    ("12 Rue de la Paix", "[ADDRESS]"),
    ("1 Infinite Loop, Cupertino", "[ADDRESS], Cupertino"),
    ("4059 Mt Lee Dr. Hollywood", "[ADDRESS] Hollywood"),
    # DOB
    ("DOB: 1990-01-31", "DOB: [DOB]"),
    ("born on 31/01/1990", "born on [DOB]"),
    ("Date of birth: 31 January 1990", "Date of birth: [DOB]"),
    ("birthday March 5, 1990", "birthday [DOB]"),
    ("d.o.b. 01.02.1985", "d.o.b. [DOB]"),
    ("born 12th of June 1970", "born [DOB]"),
    ("birth date: 1975-07-04", "birth date: [DOB]"),
    ("date_of_birth=1990-01-31", "date_of_birth=[DOB]"),
    # PEM
    (
        "-----begin rsa private key-----\nMIIEpAIBAAKCAQEA\n-----end rsa private key-----",
        "[PRIVATE_KEY]",
    ),
    ("-----BEGIN PRIVATE\nKEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "[PRIVATE_KEY]"),
    (
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n"}',  # noqa: E501
        '{"private_key": "[PRIVATE_KEY]"}',
    ),
    (
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----\nafter text stays",  # noqa: E501
        "[PRIVATE_KEY]\nafter text stays",
    ),
    (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0\n-----END PGP PRIVATE KEY BLOCK-----",  # noqa: E501
        "[PRIVATE_KEY]",
    ),
    (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----",  # noqa: E501
        "[PRIVATE_KEY]",
    ),
    (
        "-----BEGIN DSA PRIVATE KEY----- MIIBuwIBAAKBgQD -----END DSA PRIVATE KEY-----",
        "[PRIVATE_KEY]",
    ),
    # split keys
    ("key sk-ant-api03-abcdefgh\nijklmnopqrstuvwx0123\nthanks", "key [SECRET]\nthanks"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n/bPxRfiCYEXAMPLEKEY\n",
        "aws_secret_access_key = [SECRET]\n",
    ),
    ("secret wJalrXUtnFEMI/K7MDENG\n/bPxRfiCYEXAMPLEKEY\nok", "secret [SECRET]\nok"),
    # passwords
    ("password: correct horse battery staple", "password: [SECRET]"),
    ("newPassword=hunter2", "newPassword=[SECRET]"),
    ('dbPassword: "s3cr3t"', 'dbPassword: "[SECRET]"'),
    ("DBPASSWORD=hunter2", "DBPASSWORD=[SECRET]"),
    ("password%3Dhunter2%26user%3Dbob", "password%3D[SECRET]%26user%3Dbob"),
    ('{"password": "correct horse"}', '{"password": "[SECRET]"}'),
    ("<password>hunter2</password>", "<password>[SECRET]</password>"),
    ("PASSWD='p@ss w0rd'", "PASSWD='[SECRET]'"),
    ("user_password => 'tr0ub4dor&3'", "user_password => '[SECRET]'"),
    ('"Password":"Sup3r$ecret!"', '"Password":"[SECRET]"'),
    ("export MYSQL_PWD=topsecret1", "export MYSQL_PWD=[SECRET]"),
    ("db_pass: xY9!kL2m", "db_pass: [SECRET]"),
    ("client_secret: abc123def456", "client_secret: [SECRET]"),
    ('api_key = "live_1234567890abcdef"', 'api_key = "[SECRET]"'),
    ("X-Api-Key: 0123456789abcdef", "X-Api-Key: [SECRET]"),
    ("Authorization: Token abcd1234efgh5678", "Authorization: Token [SECRET]"),
    ("Cookie: sessionid=abc123; csrftoken=xyz789", "Cookie: [SECRET]"),
    ("set-cookie: session=eyJ1c2VyIjoxfQ; HttpOnly", "set-cookie: [SECRET]"),
    ("passphrase: the quick brown fox jumps", "passphrase: [SECRET]"),
    ("pin=4921", "pin=[SECRET]"),
    # vendor tokens
    ("glpat-abcdefghij0123456789", "[SECRET]"),
    ("SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "[SECRET]"),
    ("AC0123456789abcdef0123456789abcdef", "[SECRET]"),
    ("SK0123456789abcdef0123456789abcdef", "[SECRET]"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    ("pypi-AgEIcHlwaS5vcmcCJDU0YjM5ZjQ2LTk1MjQtNGU", "[SECRET]"),
    ("shpat_0123456789abcdef0123456789abcdef", "[SECRET]"),
    ("key-0123456789abcdef0123456789abcdef", "[SECRET]"),
    ("dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "[SECRET]"),
    ("HRKU-AAabcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "[SECRET]"),
    ("MTEyMzQ1Njc4OTAxMjM0NTY3OA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    ("bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0", "bot [SECRET]"),
    (
        "AccountKey=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu==;",  # noqa: E501
        "AccountKey=[SECRET];",
    ),
    ("gho_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    ("xoxp-1234567890-1234567890-abcdefghij", "[SECRET]"),
    (
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://hooks.slack.com/services/[SECRET]",
    ),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[SECRET]"),
    ("whsec_abcdefghijklmnopqrstuvwxyz012345", "[SECRET]"),
    ("ya29.a0AfH6SMBx-abcdefghijklmnopqrstuvwxyz", "[SECRET]"),
    ("GOCSPX-abcdefghijklmnopqrstuvwx12", "[SECRET]"),
    ("sk-proj-abc123def456ghi789jkl012mno345", "[SECRET]"),
    ("ASIAY34FZKBOKMUTVV7A", "[SECRET]"),
    ("0123456789abcdef0123456789abcdef-us12", "[SECRET]"),
    (
        "xai-abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        "[SECRET]",
    ),
    ("ghs_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    (
        "https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyz",
        "https://discord.com/api/webhooks/[SECRET]",
    ),
    # JWT
    (
        "jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",  # noqa: E501
        "jwt [JWT]",
    ),
    ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl", "Bearer [JWT]"),
    # entropy
    ("aws secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws secret [SECRET]"),
    ("token 8f14e45fceea167a5a36dedd4bea2543", "token [SECRET]"),
    ("key is 4f3c2a1b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a", "key is [SECRET]"),
    ("use 9fJ3kLm2Qx7Rt5Vw8Yz1Ab4Cd6Ef0Gh2 for the upload", "use [SECRET] for the upload"),
    ("secret: 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA'", "secret: '[SECRET]'"),
    ("the key 7Hq2mX9pL4vR8sT1wY6zB3nC5dF0gJ2kN7aQ9eU4 works", "the key [SECRET] works"),
    # encoded
    ("encoded c2stYW50LWFwaTAzLWFiY2RlZmdoaWprbG1ub3A=", "encoded [SECRET]"),
    ("am9obi5kb2VAZXhhbXBsZS5jb20=", "[EMAIL]"),
    ("cGFzc3dvcmQ9aHVudGVyMg==", "[SECRET]"),
    (
        "\\x73\\x6b\\x2d\\x61\\x6e\\x74\\x2d\\x61\\x70\\x69\\x30\\x33\\x2d\\x61\\x62\\x63\\x64\\x65\\x66\\x67\\x68",  # noqa: E501
        "[SECRET]",
    ),
    ("john\\u0040example.com", "[EMAIL]"),
    ("john%40example.com", "[EMAIL]"),
    ("john&#64;example.com", "[EMAIL]"),
    ("%73%6B%2D%61%6E%74%2D%61%70%69%30%33%2D%61%62%63%64%65%66%67%68", "[SECRET]"),
    ("\\u0073\\u006b-ant-api03-abcdefghijkl", "[SECRET]"),
    ("email=jane%2Edoe%40example%2Ecom&x=1", "email=[EMAIL]&x=1"),
    # more
    ("from 10.0.0.1 via 172.16.254.3", "from [IP] via [IP]"),
    ("ipv6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", "ipv6 [IP] up"),
    ("mapped ::ffff:192.0.2.128 too", "mapped [IP] too"),
    ("postgres://app:p@ss@db.internal:5432/app", "postgres://[CREDENTIALS]@db.internal:5432/app"),
    ("redis://:s3cr3tpass@cache:6379/0", "redis://[CREDENTIALS]@cache:6379/0"),
    ("https://user:pa55word@example.com/path?q=1", "https://[CREDENTIALS]@example.com/path?q=1"),
    ("GET /login?password=hunter2&next=/home", "GET /login?password=[SECRET]&next=/home"),
    ('{"apiKey":"AIzaSyA1234567890abcdefghijklmnopqrstuv"}', '{"apiKey":"[SECRET]"}'),
    ("pin=4921", "pin=[SECRET]"),
    ("PIN: 1234", "PIN: [SECRET]"),
    ("12 Rue de la Paix", "[ADDRESS]"),
    ("1 Infinite Loop, Cupertino", "[ADDRESS], Cupertino"),
    ("date_of_birth=1990-01-31", "date_of_birth=[DOB]"),
    ('{"dob": "1990-01-31"}', '{"dob": "[DOB]"}'),
    ("dateOfBirth: 1990-01-31", "dateOfBirth: [DOB]"),
]


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_corpus(text, expected):
    assert redact(text) == expected


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 150


KEEP = [
    "Version 1.2.3 was released on 2024-01-15.",
    "It costs $1,234.56 or 1.234,56 EUR, about 3.14159 of them.",
    "Meet at 12:30:45 on 15/01/2024.",
    "Order 12345678 shipped; 42 items; ref 2024-0001.",
    "Python 3.11.7 and Django 5.2.19",
    "Invoice INV-2024-000123 is due 2024-02-01.",
    "Order #A-10023-XK was delivered on March 5, 2024.",
    "Tracking 1Z999AA10123456784 is in transit.",
    "The meeting moved to 2024-03-15 at 09:00.",
    "Released v2.14.0-rc.1+build.20240115 today.",
    "Use node 20.11.1 with npm 10.2.4.",
    "Prices: €12.99, £7.50, ¥1200, 99 cents.",
    "The account id 550e8400-e29b-41d4-a716-446655440000 is active.",
    "request_id=7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixes it",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "See https://github.com/django/django/commit/3f786850e387550fdab836ed7e6dc881de23001b",
    "https://cdn.example.com/assets/app.3f786850e387550fdab836ed7e6dc881.js",
    "https://example.com/files/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/report.pdf",  # noqa: E501
    "https://docs.djangoproject.com/en/5.2/ref/settings/#std-setting-SECRET_KEY",
    '"integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="',  # noqa: E501
    'etag: "33a64df551425fcc55e4d42a148795d9f25f8922"',
    "def get_user_profile_by_id(user_id: int) -> UserProfile: ...",
    "class HttpResponseRedirectBase(HttpResponse): pass",
    "if password == confirm_password: return True",
    "def check_password(password: str, encoded: str) -> bool:",
    'password = os.environ["DB_PASSWORD"]',
    'token = request.headers.get("X-Token")',
    "max_tokens=1024, temperature=0.7",
    "input_tokens: 1234, output_tokens: 56",
    "std::vector<int> values; Foo::Bar::baz();",
    "for (int i = 0; i < 10; i++) { sum += i; }",
    "SELECT id, email FROM users WHERE id = 42;",
    "x86_64-linux-gnu and python3.11-dev",
    "The model claude-sonnet-4-5-20250929 answered.",
    "msg_01XFDUDYJgAACzvnptvVoYEL and req_011CRxyzAbc123DefGhi",
    "customer cus_NffrFeUfNV2Hib paid with pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "pod my-app-frontend-7d9f8b6c5-x2k4p restarted",
    "DJANGO_SETTINGS_MODULE=tests.settings",
    "PROMPT_PREFIX_CHARS=80",
    "a token of appreciation",
    "The key to success is patience.",
    "Password is required.",
    "I looked at the dot in the picture.",
    "We met at the park dot",
    "The ratio is 1:2:3 and 3/4 of 100.",
    "Call me maybe.",
    "Room 101, floor 3, building 7.",
    "Temperatures between -5 and 10 degrees.",
    "ISO 8601 and RFC 3339 and ISBN 978-3-16-148410-0",
    "Windows 10 build 19045.3803",
    "192.168.1 is not an address",
    "the year 1990 was good",
    "card 4111 1111 1111 1112 fails Luhn",
    "iban GB82 WEST 1234 5698 7654 33 fails mod 97",
    "ssn 000-12-3456 is not a valid area",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
    "TestRedactionCorpus2Cases and getElementsByTagName2",
    "-----BEGIN CERTIFICATE-----",
    "He was born in a small town.",
    "birthday party on Saturday",
    "Chapter 12 Green paragraphs",
    "emails go to support at the help desk",
]


@pytest.mark.parametrize("text", KEEP)
def test_ordinary_text_survives(text):
    assert redact(text) == text


FILLER = " and then the printer on floor three printed blank pages again" * 100


@pytest.mark.parametrize(("text", "expected"), CORPUS[::3])
@pytest.mark.parametrize("limit", [5, 20, 40, 80])
def test_prefix_is_a_prefix_of_the_whole_redacted_text(text, expected, limit):
    # Whatever straddles the cut, the stored prefix is the start of the
    # redacted whole: never a partial secret the whole redaction hides.
    for prompt in (
        text,
        "x " * 30 + text + FILLER,
        # across the prefix window's edge, before and after cutting back to a space
        FILLER[: limit + PREFIX_MARGIN + PREFIX_SLACK - 12] + text + FILLER,
        FILLER[: limit + PREFIX_MARGIN - 12] + text + FILLER,
        FILLER[: 1024 - 12] + text + FILLER,
        FILLER[: 4096 - 12] + text + FILLER,
    ):
        whole = escape_controls(redact(prompt))
        prefix = prompt_prefix(prompt, limit=limit)
        assert len(prefix) <= limit
        assert whole.startswith(prefix.removesuffix("…"))


def test_prefix_of_a_secret_straddling_the_cut():
    key = "sk-ant-api03-" + "q1w2e3r4t5" * 3
    for offset in range(60, 90, 3):
        prompt = "x" * offset + " " + key + " done"
        prefix = prompt_prefix(prompt, limit=80)
        assert "sk-ant" not in prefix and "q1w2" not in prefix


def test_prefix_of_a_long_random_token_cut_by_the_window():
    token = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY" * 400  # longer than the window
    prefix = prompt_prefix("see " + token + " end", limit=80)
    assert "aB3d" not in prefix


def test_prefix_window_ends_at_a_whitespace():
    seen = []

    def spy(text):
        seen.append(text)
        return redact(text)

    prompt = "word " * 2000
    prompt_prefix(prompt, limit=80, redactor=spy)
    assert seen[0].endswith("word")
