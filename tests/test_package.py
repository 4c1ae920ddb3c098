"""The package's public surface."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

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


# -- the shape of the package (issue: "Small, named things") ------------------------------

PACKAGE = pathlib.Path(django_claude.__file__).parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path) for path in SOURCES}


def test_no_module_over_400_lines_and_no_class_over_150():
    too_long = []
    for path in SOURCES:
        source = path.read_text()
        if len(source.splitlines()) > 400:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 150:
                too_long.append(f"{path.name}: class {node.name}")
    assert not too_long


def _private_imports(path: pathlib.Path) -> list[str]:
    """``from django_claude.x import _y`` and ``module._y`` on an imported module."""
    found = []
    modules: set[str] = set()  # local names bound to django_claude modules
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("django_claude"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                if f"{node.module}.{alias.name}" in MODULES:
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [hit for path in SOURCES for hit in _private_imports(path)]
    assert not found


def test_the_layers_hold():
    """import-linter's contracts (pyproject.toml) pass: no cycle, no forbidden import."""
    lint_imports = pathlib.Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[lint]')")
    out = subprocess.run(
        [str(lint_imports), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert out.returncode == 0, out.stdout[-3000:]
