# Two commands for a fresh machine with python3 (3.11 or newer) and make:
#   make demo   - a virtual environment, the example site, an admin login, served on :8000
#                 (make demo PORT=8123 for another port; DEMO_SERVE=0 make demo: don't serve)
#   make test   - a virtual environment and the whole test suite (SQLite, no services)
#   make bench  - every benchmark in benchmarks/ (make bench QUICK=1: smaller sizes)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= test,example,lint
PIP_SPEC ?=
PORT ?= 8000
QUICK ?=

.PHONY: venv test lint demo bench clean FORCE

# "3.11.7 1 /usr/local": version, new enough (1/0), the installation. Empty if it does not run.
PY_ID_CODE := import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]), int(sys.version_info >= (3, 11)), getattr(sys, "base_prefix", sys.prefix))
PY_ID := $(shell $(PYTHON) -c '$(PY_ID_CODE)' 2>/dev/null)
# The same of the Python that made $(VENV): a virtualenv made by another Python is rebuilt.
VENV_ID := $(shell $(BIN)/python -c '$(PY_ID_CODE)' 2>/dev/null)
PY_VERSION := $(word 1,$(PY_ID))
VENV_VERSION := $(or $(word 1,$(VENV_ID)),none that runs)
# A newer Python this machine has, to suggest.
PY_NEWER = $(firstword $(foreach p,python3.13 python3.12 python3.11,$(shell $(p) -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && echo $(p))))

ifneq ($(PY_ID),$(VENV_ID))
VENV_STALE := FORCE
endif
REBUILDING = make: $(VENV) was made by Python $(VENV_VERSION); PYTHON=$(PYTHON) is $(PY_VERSION): rebuilding $(VENV).

$(VENV)/.installed: pyproject.toml Makefile $(VENV_STALE)
	@if [ -z "$(PY_VERSION)" ]; then \
	    echo "make: PYTHON=$(PYTHON) does not run. django-claude needs Python >= 3.11:" \
	        "run make $(or $(MAKECMDGOALS),venv) PYTHON=$(or $(PY_NEWER),python3.12)" \
	        "(or the path of a python3.11 or newer)." >&2; \
	    exit 1; \
	fi
	@if [ "$(word 2,$(PY_ID))" != 1 ]; then \
	    echo "make: django-claude needs Python >= 3.11; PYTHON=$(PYTHON) is $(PY_VERSION)." \
	        "Run make $(or $(MAKECMDGOALS),venv) PYTHON=$(or $(PY_NEWER),python3.12)" \
	        "(or the path of a python3.11 or newer)." >&2; \
	    exit 1; \
	fi
	$(if $(VENV_STALE),$(if $(wildcard $(VENV)),@echo "$(REBUILDING)"; rm -rf $(VENV)))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]" $(if $(PIP_SPEC),"$(PIP_SPEC)")
	touch $@

FORCE:

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
	cd example_project && ../$(BIN)/python manage.py demo --addrport 127.0.0.1:$(PORT)

# Each benchmark in turn; the PostgreSQL ones say so in one line and are
# skipped when no server answers (BENCH_POSTGRES_URL, BENCH_DASHBOARD_URL).
bench: venv
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache *.egg-info
