"""Each system check id, triggered and quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from django_claude import checks


def ids(messages):
    return {m.id for m in messages}


def test_defaults_are_clean(settings):
    settings.DEBUG = True  # the per-process cache warning is for production only
    assert checks.check_settings() == []


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("DJANGO_CLAUDE_TIMEOUT", 0, checks.E001),
        ("DJANGO_CLAUDE_DEADLINE", "soon", checks.E001),
        ("DJANGO_CLAUDE_MAX_ATTEMPTS", 0, checks.E001),
        ("DJANGO_CLAUDE_MAX_ATTEMPTS", 2.5, checks.E001),
        ("DJANGO_CLAUDE_BREAKER_THRESHOLD", -1, checks.E001),
        ("DJANGO_CLAUDE_BACKOFF_BASE", -1.0, checks.E001),
        ("DJANGO_CLAUDE_PROMPT_PREFIX_CHARS", 500, checks.E002),
        ("DJANGO_CLAUDE_REDACTOR", "no.such.module.redact", checks.E003),
        ("DJANGO_CLAUDE_REDACTOR", "django_claude.conf.PREFIX_CHARS_CEILING", checks.E003),
        ("DJANGO_CLAUDE_CACHE", "nope", checks.E004),
        ("DJANGO_CLAUDE_SMELL_TEST_RATE", 1.5, checks.E005),
        ("DJANGO_CLAUDE_SMELL_TEST_RATES", {"chat": -0.1}, checks.E005),
        ("DJANGO_CLAUDE_DEFAULT_MODEL", " ", checks.E006),
        ("DJANGO_CLAUDE_BUDGETS", {"chat": 0}, checks.E007),
        ("DJANGO_CLAUDE_BUDGETS", {"chat": "lots"}, checks.E007),
        ("DJANGO_CLAUDE_CANARY_ALPHA", 0, checks.E012),
        ("DJANGO_CLAUDE_CANARY_ALPHA", 5, checks.E012),
        ("DJANGO_CLAUDE_CANARY_ALPHA", "0.01", checks.E012),
        ("DJANGO_CLAUDE_CANARY_MIN_CALLS", 0, checks.E012),
        ("DJANGO_CLAUDE_CANARY_MIN_CALLS", 20.5, checks.E012),
        ("DJANGO_CLAUDE_CANARY_MAX_LATENCY_RATIO", 1.0, checks.E012),
        ("DJANGO_CLAUDE_CANARY_MAX_COST_RATIO", True, checks.E012),
    ],
)
def test_errors(settings, setting, value, expected):
    setattr(settings, setting, value)
    assert expected in ids(checks.check_settings())


def test_w003_per_process_cache_in_production(settings):
    settings.DEBUG = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert checks.W003 in ids(checks.check_settings())
    settings.DEBUG = True
    assert checks.W003 not in ids(checks.check_settings())


def test_w004_deadline_shorter_than_timeout(settings):
    settings.DJANGO_CLAUDE_TIMEOUT = 30
    settings.DJANGO_CLAUDE_DEADLINE = 10
    assert checks.W004 in ids(checks.check_settings())


def test_w001_no_api_key(settings, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    settings.DJANGO_CLAUDE_API_KEY = None
    settings.DJANGO_CLAUDE_BASE_URL = None  # Anthropic's API
    assert ids(checks.check_api_key()) == {checks.W001}
    settings.DJANGO_CLAUDE_BASE_URL = "https://llm-proxy.example.com"
    assert ids(checks.check_api_key()) == {checks.W001}
    # The fake API on this machine needs no key: a placeholder is sent.
    settings.DJANGO_CLAUDE_BASE_URL = "http://127.0.0.1:8765"
    assert checks.check_api_key() == []
    settings.DJANGO_CLAUDE_BASE_URL = None
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    assert checks.check_api_key() == []


@pytest.mark.django_db
def test_w002_model_without_price(settings):
    assert checks.check_prices(databases=["default"]) == []
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = "claude-unpriced-1"
    [message] = checks.check_prices(databases=["default"])
    assert message.id == checks.W002
    assert "claude-unpriced-1" in message.msg
    assert checks.check_prices(databases=None) == []  # needs --database


def test_checks_are_registered():
    from django.core import checks as django_checks

    registered = {
        f.__name__
        for f in django_checks.registry.registry.get_checks(include_deployment_checks=True)
    }
    assert {"check_settings", "check_api_key", "check_prices"} <= registered


# -- the smell test's judge: Celery or this process ------------------------------------------


@pytest.fixture
def fresh_celery_app(monkeypatch, settings):
    """A site where celery is installed but not configured: no CELERY_* setting,
    no broker in the environment, the current app Celery's default one."""
    from celery import Celery
    from django.conf import settings as django_settings

    from tests.celery_app import app

    for name in [n for n in dir(django_settings) if n.startswith("CELERY_")]:
        delattr(settings, name)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    Celery("unconfigured", set_as_current=True)
    yield
    app.set_current()


def test_celery_configured_by_the_site(settings):
    from django_claude.judging import celery_configured

    assert settings.CELERY_BROKER_URL and celery_configured()  # tests/settings.py


def test_celery_installed_but_not_configured_is_not_used(fresh_celery_app, settings, monkeypatch):
    from django_claude.judging import celery_configured

    assert not celery_configured()
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    assert celery_configured()
    del settings.CELERY_BROKER_URL
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    assert celery_configured()


def test_celery_not_installed_is_not_used(monkeypatch):
    import sys

    from django_claude.judging import celery_configured

    monkeypatch.setitem(sys.modules, "celery", None)  # import celery fails
    assert not celery_configured()


def test_sampling_without_celery_is_clean_and_deploy_recommends_celery(fresh_celery_app, settings):
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.01  # the default
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert checks.check_smell_test() == []  # no W005: the judge runs in this process
    assert ids(checks.check_smell_test_deploy()) == {checks.W006}
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0
    assert checks.check_smell_test_deploy() == []


def test_w006_not_with_celery(settings):
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.01
    assert checks.check_smell_test_deploy() == []  # tests/settings.py configures Celery


def test_w006_is_a_deploy_check():
    from django.core import checks as django_checks

    registry = django_checks.registry.registry
    plain = {f.__name__ for f in registry.get_checks(include_deployment_checks=False)}
    deploy = {f.__name__ for f in registry.get_checks(include_deployment_checks=True)}
    assert "check_smell_test" in plain
    assert "check_smell_test_deploy" in deploy - plain


def test_a_setting_read_once_follows_every_change(settings):
    from django_claude.conf import conf

    settings.DJANGO_CLAUDE_TIMEOUT = 5
    assert conf.TIMEOUT == 5.0  # read, converted and kept...
    settings.DJANGO_CLAUDE_TIMEOUT = "7.5"
    assert conf.TIMEOUT == 7.5  # ...until the setting changes
    settings.DJANGO_CLAUDE_PROMPT_PREFIX_CHARS = 10**9
    assert conf.PROMPT_PREFIX_CHARS == conf.PROMPT_PREFIX_CHARS < 10**9  # clamped, kept
    settings.DJANGO_CLAUDE_SMELL_TEST_RATES = {"a": 0.5}
    rates = conf.SMELL_TEST_RATES
    rates["a"] = 1.0  # a reader's copy: the next reader gets the setting's
    assert conf.SMELL_TEST_RATES == {"a": 0.5}


def test_a_lazy_setting_follows_the_language(settings):
    from django.utils import translation
    from django.utils.translation import gettext_lazy

    from django_claude.conf import conf

    settings.USE_I18N = True
    settings.DJANGO_CLAUDE_DEGRADED_MESSAGE = gettext_lazy("This field is required.")
    with translation.override("fr"):
        french = conf.DEGRADED_MESSAGE
    with translation.override("de"):
        german = conf.DEGRADED_MESSAGE
    assert french != german  # translated for each reader, not kept from the first


def test_a_value_read_while_the_setting_changes_is_not_kept(settings, monkeypatch):
    from django_claude import conf as conf_module
    from django_claude.conf import conf

    settings.DJANGO_CLAUDE_TIMEOUT = 2
    real = conf_module.ClaudeSettings._get

    def read_then_change(self, name):
        value = real(self, name)  # the old value is read...
        settings.DJANGO_CLAUDE_TIMEOUT = 9  # ...and the setting changes before it is kept
        return value

    monkeypatch.setattr(conf_module.ClaudeSettings, "_get", read_then_change)
    assert conf.TIMEOUT == 2.0  # that reader saw the old value
    monkeypatch.setattr(conf_module.ClaudeSettings, "_get", real)
    assert conf.TIMEOUT == 9.0  # the next one the new


_ASK_IN_A_FRESH_PROCESS = """
import os, sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=[])
django.setup()
from django_claude.judging import celery_configured
print(celery_configured(), "celery" in sys.modules)
os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/0"
print(celery_configured(), "celery" in sys.modules)
"""


@pytest.mark.parametrize("celeryconfig", [False, True], ids=["alone", "with-celeryconfig"])
def test_celery_nothing_configures_is_not_imported_to_ask(tmp_path, celeryconfig):
    # Importing Celery takes ~0.4 s of a worker's interpreter lock, at its first
    # sampled call: not worth it where no setting, variable or module could
    # give an app a broker.
    pytest.importorskip("celery")
    if celeryconfig:
        (tmp_path / "celeryconfig.py").write_text("broker_url = 'redis://127.0.0.1:6379/0'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY", "DJANGO_SETTINGS"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), str(Path(__file__).resolve().parent.parent)]
    )
    ran = subprocess.run(
        [sys.executable, "-c", _ASK_IN_A_FRESH_PROCESS],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    first, then = ran.stdout.splitlines()
    assert first == ("True True" if celeryconfig else "False False")
    assert then == "True True"  # a broker in the environment: asked, and used
