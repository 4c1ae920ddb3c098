"""A call's arguments, checked before anything is sent or spent.

Every mistake is a ``TypeError`` or ``ValueError`` naming the argument,
raised before any request.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.module_loading import import_string

from django_claude.conf import conf

# Arguments that django-claude owns; passing them through **create_kwargs is a mistake.
RESERVED_KWARGS = frozenset({"model", "messages", "max_tokens", "system", "stream", "timeout"})
MAX_TAGS = 20
MAX_TAG_TEXT = 1000  # characters; stored cut to 200
MAX_TAG_INT = 2**63 - 1  # what a JSON column and every database can hold as an integer
MAX_OUTPUT = 1_000_000  # tokens: beyond any model's output limit, so a typo is caught here
MAX_CACHE_TTL = 365 * 24 * 3600
ROLES = frozenset({"user", "assistant"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class CallRequest:
    """A validated call: what goes upstream, and what is recorded about it."""

    feature: str
    params: dict[str, Any]  # messages.create arguments, without model and timeout
    prompt_text: str  # the text the record's redacted prefix comes from
    user_id: Any
    user_ref: str
    cache_ttl: int | None
    idempotency_key: str
    tags: dict[str, Any]
    smell_test: bool | None = None  # True/False: judge this call, or not, whatever the rate
    tenant: str = ""  # whom per-tenant quotas charge (``tenant=`` or DJANGO_CLAUDE_TENANT)

    @property
    def canary_key(self) -> str:
        """Whom a canary's arm is chosen for: the user, else the tenant; ""
        (anonymous: drawn at random) for neither."""
        if self.user_ref:
            return f"user:{self.user_ref}"
        return f"tenant:{self.tenant}" if self.tenant else ""


def _check_text(value: Any, where: str) -> None:
    """Refuse text the API cannot receive (lone surrogates cannot be UTF-8)."""
    if isinstance(value, str):
        if value.isascii():  # no copy: a 1 MB ASCII prompt costs microseconds
            return
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{where} contains a lone surrogate at index {exc.start}; "
                "decode the user's input with errors='replace' first"
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_text(item, f"{where}[{i}]")


def _check_label(value: Any, name: str, *, limit: int) -> str:
    """A short identifier stored as it is: a non-empty str, no control characters."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters (got {len(value)})")
    if _CONTROL.search(value):
        raise ValueError(f"{name} must not contain control characters (NUL, newlines, ...)")
    _check_text(value, name)
    return value


def _check_content(content: Any, where: str) -> None:
    """A message's (or the system prompt's) content: text, or a list of blocks."""
    if isinstance(content, str):
        return
    if not isinstance(content, (list, tuple)):
        raise TypeError(f"{where} must be a str or a list of content blocks")
    for i, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise TypeError(f"{where}[{i}] must be a dict with a 'type', e.g. {{'type': 'text'}}")


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(
                f"messages[{i}] must be a dict with 'role' and 'content', "
                f"not {type(message).__name__}"
            )
        if message.get("role") not in ROLES:
            raise ValueError(f"messages[{i}]['role'] must be 'user' or 'assistant'")
        if "content" not in message:
            raise ValueError(f"messages[{i}] has no 'content'")
        _check_content(message["content"], f"messages[{i}]['content']")
    _check_text(messages, "messages")
    return [dict(message) for message in messages]


def _last_user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    for message in reversed(list(messages)):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, (list, tuple)):
            return " ".join(
                str(block.get("text", ""))
                for block in content
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
    return ""


def _positive_int(value: Any, name: str, *, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= limit:
        raise ValueError(f"{name} must be between 1 and {limit} (got {value})")
    return value


def _user_refs(user: Any) -> tuple[Any, str]:
    """(the user FK value, the user_ref string) for ``user=``."""
    if user is None:
        return None, ""
    if isinstance(user, bool):
        raise TypeError("user must be a user, a str or int id, or None, not a bool")
    if isinstance(user, (str, int, uuid.UUID)):
        return None, _check_label(str(user), "user", limit=150)
    if not hasattr(user, "is_authenticated") or not hasattr(user, "pk"):
        raise TypeError(
            f"user must be a user (request.user), a str or int id, or None, "
            f"not {type(user).__name__}"
        )
    if not user.is_authenticated or user.pk is None:
        return None, ""
    # Only the site's user model can go in the foreign key; any other object
    # with a pk (a custom principal, say) is kept as a reference.
    user_id = user.pk if isinstance(user, get_user_model()) else None
    return user_id, str(user.pk)


def _tenant(user: Any, tenant: Any) -> str:
    """The call's tenant: ``tenant=`` as given, else ``DJANGO_CLAUDE_TENANT(user)``."""
    if tenant is None:
        derive = conf.TENANT
        if derive is None or user is None:
            return ""
        function = import_string(derive) if isinstance(derive, str) else derive
        tenant = function(user)
        if tenant is None or tenant == "":
            return ""
        if isinstance(tenant, int) and not isinstance(tenant, bool):
            tenant = str(tenant)
        if not isinstance(tenant, str):
            raise TypeError(
                f"DJANGO_CLAUDE_TENANT returned a {type(tenant).__name__}: return a str, or None"
            )
        return _check_label(tenant, "the tenant DJANGO_CLAUDE_TENANT returned", limit=200)
    if isinstance(tenant, int) and not isinstance(tenant, bool):
        tenant = str(tenant)
    return _check_label(tenant, "tenant", limit=200)


def scope_of(user: Any, tenant: Any) -> tuple[str, str]:
    """(user reference, tenant) that quotas charge a call of ``user=`` and ``tenant=`` to."""
    _, user_ref = _user_refs(user)
    return user_ref, _tenant(user, tenant)


def _check_tags(tags: Any) -> dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a dict, not {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"tags: at most {MAX_TAGS} (got {len(tags)})")
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"tag names must be non-empty strings, not {key!r}")
        if isinstance(value, str) and len(value) > MAX_TAG_TEXT:
            raise ValueError(f"tag {key!r} must be at most {MAX_TAG_TEXT} characters")
        if value is None or isinstance(value, (bool, str)):
            continue
        if isinstance(value, int):
            if not -MAX_TAG_INT <= value <= MAX_TAG_INT:
                raise ValueError(f"tag {key!r} is out of range (a 64-bit integer at most)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"tag {key!r} must be a finite number, not {value!r}")
        else:
            raise TypeError(f"tag {key!r} must be a str, number, bool or None")
        _check_text(key, f"tags[{key!r}]")
    _check_text(dict(tags), "tags")
    return dict(tags)


def _check_create_kwargs(create_kwargs: dict[str, Any]) -> None:
    """Arguments django-claude owns. (An argument the SDK does not know is its
    TypeError, raised before any request is sent, and recorded as ``error``.)"""
    reserved = RESERVED_KWARGS & set(create_kwargs)
    if reserved:
        raise TypeError(
            f"{', '.join(sorted(reserved))} cannot be passed to call(): the model comes from "
            "the feature's route, the timeout from DJANGO_CLAUDE_TIMEOUT; use stream() to stream"
        )


def prepare(
    prompt: str | None,
    *,
    feature: str,
    user: Any,
    system: Any,
    max_tokens: int | None,
    messages: list[dict[str, Any]] | None,
    cache_ttl: int | None,
    idempotency_key: str | None,
    tags: Mapping[str, Any] | None,
    create_kwargs: dict[str, Any],
    smell_test: bool | None = None,
    tenant: str | None = None,
) -> CallRequest:
    """Validate the arguments of a call. Every mistake raises ``TypeError`` or
    ``ValueError`` naming the argument, before any request is made."""
    if feature is None:
        raise ValueError("feature= is required: a non-empty string naming the caller")
    _check_label(feature, "feature", limit=100)
    if (prompt is None) == (messages is None):
        raise ValueError("pass either a prompt or messages=[...], not both and not neither")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        if not prompt.strip():
            raise ValueError("prompt is empty")
        _check_text(prompt, "prompt")
        message_list: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        prompt_text = prompt
    else:
        message_list = _check_messages(messages)
        prompt_text = _last_user_text(message_list)
    if system is not None:
        _check_content(system, "system")
        _check_text(system, "system")
    limit = _positive_int(
        conf.MAX_TOKENS if max_tokens is None else max_tokens, "max_tokens", limit=MAX_OUTPUT
    )
    if cache_ttl is not None:
        _positive_int(cache_ttl, "cache_ttl", limit=MAX_CACHE_TTL)
    if idempotency_key is not None:
        _check_label(idempotency_key, "idempotency_key", limit=200)
    clean_tags = _check_tags(tags)
    if smell_test is not None and not isinstance(smell_test, bool):
        raise TypeError("smell_test must be True, False or None")
    _check_create_kwargs(create_kwargs)
    params: dict[str, Any] = {"max_tokens": limit, "messages": message_list, **create_kwargs}
    if system is not None:
        params["system"] = system
    user_id, user_ref = _user_refs(user)
    return CallRequest(
        feature=feature,
        params=params,
        prompt_text=prompt_text,
        user_id=user_id,
        user_ref=user_ref,
        cache_ttl=cache_ttl,
        idempotency_key=idempotency_key or "",
        tags=clean_tags,
        smell_test=smell_test,
        tenant=_tenant(user, tenant),
    )


# The arguments of call() that are not passed on to messages.create.
CALL_ARGUMENTS = (
    "feature",
    "user",
    "system",
    "max_tokens",
    "messages",
    "cache_ttl",
    "idempotency_key",
    "tags",
    "smell_test",
    "tenant",
)


def prepare_from(prompt: str | None, kwargs: dict[str, Any]) -> CallRequest:
    """``prepare`` for wrappers that take ``call``'s arguments as ``**kwargs``:
    the known ones are popped, the rest go to ``messages.create``."""
    known = {name: kwargs.pop(name, None) for name in CALL_ARGUMENTS}
    return prepare(prompt, **known, create_kwargs=kwargs)
