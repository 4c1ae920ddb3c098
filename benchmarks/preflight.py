"""Before a benchmark imports Django: say which Python to use, not an ImportError.

Run as ``python benchmarks/<name>.py`` the repository root is not on
``sys.path``; each script puts it there, then calls ``require_installed``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# What every benchmark imports, by the name to look for and the name to show.
NEEDED = (
    ("django", "Django"),
    ("anthropic", "anthropic"),
    ("environ", "django-environ"),
    ("django_claude", "django-claude"),
)


def require_installed(script: str, *, also: tuple[tuple[str, str], ...] = ()) -> None:
    """Return if Django, the SDK and django-claude import; else print how to
    run ``script`` and exit with status 2."""
    missing = []
    for module, name in (*NEEDED, *also):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        name = Path(script).name
        print(
            f"benchmarks/{name}: this Python ({sys.executable}) cannot import "
            f"{', '.join(missing)}. Run it with the project's virtualenv, from the "
            f"repository root: .venv/bin/python benchmarks/{name} (make venv creates it), "
            "or run them all with: make bench",
            file=sys.stderr,
        )
        raise SystemExit(2)
