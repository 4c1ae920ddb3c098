"""Helpers for .ci/fresh_project.sh (standard library only; any Python 3.11+).

    python3 .ci/fresh_project.py wheel DIST_DIR SOURCE_DIR
    python3 .ci/fresh_project.py add-app SETTINGS_PY
    python3 .ci/fresh_project.py lines STDERR_FILE REQUEST_ID FEATURE:OUTCOME [FEATURE:OUTCOME ...]
    python3 .ci/fresh_project.py readme README_MD PROJECT_DIR

Each prints what it found on success and exits 1 with the reason otherwise.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import NoReturn


def fail(message: str) -> NoReturn:
    print(f"FAIL: {message}", file=sys.stderr)
    raise SystemExit(1)


def wheel(dist: str, source: str) -> None:
    """Exactly one django_claude wheel, holding py.typed, every template and
    static file and every migration of the source tree, the pytest plugin's
    entry point, and nothing from tests/ or example_project/. Prints its path."""
    wheels = sorted(Path(dist).glob("django_claude-*.whl"))
    others = sorted(p.name for p in Path(dist).iterdir() if p not in wheels)
    if len(wheels) != 1 or others:
        fail(f"expected exactly one django_claude wheel in {dist}, found {wheels} and {others}")
    [whl] = wheels
    with zipfile.ZipFile(whl) as zf:
        names = set(zf.namelist())
        entry_points = next(
            (zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), ""
        )
    src = Path(source) / "django_claude"
    wanted = {"django_claude/py.typed", "django_claude/static/django_claude/admin.css"}
    for sub in ("templates", "static"):
        wanted |= {
            str(PurePosixPath("django_claude", *p.relative_to(src).parts))
            for p in (src / sub).rglob("*")
            if p.is_file()
        }
    wanted |= {f"django_claude/migrations/{p.name}" for p in (src / "migrations").glob("*.py")}
    missing = sorted(wanted - names)
    if missing:
        fail(f"{whl.name} lacks {missing}")
    if not any(n.startswith("django_claude/templates/") and n.endswith(".html") for n in names):
        fail(f"{whl.name} has no templates")
    if not any(re.fullmatch(r"django_claude/migrations/0001_\w+\.py", n) for n in names):
        fail(f"{whl.name} has no migrations")
    stray = sorted(n for n in names if n.startswith(("tests/", "example_project/", "benchmarks/")))
    if stray:
        fail(f"{whl.name} ships files that are not the app: {stray[:5]}")
    if "django_claude.testing.pytest_plugin" not in entry_points:
        fail(f"{whl.name} has no pytest11 entry point for the plugin:\n{entry_points}")
    migrations = sum(1 for n in names if re.fullmatch(r"django_claude/migrations/\d{4}_\w+\.py", n))
    print(whl)
    print(
        f"{whl.name}: {len(names)} files, py.typed, {sum(n.endswith('.html') for n in names)} "
        f"templates, admin.css, {migrations} migrations, pytest11 plugin",
        file=sys.stderr,
    )


def add_app(settings_py: str) -> None:
    """Add "django_claude" as the last entry of INSTALLED_APPS, as the README shows."""
    path = Path(settings_py)
    text = path.read_text()
    match = re.search(r"^INSTALLED_APPS\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    if not match:
        fail(f"no INSTALLED_APPS = [...] block in {path}")
    body = match.group(1)
    if re.search(r"""['"]django_claude['"]""", body):
        fail(f"django_claude is already in INSTALLED_APPS of {path}")
    quote = "'" if re.search(r"'django\.contrib\.", body) else '"'
    new_body = body.rstrip() + ("" if body.rstrip().endswith(",") else ",") + "\n"
    new_body += f"    {quote}django_claude{quote},\n"
    text = text[: match.start(1)] + new_body + text[match.end(1) :]
    path.write_text(text)
    namespace: dict[str, object] = {"__file__": str(path)}
    exec(compile(text, str(path), "exec"), namespace)  # what Django will read
    apps = namespace.get("INSTALLED_APPS")
    if not isinstance(apps, list) or apps[-1] != "django_claude":
        fail(f"the edit of {path} did not add django_claude: INSTALLED_APPS = {apps!r}")
    print(f"INSTALLED_APPS = {apps!r}")


def lines(stderr_file: str, request_id: str, *expected: str) -> None:
    """stderr holds nothing but one JSON line per expected FEATURE:OUTCOME, all
    ``claude.call``; the first one's request_id is REQUEST_ID."""
    raw = [line for line in Path(stderr_file).read_text().splitlines() if line.strip()]
    parsed = []
    for line in raw:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            fail(f"stderr has a line that is not JSON: {line!r}\nstderr:\n" + "\n".join(raw))
    got = [(p.get("event"), p.get("feature"), p.get("outcome")) for p in parsed]
    want = [("claude.call", *e.split(":", 1)) for e in expected]
    if sorted(got, key=str) != sorted(want, key=str):
        fail(f"stderr lines {got}, expected {want}\nstderr:\n" + "\n".join(raw))
    first = next(p for p in parsed if p.get("feature") == want[0][1])
    if str(first.get("request_id")) != request_id:
        fail(f"the line's request_id {first.get('request_id')!r} is not the call's {request_id!r}")
    for key in ("model", "latency_ms", "input_tokens", "output_tokens"):
        if key not in first:
            fail(f"the line has no {key!r}: {first}")
    print(json.dumps(first, sort_keys=True))


def readme(readme_md: str, project: str) -> None:
    """Write the "Testing your own code" section's ```toml block as pyproject.toml
    and its ```python block starting "# tests/test_claude.py" as that file.
    Prints how many tests the block holds."""
    text = Path(readme_md).read_text()
    section = re.search(r"^## Testing your own code\n(.*?)(?=^## )", text, re.S | re.M)
    if not section:
        fail("README.md has no '## Testing your own code' section")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", section.group(1), re.S | re.M)
    tomls = [body for lang, body in blocks if lang == "toml"]
    tests = [body for lang, body in blocks if lang == "python" and body.startswith("# tests/")]
    if len(tomls) != 1 or len(tests) != 1:
        fail(f"expected one ```toml and one '# tests/' block, found {len(tomls)}, {len(tests)}")
    name = tests[0].splitlines()[0].removeprefix("#").strip()
    try:
        options = tomllib.loads(tomls[0])["tool"]["pytest"]["ini_options"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        fail(f"the README's toml block is not a [tool.pytest.ini_options] table: {exc}")
    if "DJANGO_SETTINGS_MODULE" not in options:
        fail("the README's toml block sets no DJANGO_SETTINGS_MODULE")
    root = Path(project)
    (root / "pyproject.toml").write_text(tomls[0])
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(tests[0])
    count = len(re.findall(r"^(?:async )?def test_", tests[0], re.M))
    if not count:
        fail(f"the README's {name} block has no test")
    print(count)
    print(f"wrote pyproject.toml and {name} ({count} tests) from README.md", file=sys.stderr)


COMMANDS: dict[str, Callable[..., None]] = {
    "wheel": wheel,
    "add-app": add_app,
    "lines": lines,
    "readme": readme,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        fail(f"usage: {sys.argv[0]} {{{','.join(COMMANDS)}}} ARGS...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
