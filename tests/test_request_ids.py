"""Request ids are version 4 UUIDs, unique within a process and across forks
(gunicorn --preload, Celery prefork: a child must never hand out its
parent's ids, which are the records' primary keys)."""

from __future__ import annotations

import os
import uuid

import pytest

from django_claude.client.state import new_request_id


def test_ids_are_random_version_4_uuids_and_never_repeat():
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_draws_ids_of_its_own():
    new_request_id()  # the parent holds a pool of random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"".join(new_request_id().bytes for _ in range(300)))
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    child = {data[i : i + 16] for i in range(0, len(data), 16)}
    parent = {new_request_id().bytes for _ in range(300)}
    assert len(child) == 300
    assert not child & parent


def test_a_process_forked_without_pythons_fork_hooks_reads_a_pool_of_its_own(monkeypatch):
    """Some servers fork in C without running ``os.register_at_fork``'s
    hooks: the pool still belongs to the process that read it."""
    from django_claude.client import state

    new_request_id()
    ids = state._ids
    parents_next = uuid.UUID(bytes=ids.pool[ids.at : ids.at + 16], version=4)
    monkeypatch.setattr(state.os, "getpid", lambda: 2**22 + 7)  # another process now
    assert new_request_id() != parents_next
    assert ids.pid == 2**22 + 7
