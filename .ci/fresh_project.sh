#!/usr/bin/env bash
# A Django developer's first day, from the built wheel (not the checkout):
#   1. build the wheel from the working tree (copied to a temp dir: the tree is
#      not touched) and check what it ships;
#   2. a fresh venv with only that wheel and its dependencies: no celery;
#   3. `django-admin startproject mysite .`, "django_claude" added to
#      INSTALLED_APPS as README's "Install" shows, the placeholder key exported;
#   4. `migrate` and `check`: exit 0 and not a word of warning;
#   5. `manage.py claude_fake_api` in the background, the one setting it prints
#      appended to settings.py, no key anywhere: one call, its JSON line on
#      stderr, its CallRecord row;
#   6. one call with smell_test=True, judged in a background thread (no
#      Celery) before the process exits: the verdict is "pass";
#   7. README's "Testing your own code" copied (its toml and test blocks,
#      extracted from README.md) and run with pytest-django.
# Stock settings throughout: no LOGGING, no CACHES, no CELERY_*.
#
#   bash .ci/fresh_project.sh    (from anywhere; needs python3 >= 3.11 and pip
#                                 access to the package registry)
# FRESH_PROJECT_BUDGET (seconds, default 170) bounds the whole run;
# FRESH_PROJECT_KEEP=1 keeps the temp dir for a look afterwards.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
helper="$repo/.ci/fresh_project.py"
budget=${FRESH_PROJECT_BUDGET:-170}
python3=${FRESH_PROJECT_PYTHON:-python3}

# A clean machine's shell: nothing from the repo's environment or CI services.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV DJANGO_SETTINGS_MODULE DATABASE_URL CACHE_URL \
    ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL PIP_REQUIRE_VIRTUALENV \
    PYTEST_ADDOPTS PYTEST_PLUGINS
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(CELERY_|DJANGO_CLAUDE_)' || true)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fresh-project.XXXXXX")
logs="$tmp/logs"
mkdir -p "$logs"
cd "$tmp"  # never the checkout: `python -c` would import django_claude from it
fake_pid=""

stop_fake() {
    if [ -n "$fake_pid" ]; then
        kill "$fake_pid" 2>/dev/null || true
        wait "$fake_pid" 2>/dev/null || true
        fake_pid=""
    fi
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    cd /
    stop_fake
    if [ "${FRESH_PROJECT_KEEP:-0}" = 1 ]; then
        echo "kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

summary=()
section() { printf '\n=== fresh project: %s ===\n' "$*"; }
ok() { summary+=("$*"); printf 'ok: %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
show() {  # show NAME: what a step printed
    local f
    for f in "$logs/$1.out" "$logs/$1.err"; do
        [ -s "$f" ] && { printf -- '--- %s\n' "${f##*/}" >&2; cat "$f" >&2; }
    done
    return 0
}
left() { echo $((budget - SECONDS)); }
# bounded LIMIT CMD...: CMD under `timeout`, LIMIT seconds or what is left of the budget.
bounded() {
    local limit=$1 rest
    shift
    rest=$(left)
    [ "$rest" -gt 0 ] || die "out of the ${budget}s budget before: $*"
    [ "$limit" -le "$rest" ] || limit=$rest
    timeout --kill-after=5 "$limit" "$@"
}
# run NAME LIMIT CMD...: stdout and stderr to $logs/NAME.{out,err}; on failure show them.
run() {
    local name=$1 limit=$2 rc=0
    shift 2
    bounded "$limit" "$@" >"$logs/$name.out" 2>"$logs/$name.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        show "$name"
        [ "$rc" -eq 124 ] && die "$name: timed out (its ${limit}s, or what was left of the ${budget}s budget): $*"
        die "$name: exit $rc: $*"
    fi
}
# silent NAME: no warning of any kind in what a step printed.
silent() {
    if grep -E -n 'WARNINGS|System check identified some issues|\.W0[0-9]|W0[0-9]{2}|Warning|have changes that are not yet reflected' \
        "$logs/$1.out" "$logs/$1.err"; then
        show "$1"
        die "$1 printed a warning"
    fi
}
# check_is_silent NAME: `check` said exactly the one line, and nothing on stderr.
check_is_silent() {
    silent "$1"
    if [ "$(cat "$logs/$1.out")" != "System check identified no issues (0 silenced)." ] \
        || [ -s "$logs/$1.err" ]; then
        show "$1"
        die "$1: check is not silent"
    fi
}
# shell NAME CODE: `python manage.py shell -c CODE`; prints its last stdout line.
shell() {
    run "$1" 60 python manage.py shell -c "$2"
    tail -n 1 "$logs/$1.out"
}

# -- 1. the wheel ---------------------------------------------------------------------------
section "1. build the wheel"
mkdir -p "$tmp/src" "$tmp/dist"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # The working tree's files, tracked or new (not ignored): what a release would build.
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
        | (cd "$repo" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done) \
        | (cd "$repo" && tar --null -T - -cf -) | tar -xf - -C "$tmp/src"
else
    tar -C "$repo" --exclude=.git --exclude='.venv*' --exclude=build --exclude=dist \
        --exclude='*.egg-info' --exclude='__pycache__' --exclude='.*_cache' -cf - . \
        | tar -xf - -C "$tmp/src"
fi
run wheel 120 "$python3" -m pip wheel --no-deps -q -w "$tmp/dist" "$tmp/src"
wheel=$("$python3" "$helper" wheel "$tmp/dist" "$tmp/src")
ok "wheel: ${wheel##*/} ships py.typed, templates, admin.css, migrations"

# -- 2. a fresh venv: the wheel, Django and anthropic, no celery ----------------------------
section "2. fresh venv with the wheel"
run venv 60 "$python3" -m venv "$tmp/venv"
# What `source venv/bin/activate` does, so the README's commands run as written.
export VIRTUAL_ENV="$tmp/venv" PATH="$tmp/venv/bin:$PATH"
hash -r
[ "$(command -v python)" = "$tmp/venv/bin/python" ] || die "python is not the venv's"
run install 150 python -m pip install -q "$wheel"
no_celery() {
    python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("celery") is not None)' \
        || die "celery is importable in the fresh venv ($1): the point is the no-Celery default"
}
no_celery "after installing the wheel"
versions=$(python -c '
import django, anthropic, django_claude, os, sys
assert django_claude.__file__.startswith(os.environ["VIRTUAL_ENV"]), django_claude.__file__
print(f"Django {django.get_version()}, anthropic {anthropic.__version__}, Python {sys.version.split()[0]}")
') || die "django_claude is not imported from the venv"
ok "venv: $versions, no celery"

# -- 3. startproject, the app added as README's Install says --------------------------------
section "3. startproject mysite, add django_claude"
mkdir "$tmp/project"
cd "$tmp/project"
run startproject 60 django-admin startproject mysite .
python "$helper" add-app mysite/settings.py
export ANTHROPIC_API_KEY=sk-ant-ci-placeholder  # README: export ANTHROPIC_API_KEY=sk-ant-...
ok "startproject: django_claude in INSTALLED_APPS, stock settings"

# -- 4. migrate and check, silent -----------------------------------------------------------
section "4. migrate, check"
run migrate 90 python manage.py migrate
silent migrate
grep -q 'Applying django_claude.0001_initial... OK' "$logs/migrate.out" \
    || { show migrate; die "migrate did not apply django_claude.0001_initial"; }
run check 60 python manage.py check
check_is_silent check
run check_runtimewarning 60 python -W error::RuntimeWarning manage.py check
check_is_silent check_runtimewarning
ok "fresh project: migrate and check silent"

# -- 5. the fake API, offline, one call ------------------------------------------------------
section "5. claude_fake_api, one call without a key"
unset ANTHROPIC_API_KEY  # offline development needs the one setting, no key
[ "$(left)" -gt 10 ] || die "out of the ${budget}s budget before the fake API"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# --reply: every answer, the judge's too (step 6), is "PASS".
# `timeout` itself in the background (not a function, which would be a subshell):
# $! is its pid, and the TERM the trap sends it goes on to the server.
timeout --kill-after=5 "$(left)" python manage.py claude_fake_api --port "$port" --reply PASS \
    >"$logs/fake.out" 2>"$logs/fake.err" &
fake_pid=$!
for _ in $(seq 150); do
    grep -q 'DJANGO_CLAUDE_BASE_URL = ' "$logs/fake.out" 2>/dev/null && break
    kill -0 "$fake_pid" 2>/dev/null || { show fake; die "claude_fake_api exited"; }
    sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { show fake; die "the fake API does not answer on $port"; }
setting=$(grep -o 'DJANGO_CLAUDE_BASE_URL = "[^"]*"' "$logs/fake.out") || { show fake; die "no setting printed"; }
[ "$setting" = "DJANGO_CLAUDE_BASE_URL = \"http://127.0.0.1:$port\"" ] || { show fake; die "it printed: $setting"; }
if grep -q 'DJANGO_CLAUDE_API_KEY' "$logs/fake.out"; then
    show fake
    die "claude_fake_api asks for a key setting on a loopback URL"
fi
printf '\n%s\n' "$setting" >>mysite/settings.py
run check_offline 60 python manage.py check
check_is_silent check_offline
# smell_test=False: the default 1% sampling must not add a judge's line here.
got=$(shell call 'import django_claude
result = django_claude.call("Hello", feature="first-day", smell_test=False)
print(result.outcome, result.request_id, result.text)')
read -r outcome rid text <<<"$got"
[ "$outcome $text" = "ok PASS" ] || { show call; die "the call gave: $got"; }
line=$(python "$helper" lines "$logs/call.err" "$rid" first-day:ok) || { show call; die "the call's line"; }
echo "$line"
row=$(shell call_row "from django_claude.models import CallRecord
r = CallRecord.objects.get(pk='$rid')
print(r.feature, r.outcome, r.model, r.smell_verdict, CallRecord.objects.count())")
[ "$row" = "first-day ok claude-sonnet-4-6 not_sampled 1" ] || die "the CallRecord row: $row"
[ "$(grep -c ' -> ' "$logs/fake.out")" = 1 ] || { show fake; die "the fake did not get exactly one request"; }
ok "call line on stderr (event claude.call, feature first-day, outcome ok) and its CallRecord, no key"

# -- 6. one sampled call, judged in this process ---------------------------------------------
section "6. smell test without Celery"
start=$SECONDS
got=$(shell smell 'import django_claude
result = django_claude.call("Hello again", feature="first-day", smell_test=True)
print(result.outcome, result.request_id)')
took=$((SECONDS - start))
read -r outcome rid2 <<<"$got"
[ "$outcome" = ok ] || { show smell; die "the sampled call gave: $got"; }
[ "$took" -le 20 ] || die "the sampled call's process took ${took}s to exit (the drain is 5 s)"
verdict=$(shell smell_row "from django_claude.models import CallRecord
judge = CallRecord.objects.filter(feature='django_claude.smell_test')
print(CallRecord.objects.get(pk='$rid2').smell_verdict, judge.count(), *judge.values_list('model', 'outcome'))")
[ "$verdict" = "pass 1 ('claude-haiku-4-5-20251001', 'ok')" ] \
    || { show smell; show fake; die "the sampled call's verdict, judge records: $verdict"; }
python "$helper" lines "$logs/smell.err" "$rid2" first-day:ok django_claude.smell_test:ok >/dev/null \
    || { show smell; show fake; die "the sampled call's lines (verdict, judge records: $verdict)"; }
ok "smell test judged: pass (judge record claude-haiku-4-5-20251001, process exited in ${took}s)"
stop_fake

# -- 7. README's testing section, as copied ---------------------------------------------------
section "7. README's Testing your own code"
export ANTHROPIC_API_KEY=sk-ant-ci-placeholder  # the user's shell, as in step 3
run pytest_django 150 python -m pip install -q pytest-django  # README: pip install pytest-django
no_celery "after installing pytest-django"
tests=$(python "$helper" readme "$repo/README.md" .)
run pytest 90 pytest -p no:cacheprovider  # README: "`pytest` then runs them"
result=$(tail -n 1 "$logs/pytest.out")
if ! [[ "$result" =~ ^=+\ $tests\ passed\ in\ [0-9.]+s(\ \([0-9:]+\))?\ =+$ ]]; then
    show pytest
    die "README tests: expected '$tests passed' and nothing else, got: $result"
fi
ok "README tests: $tests passed"

section "summary ($((SECONDS))s)"
printf '  %s\n' "${summary[@]}"
