"""Which transaction a record may be written in: the caller's own ``atomic()``
never (a rollback there must not lose the record), a test's always (so the
record rolls back with the test)."""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

# The connections (of the thread that registered them) whose open transaction
# is a test's. Django has no public way to tell a TestCase's atomic block from
# the caller's own, so the test says so.
_test_transactions: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()


@contextlib.contextmanager
def records_in_test_transaction(*, using: Iterable[str] | None = None) -> Iterator[None]:
    """Treat the transactions open now on this thread's connections (``using``:
    those aliases; default: every connection in an atomic block) as a test's.

    Until the block exits, a record written on such a connection goes into
    that transaction, in a savepoint, so it rolls back with the test, also from
    the test's own nested ``atomic()``. Elsewhere, a record written inside an
    ``atomic()`` goes to the background writer and outlives its rollback.

    The pytest plugin enters it for every pytest-django database test;
    Django's ``TestCase`` transactions are recognised without it.
    """
    if using is None:
        candidates = list(connections.all(initialized_only=True))
    else:
        candidates = [connections[alias] for alias in using]
    marked = [c for c in candidates if c.in_atomic_block and c not in _test_transactions]
    _test_transactions.update(marked)
    try:
        yield
    finally:
        for connection in marked:
            _test_transactions.discard(connection)


def in_test_transaction(alias: str) -> bool:
    """True inside a test's transaction on ``alias``: the record goes into it."""
    connection = connections[alias]
    if not connection.in_atomic_block:
        return False
    if connection in _test_transactions:
        return True
    # Django's own TestCase opens its atomic blocks with a private marker and
    # offers no public one; read defensively, it keeps `manage.py test` suites
    # rolling records back with the test without any setup.
    blocks = connection.atomic_blocks
    return bool(blocks and getattr(blocks[0], "_from_testcase", False))


def in_callers_transaction(alias: str) -> bool:
    """True inside an ``atomic()`` the caller opened; False outside any, and
    inside a test's transaction (``records_in_test_transaction``)."""
    return connections[alias].in_atomic_block and not in_test_transaction(alias)


def under_test_runner() -> bool:
    """Is Django's test environment set up (pytest-django, ``manage.py test``)?

    ``setup_test_environment()`` instruments template rendering until
    ``teardown_test_environment()``; nothing else does. (``mail.outbox`` is
    no sign: the locmem e-mail backend makes one in production too.)
    """
    template, utils = _test_utils()
    instrumented = getattr(utils, "instrumented_test_render", None)
    return instrumented is not None and getattr(template, "_render", None) is instrumented


@functools.cache
def _test_utils() -> tuple[Any, Any]:
    """Imported once, not on every call (an import statement takes a lock)."""
    from django.template import Template
    from django.test import utils

    return Template, utils
