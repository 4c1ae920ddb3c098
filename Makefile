# Two commands for a fresh machine with python3 and make:
#   make demo   - a virtual environment, the example site, an admin login, served on :8000
#   make test   - a virtual environment and the whole test suite (SQLite, no services)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= test,example,lint
PIP_SPEC ?=

.PHONY: venv test lint demo bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]" $(if $(PIP_SPEC),"$(PIP_SPEC)")
	touch $@

venv: $(VENV)/.installed

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy django_claude tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m django makemigrations --check --dry-run --settings=tests.settings

demo: venv
	cd example_project && ../$(BIN)/python manage.py demo

bench: venv
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache *.egg-info
