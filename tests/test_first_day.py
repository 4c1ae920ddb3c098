"""A Django developer's first day: a fresh project with only ``django_claude``
added, in its own process (no Celery configured, no LOGGING, no CACHES)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from django_claude.testing import Fault

ROOT = Path(__file__).resolve().parent.parent
JUDGE = "claude-haiku-4-5-20251001"

SETTINGS = """
SECRET_KEY = "first-day-not-secret"
DEBUG = True
ALLOWED_HOSTS = []
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_claude",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DJANGO_CLAUDE_API_KEY = "sk-ant-first-day-0000"
"""

CALL = """
import django

django.setup()
import django_claude

result = django_claude.call("What is Django?", feature="chat", smell_test=True)
print(result.outcome, result.request_id)
"""  # and the process exits at once: the judge is drained at exit


class Project:
    def __init__(
        self, path: Path, url: str, extra: str = "", *, migrated: Project | None = None
    ) -> None:
        self.path = path
        self.db = path / "db.sqlite3"
        if migrated is not None:  # a copy of a migrated database (a subprocess is slow)
            shutil.copy(migrated.db, self.db)
        (path / "first_day_settings.py").write_text(
            SETTINGS + f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
            f"'NAME': {str(self.db)!r}}}}}\n"
            + f"DJANGO_CLAUDE_BASE_URL = {url!r}\n"
            + textwrap.dedent(extra)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "ANTHROPIC_"))}
        env["DJANGO_SETTINGS_MODULE"] = "first_day_settings"
        env["PYTHONPATH"] = os.pathsep.join([str(path), str(ROOT)])
        self.env = env
        self.migrate_output: subprocess.CompletedProcess[str] | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "django", *args)

    def verdicts(self) -> dict[str, str]:
        with sqlite3.connect(self.db) as db:
            return dict(db.execute("SELECT feature, smell_verdict FROM django_claude_callrecord"))


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory, _fake_anthropic_server):
    """A fresh project, migrated once, and what ``migrate`` printed."""
    project = Project(tmp_path_factory.mktemp("first_day"), _fake_anthropic_server.url)
    project.migrate_output = project.manage("migrate")
    return project


@pytest.fixture
def project(tmp_path, fake_anthropic, migrated):
    return Project(tmp_path, fake_anthropic.url, migrated=migrated)


def test_check_is_silent_on_a_fresh_project(project):
    done = project.manage("check")
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "django_claude" not in done.stderr


def test_check_deploy_recommends_celery_for_the_smell_test(project):
    done = project.manage("check", "--deploy")
    assert "django_claude.W006" in done.stderr
    assert "django_claude.W005" not in done.stderr


def test_migrate_says_nothing_about_the_smell_test(migrated):
    done = migrated.migrate_output
    assert "Applying django_claude.0001_initial... OK" in done.stdout
    assert "django_claude.W0" not in done.stdout + done.stderr


def test_migrate_is_silent_on_sqlite(migrated):
    done = migrated.migrate_output
    assert "System check identified" not in done.stdout + done.stderr


def test_a_sampled_call_is_judged_in_process_and_its_lines_reach_stderr(project, fake_anthropic):
    fake_anthropic.script(JUDGE, [Fault(text="PASS")])
    done = project.run("-c", CALL)
    assert done.stdout.startswith("ok ")
    assert project.verdicts() == {"chat": "pass", "django_claude.smell_test": "not_sampled"}
    lines = json_lines(done.stderr)
    assert [(line["event"], line["feature"]) for line in lines] == [
        ("claude.call", "chat"),
        ("claude.call", "django_claude.smell_test"),
    ]
    assert lines[0]["request_id"] == done.stdout.split()[1]


def test_a_judge_that_is_down_gives_error_and_the_call_is_unharmed(project, fake_anthropic):
    fake_anthropic.always(JUDGE, 529)
    done = project.run("-c", CALL)
    assert done.stdout.startswith("ok ")
    assert project.verdicts()["chat"] == "error"


def test_the_sites_logging_replaces_the_default_handler(tmp_path, fake_anthropic, migrated):
    calls = tmp_path / "calls.log"
    project = Project(
        tmp_path,
        fake_anthropic.url,
        f"""
        DJANGO_CLAUDE_SMELL_TEST_RATE = 0
        LOGGING = {{
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {{"json": {{"()": "django_claude.logs.JsonFormatter"}}}},
            "handlers": {{
                "calls": {{
                    "class": "logging.FileHandler",
                    "filename": {str(calls)!r},
                    "formatter": "json",
                }}
            }},
            "loggers": {{
                "django_claude.calls": {{
                    "handlers": ["calls"], "level": "INFO", "propagate": False
                }}
            }},
        }}
        """,
        migrated=migrated,
    )
    done = project.run("-c", CALL.replace("smell_test=True", "smell_test=False"))
    assert json_lines(done.stderr) == []
    [line] = json_lines(calls.read_text())
    assert line["level"] == "INFO" and line["logger"] == "django_claude.calls"
    assert line["feature"] == "chat" and line["event"] == "claude.call"  # not a string in JSON


def test_a_logging_setting_without_our_loggers_keeps_the_lines(tmp_path, fake_anthropic, migrated):
    # dictConfig's disable_existing_loggers defaults to True: django_claude's
    # loggers are made after it, so they stay enabled.
    project = Project(tmp_path, fake_anthropic.url, 'LOGGING = {"version": 1}\n', migrated=migrated)
    done = project.run("-c", CALL.replace("smell_test=True", "smell_test=False"))
    assert [line["feature"] for line in json_lines(done.stderr)] == ["chat"]
