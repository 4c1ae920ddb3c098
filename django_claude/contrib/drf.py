"""Django REST framework: refuse a request with 429 before the view runs when
the user's Claude quota for the view's feature is spent.

    class ChatView(APIView):
        claude_feature = "chat"
        throttle_classes = [ClaudeQuotaThrottle]

DRF answers 429 with ``Retry-After`` from ``wait()``. A view without
``claude_feature`` is checked against the quotas of every feature.
"""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import BaseThrottle

from django_claude.client.allowance import spent_quota


class ClaudeQuotaThrottle(BaseThrottle):
    """Throttles a view whose user (or tenant, or the site) has spent a quota."""

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        spent = spent_quota(
            user=getattr(request, "user", None), feature=getattr(view, "claude_feature", None)
        )
        self.retry_after = None if spent is None else spent.retry_after
        return spent is None

    def wait(self) -> float | None:
        return self.retry_after
