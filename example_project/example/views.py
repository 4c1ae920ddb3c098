"""A view that asks Claude, the way a site would."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

import django_claude


class AskForm(forms.Form):
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=4000)


def ask(request: HttpRequest) -> HttpResponse:
    form = AskForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        result = django_claude.call(
            form.cleaned_data["question"],
            feature="example-ask",
            user=request.user,
            system="You are a helpful assistant for a small Django site. Answer briefly.",
        )
    return render(request, "example/ask.html", {"form": form, "result": result})
