"""Backends killed from outside: while idle in the pool, while a session holds
one after a commit, in the middle of a transaction, during a statement.

Every connection killed here was opened by the test's own engine and found
through its own sessions (``backend_id``); the kills come from a separate
plain driver connection (``kill_backend``: ``pg_terminate_backend`` /
``KILL``) and wait until the server has let the backend go.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings

import pytest

import fastsess
from fastsess import errors

from ..conftest import kill_backend, raw_query
from .conftest import alive_backends, backend_id, stat, wait_statement_running

_DEADLINE = 20.0  # seconds any loop below may run, whatever happens


def _sessions(engine, n, *, avoid=()):
    """Run ``n`` sessions one after another (each: its backend id, commit,
    close); returns (backend ids, errors).  Bounded in count and time."""
    ids, failures = [], []
    deadline = time.monotonic() + _DEADLINE
    for _ in range(n):
        assert time.monotonic() < deadline, f"{n} sessions took over {_DEADLINE} s"
        try:
            with engine.session_manager() as s:
                ids.append(backend_id(s))
        except Exception as e:  # noqa: BLE001 - counted, the test asserts none
            failures.append(e)
    return ids, failures


def _hold(engine, n):
    """Check out ``n`` connections at once (one session each); returns their
    backend ids and errors, then gives them all back."""
    ids, failures = [], []
    with contextlib.ExitStack() as stack:
        for _ in range(n):
            s = engine.get_session()
            stack.callback(s.close)
            try:
                ids.append(backend_id(s))
            except Exception as e:  # noqa: BLE001 - counted
                failures.append(e)
    return ids, failures


def _count(admin, table):
    return raw_query(admin, f"SELECT count(*) FROM {table}")[0][0]


# -- 1. idle connections killed ----------------------------------------------------------


def test_idle_backends_killed_next_50_sessions_succeed(dialect, url, raw_connect):
    max_size, idle = 6, 5
    engine = fastsess.create_engine(url, max_size=max_size, timeout=5)
    admin = raw_connect()
    try:
        held_ids, failures = _hold(engine, idle)  # `idle` connections, all idle afterwards
        assert failures == [] and len(set(held_ids)) == idle
        before = engine.pool_stats()
        assert before["idle"] == idle and before["in_use"] == 0
        for bid in held_ids:
            kill_backend(admin, dialect, bid)
        assert alive_backends(admin, dialect, held_ids) == set()

        ids, failures = _sessions(engine, 50)
        assert [repr(e) for e in failures] == [], "sessions failed after idle backends were killed"
        assert len(ids) == 50 and not set(ids) & set(held_ids)

        # Make the pool hand out every connection it holds, so that each
        # killed one has been through a checkout by now.
        final_ids, failures = _hold(engine, max_size)
        assert failures == [] and not set(final_ids) & set(held_ids)

        after = engine.pool_stats()
        assert stat(engine, "dead_on_checkout") == idle, after
        assert after["connections_discarded"] - before["connections_discarded"] == idle, after
        assert stat(engine, "reconnects") == 0, after  # found at checkout: nothing was re-run
        assert after["in_use"] == 0 and after["size"] <= max_size
    finally:
        engine.close()


# -- 2. killed after a commit, before close() ----------------------------------------------


@pytest.mark.parametrize("after", ["commit", "select_after_commit"])
def test_backend_killed_after_commit_close_is_silent(dialect, url, raw_connect, table, after, caplog):
    engine = fastsess.create_engine(url, max_size=2, timeout=5)
    admin = raw_connect()
    try:
        s = engine.get_session()
        victim = backend_id(s)
        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "committed"))
        s.commit()
        if after == "select_after_commit":
            # The session has run something since the commit: close() has a
            # transaction to end (a rollback on a dead connection).
            s.execute(f"SELECT count(*) AS c FROM {table}").fetchall()
        before = engine.pool_stats()
        kill_backend(admin, dialect, victim)

        caplog.clear()
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            s.close()  # must not raise
        assert [str(w.message) for w in caught] == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert engine.pool_stats()["in_use"] == 0

        ids, failures = _sessions(engine, 10)
        assert [repr(e) for e in failures] == []
        assert victim not in ids  # the dead connection was never handed out again
        assert _count(admin, table) == 1  # the acknowledged commit is there

        stats = engine.pool_stats()
        assert stats["connections_discarded"] - before["connections_discarded"] == 1, stats
        assert stats["in_use"] == 0 and stats["size"] == 1, stats
        assert stat(engine, "reconnects") == 0, stats
    finally:
        engine.close()


# -- 3. killed in the middle of a transaction ----------------------------------------------

_SCOPES = ["session_manager", "session_scope", "atomic", "nested_atomic"]


@contextlib.contextmanager
def _scope(kind, engine):
    """Open the kind of scope under test; yields (session, inner) where
    ``inner`` is a context manager for the part of the block the kill happens in."""
    if kind == "session_manager":
        with engine.session_manager() as s:
            yield s, contextlib.nullcontext()
    elif kind == "session_scope":
        with fastsess.session_scope(using=engine) as s:
            yield s, contextlib.nullcontext()
    elif kind == "atomic":
        with fastsess.atomic(using=engine) as s:
            yield s, contextlib.nullcontext()
    else:
        with fastsess.atomic(using=engine) as s:
            yield s, fastsess.atomic(using=engine)


@pytest.mark.parametrize("where", ["next_statement", "end_of_block"])
@pytest.mark.parametrize("kind", _SCOPES)
def test_backend_killed_mid_transaction(dialect, url, raw_connect, table, kind, where):
    """After an INSERT, before COMMIT, the backend is killed.  The caller sees
    ConnectionLost (the error of the statement or of the commit that found the
    connection dead, not one from the rollback that followed), nothing is
    committed, and the pool recovers."""
    engine = fastsess.create_engine(url, max_size=2, timeout=5)
    admin = raw_connect()
    reached = []
    try:
        before = engine.pool_stats()
        with pytest.raises(errors.ConnectionLost) as caught:
            with _scope(kind, engine) as (s, inner):
                victim = backend_id(s)
                s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "outer"))
                with inner:
                    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (2, "inner"))
                    kill_backend(admin, dialect, victim)
                    if where == "next_statement":
                        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (3, "after kill"))
                        reached.append("statement after the kill")
        exc = caught.value
        if where == "next_statement" or kind == "nested_atomic":
            # A statement (or RELEASE SAVEPOINT) found the connection dead:
            # no COMMIT was in flight, so the outcome is known.
            expected = (errors.ConnectionLost,)
        else:
            # The outermost COMMIT found the connection dead.
            expected = (errors.ConnectionLost, errors.CommitOutcomeUnknown)
        assert type(exc) in expected, f"{type(exc).__name__}: {exc}"
        assert reached == []
        assert exc.orig is not None and not isinstance(exc.orig, errors.FastsessError)
        # Raised from the driver error itself, not while handling a failed rollback.
        assert exc.__context__ is None or exc.__context__ is exc.orig, repr(exc.__context__)
        assert "rollback" not in str(exc).lower(), str(exc)
        assert _count(admin, table) == 0  # nothing committed

        stats = engine.pool_stats()
        assert stats["in_use"] == 0, stats
        assert stats["connections_discarded"] - before["connections_discarded"] == 1, stats
        ids, failures = _sessions(engine, 10)
        assert [repr(e) for e in failures] == [] and victim not in ids
        assert engine.pool_stats()["in_use"] == 0
        assert stat(engine, "reconnects") == 0, stats  # nothing of a begun transaction re-run
    finally:
        engine.close()


def test_backend_killed_during_statement(dialect, url, raw_connect):
    """A statement still running when its backend is killed from outside
    raises ConnectionLost at once; the connection is discarded."""
    engine = fastsess.create_engine(url, max_size=2, timeout=5)
    admin = raw_connect()
    # Longer than the test ever waits: if it ends, the kill ended it.
    sleep_sql = "SELECT pg_sleep(600)" if dialect == "postgresql" else "SELECT SLEEP(600)"
    ids: queue.Queue = queue.Queue()
    outcome: dict = {}

    def run():
        s = engine.get_session()
        try:
            ids.put(backend_id(s))
            try:
                s.execute(sleep_sql).fetchall()
                outcome["result"] = "completed"
            except BaseException as e:  # noqa: BLE001 - checked by the test
                outcome["exc"] = e
        finally:
            s.close()

    try:
        before = engine.pool_stats()
        worker = threading.Thread(target=run, name="fastsess-fault-sleeper", daemon=True)
        worker.start()
        victim = ids.get(timeout=10)
        wait_statement_running(admin, dialect, victim, "sleep")
        kill_backend(admin, dialect, victim)
        worker.join(15)
        assert not worker.is_alive(), "the statement was not interrupted by the kill"
        exc = outcome.get("exc")
        assert type(exc) is errors.ConnectionLost, outcome
        stats = engine.pool_stats()
        assert stats["connections_discarded"] - before["connections_discarded"] == 1, stats
        assert stats["in_use"] == 0 and stats["size"] == 0, stats
        got, failures = _sessions(engine, 5)
        assert [repr(e) for e in failures] == [] and victim not in got
    finally:
        engine.close()
