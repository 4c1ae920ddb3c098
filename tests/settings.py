"""Settings for the test suite: SQLite and local memory unless
DATABASE_URL / CACHE_URL say otherwise (CI sets both to PostgreSQL and Redis)."""

from __future__ import annotations

import environ

env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_claude",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///:memory:")}
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# tests/test_prometheus.py turns the Prometheus counting on in a process of its own.
DJANGO_CLAUDE_PROMETHEUS = env.bool("DJANGO_CLAUDE_PROMETHEUS", default=False)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DJANGO_CLAUDE_API_KEY = "sk-ant-test-settings-key-1234"
DJANGO_CLAUDE_BASE_URL = env.str(
    "DJANGO_CLAUDE_BASE_URL", default="http://127.0.0.1:9"
)  # fake_anthropic
DJANGO_CLAUDE_TIMEOUT = 2.0
DJANGO_CLAUDE_DEADLINE = 5.0
DJANGO_CLAUDE_BACKOFF_BASE = 0.0
DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0  # tests that judge force smell_test=True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_claude": {"level": "INFO"}},
}
SILENCED_SYSTEM_CHECKS = [] if env.str("CACHE_URL", default="") else ["django_claude.W003"]

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
import django  # noqa: E402

# Django 6.0 takes plain addresses; 5.2 wants (name, address) pairs.
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
