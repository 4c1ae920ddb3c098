"""A call's arguments, checked before anything is sent or spent.

Every mistake is a ``TypeError`` or ``ValueError`` naming the argument,
raised before any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django_claude.conf import conf

# Arguments that django-claude owns; passing them through **create_kwargs is a mistake.
RESERVED_KWARGS = frozenset({"model", "messages", "max_tokens", "system", "stream", "timeout"})
MAX_TAGS = 20


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


def _check_text(value: Any, where: str) -> None:
    """Refuse text the API cannot receive (lone surrogates cannot be UTF-8)."""
    if isinstance(value, str):
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


def _last_user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    for message in reversed(list(messages)):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(block.get("text", ""))
                for block in content
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
    return ""


def _user_refs(user: Any) -> tuple[Any, str]:
    if user is None:
        return None, ""
    if isinstance(user, str):
        return None, user
    if isinstance(user, int):
        return None, str(user)
    if not getattr(user, "is_authenticated", False):
        return None, ""
    return user.pk, str(user.pk)


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
) -> CallRequest:
    """Validate the arguments of a call; raise ``TypeError``/``ValueError`` early."""
    if not isinstance(feature, str) or not feature.strip():  # None: not given
        raise ValueError("feature= is required: a non-empty string naming the caller")
    if len(feature) > 100:
        raise ValueError("feature must be at most 100 characters")
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
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
        _check_text(messages, "messages")
        message_list = list(messages)
        prompt_text = _last_user_text(message_list)
    if system is not None:
        _check_text(system, "system")
    limit = conf.MAX_TOKENS if max_tokens is None else max_tokens
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError("max_tokens must be a positive int")
    if cache_ttl is not None and (not isinstance(cache_ttl, int) or cache_ttl < 1):
        raise ValueError("cache_ttl must be a positive number of seconds")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not idempotency_key or len(idempotency_key) > 200
    ):
        raise ValueError("idempotency_key must be a non-empty string of at most 200 characters")
    clean_tags = dict(tags or {})
    if len(clean_tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    for key, value in clean_tags.items():
        if not isinstance(key, str):
            raise TypeError("tag names must be strings")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"tag {key!r} must be a str, number, bool or None")
    if smell_test is not None and not isinstance(smell_test, bool):
        raise TypeError("smell_test must be True, False or None")
    reserved = RESERVED_KWARGS & set(create_kwargs)
    if reserved:
        raise TypeError(
            f"{', '.join(sorted(reserved))} cannot be passed to call(): the model comes from "
            "the feature's route, the timeout from DJANGO_CLAUDE_TIMEOUT; use stream() to stream"
        )
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
)


def prepare_from(prompt: str | None, kwargs: dict[str, Any]) -> CallRequest:
    """``prepare`` for wrappers that take ``call``'s arguments as ``**kwargs``:
    the known ones are popped, the rest go to ``messages.create``."""
    known = {name: kwargs.pop(name, None) for name in CALL_ARGUMENTS}
    return prepare(prompt, **known, create_kwargs=kwargs)
