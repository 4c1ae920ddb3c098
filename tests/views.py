from __future__ import annotations

from django.http import HttpRequest, JsonResponse

import django_claude


def ask(request: HttpRequest) -> JsonResponse:
    result = django_claude.call(request.GET.get("q", "hello"), feature="tests-view")
    return JsonResponse(
        {"text": result.text, "outcome": result.outcome, "request_id": str(result.request_id)}
    )
