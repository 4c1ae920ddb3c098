"""The fake's Usage & Cost Admin API: ``GET /v1/organizations/cost_report``.

Scripted data, served the way Anthropic serves it: daily buckets from
``starting_at`` (inclusive) to ``ending_at`` (exclusive), ``limit`` buckets a
page with ``has_more`` and a ``next_page`` token, costs grouped by
description (one result per model and kind of cost), and each ``amount`` a
decimal string in cents. Only GET; an admin key is required (``x-api-key``).

    fake.admin.costs[datetime.date(2026, 11, 3)] = {"claude-sonnet-4-6": Decimal("1.25")}
    fake.admin.fault = Fault(status=500)   # or Fault(delay=5): a slow API
"""

from __future__ import annotations

import base64
import datetime
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django_claude.testing.faults import Fault

COST_REPORT = "/v1/organizations/cost_report"
DEFAULT_LIMIT, MAX_LIMIT = 7, 31  # days a page, as the real API


@dataclass
class FakeAdminAPI:
    """What ``cost_report`` answers: ``costs[day][model]`` in USD."""

    costs: dict[datetime.date, dict[str, Decimal]] = field(default_factory=dict)
    # Web search fees per day, reported as the real API does: no model.
    web_search: dict[datetime.date, Decimal] = field(default_factory=dict)
    # Code execution's container hours per day, in USD: no model either.
    code_execution: dict[datetime.date, Decimal] = field(default_factory=dict)
    # Other workspaces of the organization: workspace id -> day -> model -> USD
    # (``costs`` and ``web_search`` are the default workspace's: id null).
    workspaces: dict[str, dict[datetime.date, dict[str, Decimal]]] = field(default_factory=dict)
    key_prefix: str = "sk-ant-admin"
    fault: Fault | None = None
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any] | str]:
        """The status of a GET of ``path``, and its JSON body (or an error's message)."""
        url = urlsplit(path)
        if url.path != COST_REPORT:
            return _error(404, f"no route {url.path}")
        query = parse_qs(url.query)
        with self._lock:
            self.requests.append(query)
        fault = self.fault
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status:
            return _error(fault.status, f"fake {fault.status}")
        key = {k.lower(): v for k, v in headers.items()}.get("x-api-key", "")
        if not key.startswith(self.key_prefix):
            return _error(401, "an admin key (sk-ant-admin...) is required")
        try:
            return 200, self.report(query)
        except ValueError as exc:
            return _error(400, str(exc))

    def report(self, query: dict[str, list[str]]) -> dict[str, Any]:
        first = _day(query, "starting_at")
        if first is None:
            raise ValueError("starting_at is required")
        end = _day(query, "ending_at") or first + datetime.timedelta(days=DEFAULT_LIMIT)
        limit = min(MAX_LIMIT, int((query.get("limit") or [str(DEFAULT_LIMIT)])[0]))
        page = (query.get("page") or [""])[0]
        if page:
            first = datetime.date.fromisoformat(base64.b64decode(page[5:]).decode())
        days: list[datetime.date] = []
        day = first
        while day < end and len(days) < limit:
            days.append(day)
            day += datetime.timedelta(days=1)
        group_by = query.get("group_by[]", [])
        grouped, by_workspace = "description" in group_by, "workspace_id" in group_by
        data = [self._bucket(d, grouped, by_workspace) for d in days]
        more = day < end
        token = "page_" + base64.b64encode(day.isoformat().encode()).decode() if more else None
        return {"data": data, "has_more": more, "next_page": token}

    def _bucket(self, day: datetime.date, grouped: bool, by_workspace: bool) -> dict[str, Any]:
        spaces: dict[str | None, dict[str, Decimal]] = {None: dict(self.costs.get(day, {}))}
        for workspace, days in self.workspaces.items():
            spaces[workspace] = dict(days.get(day, {}))
        if not by_workspace:  # the organization's total per model
            merged: dict[str, Decimal] = {}
            for costs in spaces.values():
                for model, usd in costs.items():
                    merged[model] = merged.get(model, Decimal(0)) + usd
            spaces = {None: merged}
        search = self.web_search.get(day)
        containers = self.code_execution.get(day)
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
        results: list[dict[str, Any]] = []
        if grouped:
            for space, costs in spaces.items():
                for model, usd in sorted(costs.items()):
                    results.append(dict(_result(usd, model), workspace_id=space))
            if search:
                results.append(dict(_result(search, None), cost_type="web_search"))
            if containers:
                results.append(dict(_result(containers, None), cost_type="code_execution"))
        else:
            total = sum(
                (sum(c.values(), Decimal(0)) for c in spaces.values()),
                (search or Decimal(0)) + (containers or Decimal(0)),
            )
            results = [_result(total, None)] if total else []
        return {
            "starting_at": start.isoformat().replace("+00:00", "Z"),
            "ending_at": (start + datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "results": results,
        }


def _error(status: int, message: str) -> tuple[int, str]:
    return status, message


def _result(usd: Decimal, model: str | None) -> dict[str, Any]:
    return {
        "currency": "USD",
        "amount": str(usd * 100),  # cents, as a decimal string
        "workspace_id": None,
        "description": f"{model} Usage - Input and Output Tokens" if model else None,
        "cost_type": "tokens" if model else None,
        "context_window": "0-200k" if model else None,
        "model": model,
        "service_tier": "standard" if model else None,
        "token_type": None,
    }


def _day(query: dict[str, list[str]], name: str) -> datetime.date | None:
    values = query.get(name)
    if not values:
        return None
    try:
        return datetime.datetime.fromisoformat(values[0].replace("Z", "+00:00")).date()
    except ValueError:
        raise ValueError(f"{name} is not an RFC 3339 timestamp") from None
