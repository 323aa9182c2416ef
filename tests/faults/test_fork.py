"""``os.fork()`` with a pool in use: the child works on connections of its own
and leaves the parent's server sessions alone; the parent carries on with the
very same connections.

The child reports through a pipe and leaves with ``os._exit`` (see
``run_in_child``); before reporting it closes what it can — its sessions,
its copy of a parent's session, the engine — and collects garbage, since
closing an inherited driver connection would end the parent's server session.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time

import pytest

import fastsess

from ..conftest import raw_query
from .conftest import alive_backends, backend_id, run_in_child, stat

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def _hold_ids(engine, n):
    """Backend ids of ``n`` connections checked out at once, then given back."""
    with contextlib.ExitStack() as stack:
        sessions = []
        for _ in range(n):
            s = engine.get_session()
            stack.callback(s.close)
            sessions.append(s)
        return [backend_id(s) for s in sessions]


def _child_work(engine, sequential, concurrent):
    """The child's sessions: ids and errors (as text), bounded in count."""
    ids, failures = [], []
    for _ in range(sequential):
        try:
            with engine.session_manager() as s:
                ids.append(backend_id(s))
        except Exception as e:  # noqa: BLE001 - reported
            failures.append(f"{type(e).__name__}: {e}")
    try:
        ids.extend(_hold_ids(engine, concurrent))
    except Exception as e:  # noqa: BLE001 - reported
        failures.append(f"{type(e).__name__}: {e}")
    return ids, failures


def _settle():
    # A goodbye message the child might have sent on an inherited socket is
    # acted on by the server within milliseconds; give it a moment to show.
    time.sleep(0.2)


def test_fork_child_uses_own_connections_parent_keeps_its_own(dialect, url, raw_connect):
    idle = 3
    engine = fastsess.create_engine(url, max_size=4, timeout=2)
    admin = raw_connect()
    try:
        parent_ids = _hold_ids(engine, idle)
        assert len(set(parent_ids)) == idle and engine.pool_stats()["idle"] == idle
        before = engine.pool_stats()

        def child():
            ids, failures = _child_work(engine, sequential=5, concurrent=3)
            stats = engine.pool_stats()
            engine.close()
            gc.collect()
            return {"ids": ids, "errors": failures, "stats": stats}

        code, report = run_in_child(child)
        assert code == 0 and "result" in report, report
        result = report["result"]
        assert result["errors"] == []
        assert len(result["ids"]) == 8
        assert set(result["ids"]).isdisjoint(parent_ids), \
            f"the child used the parent's connections: {sorted(set(result['ids']) & set(parent_ids))}"
        assert result["stats"].get("inherited_dropped") == idle, result["stats"]

        _settle()
        assert alive_backends(admin, dialect, parent_ids) == set(parent_ids), \
            "the child ended some of the parent's server sessions"
        again = _hold_ids(engine, idle)
        assert sorted(again) == sorted(parent_ids)  # the very same connections
        with engine.session_manager() as s:
            assert backend_id(s) in parent_ids
        after = engine.pool_stats()
        assert after["connections_opened"] == before["connections_opened"], after
        assert after["connections_discarded"] == before["connections_discarded"], after
        assert after["in_use"] == 0 and after["size"] == idle, after
        assert stat(engine, "dead_on_checkout") == 0
        assert stat(engine, "inherited_dropped") == 0  # nothing was dropped in the parent
    finally:
        engine.close()


def test_fork_while_parent_session_holds_connection(dialect, url, raw_connect, table):
    engine = fastsess.create_engine(url, max_size=3, timeout=2)
    admin = raw_connect()
    try:
        pair = _hold_ids(engine, 2)  # two idle connections; the session takes one
        s = engine.get_session()
        held_id = backend_id(s)
        assert held_id in pair
        idle_id = (set(pair) - {held_id}).pop()
        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "before fork"))  # uncommitted
        assert engine.pool_stats()["in_use"] == 1 and engine.pool_stats()["idle"] == 1

        def child():
            ids, failures = _child_work(engine, sequential=3, concurrent=2)
            # The child's copy of the parent's session: giving it back must
            # neither roll back nor end the parent's transaction.
            s.close()
            stats = engine.pool_stats()
            engine.close()
            gc.collect()
            return {"ids": ids, "errors": failures, "stats": stats}

        code, report = run_in_child(child)
        assert code == 0 and "result" in report, report
        result = report["result"]
        assert result["errors"] == []
        assert len(result["ids"]) == 5
        assert set(result["ids"]).isdisjoint({held_id, idle_id}), \
            f"the child used the parent's connections: {result['ids']} vs {held_id}, {idle_id}"
        assert result["stats"].get("inherited_dropped") == 2, result["stats"]

        _settle()
        assert alive_backends(admin, dialect, [held_id, idle_id]) == {held_id, idle_id}
        # The parent's transaction is intact and goes on on the same connection.
        assert backend_id(s) == held_id
        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (2, "after fork"))
        s.commit()
        s.close()
        assert raw_query(admin, f"SELECT id FROM {table} ORDER BY id") == [(1,), (2,)]
        with engine.session_manager() as s2:
            assert backend_id(s2) in (held_id, idle_id)
        stats = engine.pool_stats()
        assert stats["connections_discarded"] == 0 and stats["in_use"] == 0, stats
        assert stat(engine, "dead_on_checkout") == 0
    finally:
        engine.close()


def test_fork_with_an_async_engine(dialect, url, raw_connect):
    # The parent used its async engine on a loop that stays open; the child
    # runs a loop of its own on the same engine object.
    import asyncio

    engine = fastsess.create_async_engine(url, max_size=2, timeout=5)
    sql = ("SELECT pg_backend_pid() AS id" if dialect == "postgresql"
           else "SELECT CONNECTION_ID() AS id")

    async def ids(n):
        out = []
        for _ in range(n):
            async with engine.session_manager() as s:
                out.append(int((await s.execute(sql)).fetchone()["id"]))
        return out

    loop = asyncio.new_event_loop()
    try:
        parent = loop.run_until_complete(ids(1))[0]

        def child():
            got = asyncio.run(ids(3))
            return {"ids": got, "dropped": engine.pool_stats()["inherited_dropped"]}

        code, report = run_in_child(child)
        assert code == 0, report
        result = report["result"]
        assert result["dropped"] == 1 and parent not in result["ids"]
        _settle()
        assert alive_backends(raw_connect(), dialect, [parent]) == {parent}
        assert loop.run_until_complete(ids(2)) == [parent, parent]  # the same connection
        assert engine.pool_stats()["inherited_dropped"] == 0
    finally:
        loop.run_until_complete(engine.close())
        loop.close()
