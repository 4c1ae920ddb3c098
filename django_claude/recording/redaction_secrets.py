"""The redactor's secret rules: keys, tokens and credentials.

Private keys (PEM, any case, header words split by line breaks, ``\\n``
escapes), JWTs, ``user:password@`` in URLs, webhook URLs, vendor token
formats after gitleaks' and detect-secrets' rules (Anthropic, OpenAI,
AWS, GitHub, GitLab, Slack, Stripe, SendGrid, Twilio, npm, PyPI, Google,
Shopify, Mailgun, DigitalOcean, Heroku, Hugging Face, Discord, Telegram,
Azure, and more), and labelled secrets: ``password: correct horse``,
``newPassword=``, ``DBPASSWORD=``, ``"password": "..."``,
``password%3D...``, ``<password>...</password>``, ``Authorization:`` and
``Cookie:`` headers, ``Bearer <token>``. Unlabelled secrets are
``redaction_tokens``'s.
"""

from __future__ import annotations

import re

from django_claude.recording.redaction_rules import (
    CREDENTIALS,
    JWT,
    LOWER_PLACEHOLDER,
    PLACEHOLDER,
    PRIVATE_KEY,
    SECRET,
    LowerRule,
    Rule,
    bounded,
    contains,
    expand_words,
    finds,
    has_digit,
    original,
    trie,
    word_trie,
)

# --------------------------------------------------------------------------
# Private keys, JWTs, credentials in URLs

# A PEM private key in any case, its header words possibly split by a line
# break. The body stops at the END line, or (a key cut short) after the
# base64 lines that follow the header. Possessive repeats: one pass per key.
_PEM_HEADER = (
    r"-----\s{0,2}BEGIN[A-Z0-9 _\t\r\n-]{0,40}?PRIVATE\s{1,4}KEY(?:\s{1,4}BLOCK)?\s{0,2}-----"
)
_PEM_BODY_CHAR = r"[A-Z0-9+/=\s:,.\\]|-(?!----\s{0,2}(?:END|BEGIN))"
PRIVATE_KEY_RULE = Rule(
    "private_key",
    re.compile(
        rf"(?i){_PEM_HEADER}"
        rf"(?:(?:{_PEM_BODY_CHAR}){{0,200000}}+-----\s{{0,2}}END[A-Z0-9 _\t\r\n-]{{0,60}}?-----"
        r"(?:\\[nr])*"
        r"|(?:(?:\s|\\[nr])++[A-Z0-9+/=]{16,}+)*+)"
    ),
    PRIVATE_KEY,
    gate=contains("-----"),
)

JWT_RULE = Rule(
    "jwt",
    re.compile(bounded(r"eyJ[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]{2,}+(?:\.[A-Za-z0-9_-]*+){1,3}")),
    JWT,
    gate=contains("eyJ"),
)

# user:password@ after a scheme; the password may hold an unescaped "@", so
# the match runs to the last "@" before the path.
URL_CREDENTIALS_RULE = Rule(
    "url_credentials",
    re.compile(r"(://)[^\s/?#@:\[\]]{0,256}:[^\s/?#\[\]]{1,256}@"),
    rf"\1{CREDENTIALS}@",
    gate=contains("://"),
)

# --------------------------------------------------------------------------
# Vendor token formats (after gitleaks' and detect-secrets' rules). Each
# starts with a literal character; the boundary is checked after it.

VENDOR_TOKENS = [
    r"sk-ant-[A-Za-z0-9_-]{8,}+",  # Anthropic
    r"sk-(?:proj-|svcacct-|admin-|or-v1-)?(?=[A-Za-z0-9_-]{0,200}[0-9A-Z])[A-Za-z0-9_-]{20,}+",
    r"sk_(?:live|test)_[0-9A-Za-z]{10,}+",  # Stripe
    r"rk_(?:live|test)_[0-9A-Za-z]{10,}+",
    r"pk_(?:live|test)_[0-9A-Za-z]{10,}+",
    r"whsec_[A-Za-z0-9+/=]{20,}+",
    r"A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA|3T[A-Z0-9])[0-9A-Z]{16}(?![0-9A-Za-z])",  # AWS
    r"AIza[0-9A-Za-z_-]{35}",  # Google API key
    r"GOCSPX-[A-Za-z0-9_-]{20,}+",  # Google OAuth client secret
    r"ya29\.[0-9A-Za-z_-]{20,}+",  # Google OAuth access token
    r"gh[pousr]_[A-Za-z0-9]{30,}+",  # GitHub
    r"github_pat_[A-Za-z0-9_]{22,}+",
    r"gl(?:pat|dt|ptt|rt|soat|ffct|ft|imt|agent|oas|cbt)-[0-9A-Za-z_.-]{20,}+",  # GitLab
    r"GR1348941[A-Za-z0-9_-]{20,}+",
    r"xox[abposre]-[A-Za-z0-9-]{10,}+",  # Slack
    r"xapp-[0-9]-[A-Za-z0-9-]{10,}+",
    r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}",  # SendGrid
    r"AC[0-9a-fA-F]{32}(?![0-9A-Za-z])",  # Twilio account SID
    r"SK[0-9a-fA-F]{32}(?![0-9A-Za-z])",  # Twilio API key
    r"npm_[A-Za-z0-9]{30,}+",
    r"pypi-(?=[A-Za-z0-9_-]{0,200}[0-9A-Z])[A-Za-z0-9_-]{20,}+",
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"key-[0-9a-f]{32}(?![0-9A-Za-z])",  # Mailgun
    r"pubkey-[0-9a-f]{32}(?![0-9A-Za-z])",
    r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
    r"HRKU-[A-Za-z0-9_-]{20,}+",  # Heroku
    r"hf_[A-Za-z0-9]{30,}+",  # Hugging Face
    r"api_org_[A-Za-z0-9]{30,}+",
    r"dapi[a-f0-9]{32}(?:-[0-9])?",  # Databricks
    r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}+",  # Doppler
    r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}",  # Dynatrace
    r"lin_api_[A-Za-z0-9]{40}",  # Linear
    r"ntn_[A-Za-z0-9]{40,}+",  # Notion
    r"secret_[A-Za-z0-9]{43}(?![A-Za-z0-9])",
    r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}",  # Postman
    r"pul-[a-f0-9]{40}",  # Pulumi
    r"pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_.=-]{32,64}",  # PlanetScale
    r"sntry[su]_[A-Za-z0-9+/=_]{40,}+",  # Sentry
    r"hv[sb]\.[A-Za-z0-9_-]{90,}+",  # Vault
    r"glc_[A-Za-z0-9+/]{32,}+={0,2}",  # Grafana
    r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
    r"sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}+",  # Square
    r"NR(?:AK|II|JS)-[A-Za-z0-9]{19,32}",  # New Relic
    r"AGE-SECRET-KEY-1[0-9A-Z]{58}",
    r"ops_eyJ[A-Za-z0-9+/]{100,}+={0,3}",  # 1Password
    r"ATATT3[A-Za-z0-9_=-]{100,}+",  # Atlassian
    r"fo1_[A-Za-z0-9_-]{43}",  # Fly.io
    r"figd_[A-Za-z0-9_-]{40,}+",  # Figma
    r"sbp_[a-f0-9]{40}",  # Supabase
    r"LTAI[A-Za-z0-9]{20}",  # Alibaba
    r"gsk_[A-Za-z0-9]{48,}+",  # Groq
    r"r8_[A-Za-z0-9]{37}",  # Replicate
    r"pplx-[A-Za-z0-9]{40,}+",  # Perplexity
    r"xai-[A-Za-z0-9]{60,}+",  # xAI
]

# A token cut by a line break goes on with the next line when that line is
# only token characters (a key pasted across two lines).
_CONTINUED = (
    r"(?:(?:\r?\n|\\n)(?=[A-Za-z0-9_+/=-]{6,}+[ \t]*(?:\r?\n|\\n|$))[A-Za-z0-9_+/=-]{6,}+)?"
)


def _by_first_character(patterns: list[str]) -> str:
    """One alternative per first character, so the engine tries few per position."""
    groups: dict[str, list[str]] = {}
    for pattern in patterns:
        groups.setdefault(pattern[0], []).append(pattern[1:])
    return "|".join(bounded(f"{first}(?:{trie(rests)})") for first, rests in groups.items())


VENDOR_RULE = Rule(
    "vendor_token",
    re.compile(f"(?:{_by_first_character(VENDOR_TOKENS)}){_CONTINUED}"),
    SECRET,
)

# Formats that do not start with a literal, each behind a cheap gate.
DISCORD_RULE = Rule(
    "discord_token",
    re.compile(
        bounded(r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}")
        + r"(?![A-Za-z0-9_-])"
    ),
    SECRET,
    gate=finds(r"\.[A-Za-z0-9_-]{6}\."),  # its middle part (a literal first: a fast scan)
)
TELEGRAM_RULE = Rule(
    "telegram_token",
    re.compile(bounded(r"[0-9][0-9]{7,9}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])", "A-Za-z0-9_:")),
    SECRET,
    gate=finds(r":[A-Za-z0-9_-]{35}"),
)
AZURE_AD_RULE = Rule(
    "azure_ad_secret",
    re.compile(r"(?<![A-Za-z0-9_~.])[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}"),
    SECRET,
    gate=contains("Q~"),
)
MAILCHIMP_RULE = Rule(
    "mailchimp_key",
    re.compile(bounded(r"[0-9a-f][0-9a-f]{31}-us[0-9]{1,2}(?![0-9A-Za-z])")),
    SECRET,
    gate=contains("-us"),
)
WEBHOOK_RULE = Rule(
    "webhook",
    re.compile(
        r"(hooks\.slack\.com/(?:services|workflows|triggers)/|"
        r"discord(?:app)?\.com/api/webhooks/)[A-Za-z0-9/_+-]{10,}+"
    ),
    rf"\1{SECRET}",
    gate=contains("hooks"),
)


# --------------------------------------------------------------------------
# Labelled secrets, matched in the lower-cased text (see LowerRule)

# Names whose value is always secret. Any prefix is allowed (newPassword,
# DBPASSWORD, db_password, x-api-key), so the match starts at the name.
_STRONG_NAMES = (
    r"password|passwd|passphrase|passcode|secret[_-]?access[_-]?key|secret[_-]?key|secret"
    r"|client[_-]?secret|private[_-]?key|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?"
    r"|account[_-]?key|shared[_-]?access[_-]?key|signing[_-]?key|encryption[_-]?key"
    r"|master[_-]?key|app[_-]?key|(?:access|refresh|auth|id|bearer|session|csrf|xsrf|api|sas"
    r"|oauth|bot|security)[_-]?token|credentials?|session[_-]?(?:id|key)|sessionid"
)
# Short or common names: the value must be one word of six or more
# characters holding a digit (and not only digits), so ``max_token=100`` or
# ``sort key: name`` survive; and the name must not follow a lower-case
# letter (``spin=3`` is not a PIN).
_WEAK_NAMES = r"token|auth|pwd|pass|pin|key|sig|signature|salt|otp"
_WEAK = re.compile(rf"(?:{_WEAK_NAMES})[0-9]{{0,2}}")
_NAMES = trie(
    expand_words(_STRONG_NAMES) + [f"{w[0]}(?<![a-z].){w[1:]}" for w in expand_words(_WEAK_NAMES)]
)

# Values that are not secrets: placeholders (redacting twice changes
# nothing), masks, template and environment references, literals and types.
_VALUE_GUARD = (
    rf"(?!{LOWER_PLACEHOLDER}"
    r"|\*{3}|<[^>\s]{1,40}>|\$\{?[a-z_]|\{\{|%\("
    r"|(?:none|null|nil|undefined|true|false)\b"
    r"|(?:os\.environ|os\.getenv|getenv|process\.env|settings\.|env\()"
    r"|(?:str|bytes|string|int|bool|optional|secretstr)\b"
    r"|(?:return|await|yield|raise|lambda|not|and|or|if|else|new)\b)"
)
_WORD = r"[^\s\"'<>,;\[\]{}()\x00]++"
_SINGLE = r"(?:[^\s&;,\"'<>\[\]{}\x00%]|%(?!26|3b)[0-9a-f]{2})++"
_SEP = r"[\"']?[ \t]{0,3}(?:=>|:=|->|=(?!=)|:(?![:/]))"

KEY_VALUE = re.compile(
    rf"""(?x)
    (?P<key>(?:{_NAMES})[0-9]{{0,2}})
    (?:
        (?P<qsep>{_SEP}[ \t]{{0,3}})(?P<quote>["'])
            (?P<quoted>(?:[^"'\\\n\x00]|\\.|(?!(?P=quote))["']){{1,512}}+)(?P=quote)
      | (?P<msep>{_SEP}[ \t]{{1,3}}){_VALUE_GUARD}
            (?P<multi>{_WORD}(?:[ \t]+{_WORD}){{0,7}}{_CONTINUED})
      | (?P<ssep>{_SEP}|%3[ad]){_VALUE_GUARD}(?P<single>{_SINGLE}{_CONTINUED})
      | (?P<xsep>>)(?P<xml>[^<\n\x00]{{1,512}}+)(?=</)
    )
    """
)


def _key_value(match: re.Match[str], text: str) -> str | None:
    value = ""
    for group in ("quoted", "multi", "single", "xml"):
        if match.start(group) >= 0:
            value = text[match.start(group) : match.end(group)]
            break
    if PLACEHOLDER.match(value):
        return None  # redacted already
    weak = _WEAK.fullmatch(match.group("key"))
    if weak and not _weak_value_ok(weak.group(0), value):
        return None
    key = original(match, text, "key")
    if match.start("quote") >= 0:
        quote = match.group("quote")
        return f"{key}{original(match, text, 'qsep')}{quote}{SECRET}{quote}"
    sep = next(
        original(match, text, g) or "" for g in ("msep", "ssep", "xsep") if match.start(g) >= 0
    )
    return f"{key}{sep}{SECRET}"


def _weak_value_ok(name: str, value: str) -> bool:
    if name.startswith(("pin", "otp")):  # PINs and one-time codes are short numbers
        return 4 <= len(value) <= 8 and value.isdigit()
    return (
        len(value) >= 6
        and has_digit(value)
        and not value.isdigit()
        and " " not in value
        and "\t" not in value
    )


KEY_VALUE_RULE = LowerRule(
    "key_value",
    KEY_VALUE,
    _key_value,
    words=("pass", "pwd", "secret", "key", "token", "auth", "credential", "session", "pin",
           "sig", "salt", "otp"),
)  # fmt: skip

# Authorization-style headers: everything after the scheme is secret.
HEADER = re.compile(
    r"(?P<label>"
    + word_trie(
        "authorization|proxy-authorization|cookie|set-cookie|x-auth-token|x-access-token",
        boundary=True,
    )
    + r")(?P<sep>[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:bearer|basic|token|digest|negotiate|ntlm"
    r"|aws4-hmac-sha256|apikey|key)[ \t]+)?+)"
    rf"{_VALUE_GUARD}[^\s\"'][^\r\n\"'\x00]*+"
)


def _labelled(match: re.Match[str], text: str) -> str:
    return (original(match, text, "label") or "") + (original(match, text, "sep") or "") + SECRET


HEADER_RULE = LowerRule(
    "header", HEADER, _labelled, words=("authorization", "cookie", "x-auth", "x-access")
)

# "Bearer <token>" anywhere; the token needs a digit or a symbol, so "a
# token of appreciation" survives.
SCHEME = re.compile(
    r"(?P<label>(?:" + word_trie("bearer|basic|token", boundary=True) + r")(?P<sep>[ \t]+))"
    rf"(?!{LOWER_PLACEHOLDER})(?=[a-z0-9._~+/=-]{{0,500}}[0-9+/=_~.-])[a-z0-9._~+/=-]{{8,}}+"
)


def _scheme(match: re.Match[str], text: str) -> str:
    return (original(match, text, "label") or "") + SECRET


SCHEME_RULE = LowerRule("scheme", SCHEME, _scheme, words=("bearer", "basic", "token"))
