"""django_claude.contrib.prometheus: every worker's calls in one scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from django.test import RequestFactory

import django_claude
from django_claude import checks

ROOT = os.path.dirname(os.path.dirname(__file__))
CALLS = (
    'django_claude_calls_total{{feature="{feature}",gen_ai_response_model="{model}",outcome="ok"}}'
)


def scrape(**env: str) -> str:
    """The metrics view's answer, from a process of its own."""
    return run(
        """
        from django.test import RequestFactory
        from django_claude.contrib.prometheus import metrics_view
        response = metrics_view(RequestFactory().get("/metrics"))
        assert response["Content-Type"].startswith("text/plain"), response["Content-Type"]
        print(response.content.decode())
        """,
        **env,
    )


def run(code: str, **env: str) -> str:
    script = "import django; django.setup()\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": "sqlite:///:memory:",
            "CACHE_URL": "locmemcache://",
            **env,
        },
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def worker(fake_url: str, feature: str, calls: int, **env: str) -> None:
    run(
        f"""
        from django.conf import settings
        from django.core.management import call_command
        import django_claude
        import django_claude.contrib.prometheus
        django_claude.contrib.prometheus.enable()  # DJANGO_CLAUDE_PROMETHEUS = True does this
        call_command("migrate", verbosity=0)
        settings.DJANGO_CLAUDE_BASE_URL = {fake_url!r}
        settings.DJANGO_CLAUDE_API_KEY = "sk-ant-test-fake-key-0000"
        for n in range({calls}):
            assert django_claude.call("hi", feature={feature!r}, user=f"u{{n}}").outcome == "ok"
        """,
        **env,
    )


def value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in the scrape:\n{text}")


def test_one_scrape_counts_every_gunicorn_worker(fake_anthropic, tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker(fake_anthropic.url, "support", 3, **env)
    worker(fake_anthropic.url, "support", 4, **env)  # another worker, since gone
    text = scrape(**env)
    assert value(text, CALLS.format(feature="support", model="claude-sonnet-4-6")) == 7
    tokens = (
        'gen_ai_client_token_usage_count{gen_ai_operation_name="chat",'
        'gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-6",'
        'gen_ai_response_model="claude-sonnet-4-6",gen_ai_token_type="output"}'
    )
    assert value(text, tokens) == 7
    assert 'le="6.7108864e+07"' in text  # the GenAI conventions' last bucket
    assert "gen_ai_client_operation_duration_seconds_bucket" in text
    assert (
        value(
            text,
            'django_claude_cost_usd_total{feature="support",gen_ai_response_model="claude-sonnet-4-6"}',
        )
        > 0
    )


def test_a_single_process_serves_its_own(claude):
    from django_claude.contrib.prometheus import enable, metrics_view

    enable()
    sample = CALLS.format(feature="single", model="claude-sonnet-4-6")
    before = scrape_here(metrics_view)
    django_claude.call("hi", feature="single")
    django_claude.call("hi", feature="single")
    after = scrape_here(metrics_view)
    assert value(after, sample) - (value(before, sample) if sample in before else 0) == 2
    assert "jane" not in after


def scrape_here(view) -> str:
    return view(RequestFactory().get("/metrics")).content.decode()


def test_the_setting_without_prometheus_client_is_an_error(settings, monkeypatch):
    settings.DJANGO_CLAUDE_PROMETHEUS = True
    monkeypatch.setattr(checks, "find_spec", lambda name: None)
    assert checks.E013 in [m.id for m in checks.check_settings()]


@pytest.mark.parametrize("on", [True, False])
def test_the_setting_turns_the_counting_on(on, fake_anthropic, tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_CLAUDE_PROMETHEUS": str(on)}
    run(
        f"""
        from django.conf import settings
        from django.core.management import call_command
        import django_claude
        call_command("migrate", verbosity=0)
        settings.DJANGO_CLAUDE_BASE_URL = {fake_anthropic.url!r}
        settings.DJANGO_CLAUDE_API_KEY = "sk-ant-test-fake-key-0000"
        django_claude.call("hi", feature="by-setting")
        """,
        **env,
    )
    text = scrape(**env)
    assert (CALLS.format(feature="by-setting", model="claude-sonnet-4-6") in text) is on


def test_the_grafana_dashboard_queries_only_metrics_we_export():
    import json
    import re

    with open(os.path.join(ROOT, "docs", "grafana-dashboard.json")) as handle:
        dashboard = json.load(handle)
    exported = {
        "django_claude_calls_total",
        "django_claude_cost_usd_total",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_duration_seconds_count",
        "gen_ai_client_token_usage_sum",
    }
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = r"\b(?:django_claude|gen_ai)_\w+(?=[{\[(])"  # a metric: a selector follows
    used = {name for expr in exprs for name in re.findall(names, expr)}
    assert used and used <= exported
    labels = {"feature", "outcome", "error_type", "gen_ai_request_model", "gen_ai_response_model",
              "gen_ai_token_type", "le"}  # fmt: skip
    for expr in exprs:
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {label.strip() for label in group.split(",")} <= labels
