"""The package's public surface."""

from __future__ import annotations

import subprocess
import sys

import django_claude


def test_import_before_settings_are_configured():
    code = (
        "import sys, django_claude; "
        "assert 'django_claude.models' not in sys.modules; "
        "assert 'django_claude.client' not in sys.modules; "
        "print(django_claude.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": ""}
    )
    assert out.stdout.strip() == django_claude.__version__


def test_public_names():
    from django_claude.client.calls import call
    from django_claude.types import ClaudeResult, ClaudeUnavailable

    assert django_claude.call is call
    assert django_claude.ClaudeResult is ClaudeResult
    assert django_claude.ClaudeUnavailable is ClaudeUnavailable
    try:
        django_claude.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def test_py_typed_is_shipped():
    from importlib import resources

    assert resources.files("django_claude").joinpath("py.typed").is_file()
