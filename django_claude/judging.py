"""Where a sampled call is judged: by Celery when the site has configured it,
else by a background thread of this process.

"Configured" means ``celery`` is importable and the site said where its
broker is or that tasks run eagerly: a ``CELERY_BROKER_URL`` (or any
``CELERY_*``) Django setting, or a current Celery app with a ``broker_url``
(its config, or the ``CELERY_BROKER_URL`` environment variable) or
``task_always_eager``. Celery installed as another package's dependency, with
no app configured, is not: nothing would consume the task.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid

from django.conf import settings


def celery_configured() -> bool:
    """Does the site run Celery (a broker, or eager tasks)? Read at call time."""
    site_settings = any(name.startswith("CELERY_") for name in dir(settings))
    if "celery" not in sys.modules and not site_settings and not _configured_elsewhere():
        return False  # nothing could configure an app: not worth importing Celery (~0.4 s)
    try:
        from celery import current_app  # optional dependency
    except ImportError:
        return False
    if site_settings:
        return True
    try:
        app_conf = current_app.conf
        return bool(app_conf.broker_url) or bool(app_conf.task_always_eager)
    except Exception:  # a Celery app whose config cannot load is not one to send to
        return False


def _configured_elsewhere() -> bool:
    """Could a Celery app the site never imported still find a broker: in the
    environment (``CELERY_BROKER_URL``, ``CELERY_CONFIG_MODULE``...), or in
    the ``celeryconfig`` module Celery's default app reads?"""
    if any(name.startswith("CELERY") for name in os.environ):
        return True
    try:
        return importlib.util.find_spec("celeryconfig") is not None
    except (ImportError, ValueError):
        return True  # cannot tell: ask Celery


def judge_sampled_call(sender: object, *, request_id: uuid.UUID, **kwargs: object) -> None:
    """Receiver of ``call_sampled`` (connected in ``apps.ready()``): queue the
    judge on Celery, or judge in this process. Never blocks the caller."""
    if celery_configured():
        from django_claude.tasks import queue_judge

        queue_judge(sender, request_id=request_id)
        return
    from django_claude.smell.inprocess import judge_in_process

    judge_in_process(request_id)
