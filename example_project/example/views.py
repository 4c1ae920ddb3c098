"""A view that asks Claude, the way a site would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django import forms
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

import django_claude

FEATURES = [
    ("example-ask", "General question"),
    ("support-summary", "Summarise a support ticket"),
    ("search-answer", "Answer from search results"),
]


class AskForm(forms.Form):
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=4000)
    feature = forms.ChoiceField(choices=FEATURES, initial="example-ask", required=False)


def ask(request: HttpRequest) -> HttpResponse:
    form = AskForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        result = django_claude.call(
            form.cleaned_data["question"],
            feature=form.cleaned_data.get("feature") or "example-ask",
            user=request.user,
            system="You are a helpful assistant for a small Django site. Answer briefly.",
        )
    return render(request, "example/ask.html", {"form": form, "result": result})


def _question(request: HttpRequest) -> str:
    return (request.GET.get("q") or "Tell me, briefly, what Django is.")[:4000]


def stream_answer(request: HttpRequest) -> StreamingHttpResponse:
    """The answer as it is written (sync view, any WSGI server)."""
    question, user = _question(request), request.user

    def generate() -> Iterator[str]:
        with django_claude.stream(question, feature="example-stream", user=user) as s:
            yield from s.text_stream
        result = s.result
        assert result is not None
        yield f"\n\n[outcome={result.outcome} request_id={result.request_id}]\n"

    return StreamingHttpResponse(generate(), content_type="text/plain; charset=utf-8")


async def astream_answer(request: HttpRequest) -> StreamingHttpResponse:
    """The same from an async view (ASGI): the event loop is never blocked."""
    question, user = _question(request), await request.auser()

    async def generate() -> AsyncIterator[str]:
        async with django_claude.astream(question, feature="example-astream", user=user) as s:
            async for text in s.text_stream:
                yield text
        result = s.result
        assert result is not None
        yield f"\n\n[outcome={result.outcome} request_id={result.request_id}]\n"

    return StreamingHttpResponse(generate(), content_type="text/plain; charset=utf-8")
