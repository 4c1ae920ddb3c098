"""Shared by the PostgreSQL benchmarks: a database of their own, and Django on it.

With no server answering, a benchmark prints one line saying so and exits 0
(``make bench`` goes on with the next one) instead of a connection traceback.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def where(url: str) -> str:
    """``host:port/name`` of ``url``, without its user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def postgres_problem(url: str) -> str | None:
    """Create the database ``url`` names if missing; None when that worked,
    else why not, in a few words."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    server, name = url.rsplit("/", 1)
    try:
        with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        # psycopg's first line ends with the cause: "... port 5432 failed: Connection refused"
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        return first.rsplit("failed: ", 1)[-1].strip() or type(exc).__name__
    return None


def skip_line(benchmark: str, url: str, problem: str, *, variable: str) -> str:
    return (
        f"{benchmark}: skipped, no usable PostgreSQL at {where(url)} ({problem}). "
        f"Start one, or set {variable} (or --postgres) to a server's URL."
    )


def setup_django_on(url: str, settings_module: str, *, benchmark: str, variable: str) -> None:
    """Create the database ``url`` names if missing, then set Django up on it.

    Without a server: print one line and exit 0.
    """
    problem = postgres_problem(url)
    if problem is not None:
        print(skip_line(benchmark, url, problem, variable=variable), flush=True)
        raise SystemExit(0)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
