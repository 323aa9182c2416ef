"""The async pool (issue 12) on both servers: many concurrent tasks without
cross-talk, cancellation (mid-query, while waiting, while being woken), and
killed backends.

Every wait is bounded (``until``, ``asyncio.wait_for``, ``run_async``'s
timeout); the assertions are on events and counters, never on timings.
Backends are killed only when this test's own engine opened them, found
through its own sessions.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import fastsess
from fastsess import errors

from .conftest import async_backend_id, async_engine, kill_backend, raw_query, run_async
from .faults.conftest import alive_backends, wait_statement_running
from .helpers_tx import ids

SLEEP_SQL = {"postgresql": "SELECT pg_sleep(5)", "mysql": "SELECT SLEEP(5)"}
BACKEND_SQL = {"postgresql": "pg_backend_pid()", "mysql": "CONNECTION_ID()"}


async def until(condition, what: str, steps: int = 20000) -> None:
    """Let the loop run until ``condition()`` holds (bounded in iterations
    and, through small sleeps after the first ones, in time)."""
    for i in range(steps):
        if condition():
            return
        await asyncio.sleep(0 if i < 1000 else 0.001)
    pytest.fail(f"never happened: {what}")


def gone_within(admin, dialect, bids, seconds) -> None:
    """Poll until the server has none of backends ``bids`` left (bounded)."""
    deadline = time.monotonic() + seconds
    while alive_backends(admin, dialect, bids):
        if time.monotonic() > deadline:
            pytest.fail(f"backends {bids} still alive after {seconds} s")
        time.sleep(0.01)


def settled(engine, max_size) -> dict:
    """The pool's stats, asserted to hold nothing: no slot in use, nobody waiting."""
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["waiting"] == 0, stats
    assert stats["size"] <= max_size and stats["idle"] == stats["size"], stats
    return stats


async def serves_max_size_at_once(engine, max_size) -> set:
    """Hold ``max_size`` sessions at the same time (each waits for all the
    others to have a connection); returns their backend ids."""
    barrier = asyncio.Barrier(max_size)

    async def hold():
        async with engine.session_manager() as s:
            bid = await async_backend_id(s)
            await asyncio.wait_for(barrier.wait(), 10)
            return bid

    bids = await asyncio.gather(*(hold() for _ in range(max_size)))
    assert len(set(bids)) == max_size
    return set(bids)


async def unique_values(engine, n, avoid=()) -> set:
    """``n`` concurrent sessions, each running ``SELECT %s AS v`` with a
    unique value: each gets exactly its own value back; returns the backend
    ids they ran on (none of ``avoid``)."""
    bid_sql = BACKEND_SQL[engine.dialect_name]

    async def one(i):
        value = f"v{i}-{uuid.uuid4().hex}-ü"
        async with engine.session_manager() as s:
            result = await s.execute(f"SELECT %s AS v, {bid_sql} AS bid", (value,))
            rows = result.fetchall()
        assert [r["v"] for r in rows] == [value]
        return int(rows[0]["bid"])

    bids = set(await asyncio.gather(*(one(i) for i in range(n))))
    assert not bids & set(avoid)
    return bids


# -- 200 concurrent tasks --------------------------------------------------------------------


@run_async
async def test_200_concurrent_tasks_each_have_their_own_session(dialect, url):
    max_size = 8
    if dialect == "postgresql":
        set_sql, get_sql = "SELECT set_config('fastsess.t', %s, false)", \
            "SELECT current_setting('fastsess.t') AS v"
    else:
        set_sql, get_sql = "SET @t = %s", "SELECT @t AS v"
    seen_waiting = []
    async with async_engine(url, max_size=max_size, timeout=30) as engine:
        async def task(i):
            mine = f"tâsk {i} {uuid.uuid4().hex}"
            async with fastsess.async_session_scope(engine) as s:
                await s.execute(set_sql, (mine,))
                for _ in range(3):
                    await asyncio.sleep(0)  # let the others run in between
                    assert fastsess.current_session(engine) is s
                stats = engine.pool_stats()
                seen_waiting.append(stats["waiting"])
                assert stats["size"] <= max_size and stats["in_use"] <= max_size
                got = (await s.execute(get_sql)).fetchone()["v"]
                return s, mine, got

        results = await asyncio.gather(*(task(i) for i in range(200)))
        assert [got for _, _, got in results] == [mine for _, mine, _ in results]
        assert len({id(s) for s, _, _ in results}) == 200  # (all alive: ids are unique)
        assert all(s.closed for s, _, _ in results)
        assert max(seen_waiting) > 0  # tasks really waited for a connection
        stats = settled(engine, max_size)
        assert stats["checkouts"] == 200 and stats["connections_opened"] <= max_size
        assert stats["timeouts"] == 0 and stats["connections_discarded"] == 0


# -- a task cancelled in the middle of a query -------------------------------------------------


@run_async
async def test_task_cancelled_mid_query_gives_back_its_slot_and_no_stale_result(
        dialect, url, raw_connect):
    max_size = 2
    admin = raw_connect()
    async with async_engine(url, max_size=max_size, timeout=10) as engine:
        task, bid = await start_statement(engine.session_manager, admin, dialect,
                                          SLEEP_SQL[dialect], "sleep")
        assert engine.pool_stats()["in_use"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = settled(engine, max_size)
        # Not reused: the interrupted connection was closed, not kept.
        assert stats["connections_discarded"] == 1 and stats["size"] == 0
        # The next 100 checkouts (2 connections, 100 tasks) each get their own value.
        bids = await unique_values(engine, 100, avoid={bid})
        assert 1 <= len(bids) <= max_size
        stats = settled(engine, max_size)
        assert stats["connections_discarded"] == 1 and stats["timeouts"] == 0
        await serves_max_size_at_once(engine, max_size)
    # The server let the victim go (psycopg cancels the query; fastsess sends
    # MariaDB a KILL QUERY): nothing of it is left to wait for.
    gone_within(admin, dialect, [bid], 10)


@run_async
async def test_scope_cancelled_mid_query_commits_nothing(dialect, url, raw_connect, table):
    admin = raw_connect()
    async with async_engine(url, max_size=2, timeout=10) as engine:
        bid = await cancel_in_scope(engine, admin, dialect,
                                    f"INSERT INTO {table} (id, name) VALUES (1, 'never')",
                                    SLEEP_SQL[dialect], "sleep")
        settled(engine, 2)
        async with fastsess.async_session_scope(engine) as s:
            assert await async_backend_id(s) != bid
            await s.execute(f"INSERT INTO {table} (id, name) VALUES (2, 'after')")
    assert ids(admin, table) == [2]
    gone_within(admin, dialect, [bid], 10)


async def start_statement(scope, admin, dialect, sql, needle, first=None):
    """A task that runs ``first`` (if given) then ``sql`` in ``scope()``'s
    session; returns (the task, the backend id it runs on) once the server
    shows ``sql`` running (``needle``; polled in a thread: the loop goes on)."""
    started = asyncio.Event()
    victim = {}

    async def unit():
        async with scope() as s:
            if first is not None:
                await s.execute(first)
            victim["bid"] = await async_backend_id(s)
            started.set()
            await s.execute(sql)

    task = asyncio.create_task(unit())
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.to_thread(wait_statement_running, admin, dialect, victim["bid"], needle)
    return task, victim["bid"]


async def cancel_in_scope(engine, admin, dialect, first, second, needle) -> int:
    """Run ``first`` then ``second`` in an ``async_session_scope`` task and
    cancel it once the server shows ``second`` running (``needle``); returns
    the backend id the scope ran on."""
    task, bid = await start_statement(lambda: fastsess.async_session_scope(engine), admin,
                                      dialect, second, needle, first)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return bid


@run_async
async def test_a_cancelled_statement_stops_on_the_server_and_frees_its_locks(
        dialect, url, raw_connect, table):
    """A statement cancelled while it waits for a lock does not wait on: its
    transaction ends and the locks it took are free at once (psycopg sends a
    cancel request; fastsess sends MariaDB a KILL QUERY), not when the lock
    wait times out (50 s on MariaDB)."""
    admin, holder = raw_connect(), raw_connect()
    raw_query(admin, f"INSERT INTO {table} (id, name) VALUES (1, 'a'), (2, 'b')")
    admin.commit()
    raw_query(holder, "BEGIN")  # (plain connections autocommit)
    raw_query(holder, f"UPDATE {table} SET name = 'held' WHERE id = 1")  # kept locked
    try:
        async with async_engine(url, max_size=2, timeout=10) as engine:
            bid = await cancel_in_scope(engine, admin, dialect,
                                        f"UPDATE {table} SET name = 'taken' WHERE id = 2",
                                        f"SELECT name FROM {table} WHERE id = 1 FOR UPDATE",
                                        "for update")
        # engine.close() waited for the KILL QUERY; row 2's lock is free within seconds.
        raw_query(admin, "SET lock_timeout = '5s'" if dialect == "postgresql"
                  else "SET SESSION innodb_lock_wait_timeout = 5")
        raw_query(admin, f"UPDATE {table} SET name = 'free' WHERE id = 2")
        gone_within(admin, dialect, [bid], 10)
    finally:
        raw_query(holder, "ROLLBACK")
    assert raw_query(admin, f"SELECT id, name FROM {table} ORDER BY id") == [(1, "a"), (2, "free")]


# -- waiters cancelled ---------------------------------------------------------------------


async def hold_all(engine, n) -> list:
    """``n`` sessions holding a connection each, committed (so closing them
    needs no round trip and hands the connection over at once)."""
    held = [engine.get_session() for _ in range(n)]
    for s in held:
        await s.execute("SELECT 1")
        await s.commit()
    assert engine.pool_stats()["in_use"] == n
    return held


@run_async
async def test_fifty_waiters_cancelled_leak_no_slot(dialect, url):
    max_size = 4
    async with async_engine(url, max_size=max_size, timeout=30) as engine:
        held = await hold_all(engine, max_size)
        served = []

        async def waiter(i):
            async with engine.session_manager() as s:
                await s.execute("SELECT 1")
                served.append(i)

        tasks = [asyncio.create_task(waiter(i)) for i in range(50)]
        await until(lambda: engine.pool_stats()["waiting"] == 50, "50 waiters")
        for t in tasks:
            t.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
        assert served == []
        stats = engine.pool_stats()
        assert (stats["waiting"], stats["in_use"], stats["size"]) == (0, max_size, max_size)
        for s in held:
            await s.close()
        settled(engine, max_size)
        # All max_size slots serve again, at once, on the same connections.
        await serves_max_size_at_once(engine, max_size)
        stats = settled(engine, max_size)
        assert stats["connections_opened"] == max_size and stats["timeouts"] == 0


async def cancel_as_woken(engine, max_size, n):
    """``max_size`` connections held, ``n`` waiters queued; then, in one loop
    iteration each, a connection comes back (waking the first waiter in the
    queue) and that very waiter is cancelled.  Returns (the outcome of each
    waiter: "cancelled" or the value it read, the waiters served in order)."""
    held = await hold_all(engine, max_size)
    served = []

    async def waiter(i):
        async with engine.session_manager() as s:
            got = (await s.execute("SELECT %s AS v", (i,))).fetchone()["v"]
            served.append(i)
            return int(got)

    tasks = []
    for i in range(n):  # one by one: they queue in this order
        tasks.append(asyncio.create_task(waiter(i)))
        await until(lambda: engine.pool_stats()["waiting"] == i + 1, f"waiter {i} queued")
    for k in range(max_size):
        await held[k].close()  # no round trip: returns without yielding to the loop
        tasks[k].cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return ["cancelled" if isinstance(o, asyncio.CancelledError) else o for o in outcomes], served


@run_async
async def test_waiters_cancelled_as_they_are_woken_leak_no_slot(dialect, url):
    max_size, n = 4, 8
    async with async_engine(url, max_size=max_size, timeout=30) as engine:
        outcomes, served = await cancel_as_woken(engine, max_size, n)
        # Every waiter that was not cancelled got a connection and its own value.
        assert outcomes[max_size:] == list(range(max_size, n))
        assert all(o in ("cancelled", i) for i, o in enumerate(outcomes)), outcomes
        assert sorted(served) == [i for i, o in enumerate(outcomes) if o != "cancelled"]
        settled(engine, max_size)
        await serves_max_size_at_once(engine, max_size)
        stats = settled(engine, max_size)
        assert stats["connections_opened"] == max_size and stats["timeouts"] == 0


@run_async
async def test_a_waiter_cancelled_as_it_is_woken_stays_cancelled(dialect, url):
    max_size, n = 2, 4
    async with async_engine(url, max_size=max_size, timeout=30) as engine:
        outcomes, served = await cancel_as_woken(engine, max_size, n)
        # The cancelled waiters ran nothing; their connections went to the next ones.
        assert outcomes == ["cancelled"] * max_size + list(range(max_size, n))
        # (served in whatever order their queries came back)
        assert sorted(served) == list(range(max_size, n))
        settled(engine, max_size)


@run_async
async def test_timeout_and_max_waiting_while_the_pool_is_full(dialect, url):
    async with async_engine(url, max_size=1, timeout=0.2, max_waiting=1) as engine:
        held = await hold_all(engine, 1)
        first = asyncio.create_task(engine.get_session().execute("SELECT 1"))
        await until(lambda: engine.pool_stats()["waiting"] == 1, "one waiter")
        with pytest.raises(errors.PoolTooManyWaiting):
            await engine.get_session().execute("SELECT 1")
        with pytest.raises(errors.PoolTimeout):
            await first
        stats = engine.pool_stats()
        assert (stats["timeouts"], stats["waiting"], stats["in_use"]) == (1, 0, 1)
        await held[0].close()
        settled(engine, 1)


# -- killed backends ---------------------------------------------------------------------------


@run_async
async def test_idle_backends_killed_next_sessions_succeed(dialect, url, raw_connect):
    max_size, idle = 4, 3
    admin = raw_connect()
    async with async_engine(url, max_size=max_size, timeout=5) as engine:
        held = [engine.get_session() for _ in range(idle)]
        killed = [await async_backend_id(s) for s in held]
        for s in held:
            await s.commit()
            await s.close()
        assert engine.pool_stats()["idle"] == idle
        for bid in killed:
            kill_backend(admin, dialect, bid)
        # 50 sessions one after another, then every slot at once: each killed
        # connection went through a checkout and was found dead there.
        for i in range(50):
            async with engine.session_manager() as s:
                value = f"after {i} ✓"
                rows = (await s.execute(f"SELECT %s AS v, {BACKEND_SQL[dialect]} AS bid",
                                        (value,))).fetchall()
                assert rows[0]["v"] == value and int(rows[0]["bid"]) not in killed
        assert not await serves_max_size_at_once(engine, max_size) & set(killed)
        stats = settled(engine, max_size)
        assert stats["dead_on_checkout"] == idle, stats
        assert stats["connections_discarded"] == idle and stats["reconnects"] == 0, stats


@run_async
async def test_backend_killed_mid_transaction_is_connection_lost_and_nothing_commits(
        dialect, url, raw_connect, table):
    admin = raw_connect()
    async with async_engine(url, max_size=2, timeout=5) as engine:
        with pytest.raises(errors.ConnectionLost) as caught:
            async with fastsess.async_session_scope(engine) as s:
                victim = await async_backend_id(s)
                await s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'lost')")
                kill_backend(admin, dialect, victim)
                await s.execute(f"INSERT INTO {table} (id, name) VALUES (2, 'lost')")
        assert not isinstance(caught.value, errors.CommitOutcomeUnknown)
        assert caught.value.retryable is True
        stats = settled(engine, 2)
        assert stats["connections_discarded"] == 1 and stats["size"] == 0
        assert ids(admin, table) == []
        # The next session runs on another connection and commits.
        async with engine.session_manager() as s:
            assert await async_backend_id(s) != victim
            await s.execute(f"INSERT INTO {table} (id, name) VALUES (3, 'fine')")
        assert ids(admin, table) == [3]
        settled(engine, 2)


@run_async
async def test_backend_killed_during_a_statement_is_connection_lost(dialect, url, raw_connect):
    admin = raw_connect()
    async with async_engine(url, max_size=2, timeout=5) as engine:
        task, bid = await start_statement(engine.session_manager, admin, dialect,
                                          SLEEP_SQL[dialect], "sleep")
        await asyncio.to_thread(kill_backend, admin, dialect, bid)
        with pytest.raises(errors.ConnectionLost):
            await asyncio.wait_for(task, 10)
        stats = settled(engine, 2)
        assert stats["connections_discarded"] == 1
        await unique_values(engine, 10, avoid={bid})


# -- cancellation at any point of a session's life ------------------------------------------------


@run_async
async def test_cancelled_at_any_point_the_pool_stays_whole(dialect, url, table, raw_connect):
    """A unit (checkout or connect, INSERT, SELECT, COMMIT, checkin) cancelled
    at points spread over its run: whatever it was in the middle of, no slot
    leaks, nobody waits, a connection interrupted mid-statement is never
    handed out again (the next sessions read exactly their own values), and
    a unit is either wholly committed or not at all."""
    max_size = 2
    loop = asyncio.get_running_loop()
    async with async_engine(url, max_size=max_size, timeout=10) as engine:
        finished = []

        async def unit(i):
            async with engine.session_manager() as s:
                await s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (i, "ü"))
                await s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1000 + i, "ü"))
                rows = (await s.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))).fetchall()
                assert rows == [{"name": "ü"}]
            finished.append(i)

        # How long one unit takes, on a fresh connection and on a pooled one.
        began = loop.time()
        await unit(-2)
        await unit(-1)
        span = loop.time() - began
        outcomes = []
        for k in range(40):
            task = asyncio.create_task(unit(k))
            if k < 5:
                for _ in range(k):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(span * (k - 5) / 15)
            task.cancel()
            outcome = (await asyncio.gather(task, return_exceptions=True))[0]
            assert outcome is None or isinstance(outcome, asyncio.CancelledError), repr(outcome)
            outcomes.append(outcome)
            settled(engine, max_size)
        cancelled = [k for k, o in enumerate(outcomes) if o is not None]
        assert cancelled and set(finished) == {-2, -1} | (set(range(40)) - set(cancelled))
        # Each unit's two rows are there together or not at all (a unit
        # cancelled during or after its COMMIT may have committed).
        stored = set(ids(raw_connect(), table))
        assert {i for i in stored if i < 500} == {i - 1000 for i in stored if i >= 500}
        assert set(finished) <= stored
        await unique_values(engine, 20)
        settled(engine, max_size)


# -- sessions dropped without close(), the reaper, the event loop ---------------------------------


@run_async
async def test_session_dropped_without_close_gives_its_connection_back(dialect, url, table,
                                                                       raw_connect):
    async with async_engine(url, max_size=1, timeout=5) as engine:
        active = fastsess.get_session_stats()["active_sessions"]
        s = engine.get_session()
        await s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'dropped')")
        del s  # collected here, inside its transaction
        assert fastsess.get_session_stats()["active_sessions"] == active
        # The next checkout takes the orphan back (rolled back) and reuses it.
        async with engine.session_manager() as s2:
            rows = (await s2.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
            assert rows == {"n": 0}
        stats = settled(engine, 1)
        assert (stats["connections_opened"], stats["rollbacks_on_checkin"]) == (1, 1)
    assert ids(raw_connect(), table) == []


@run_async
async def test_reaper_closes_idle_connections(dialect, url):
    async with async_engine(url, max_size=3, max_idle=0.05, timeout=5) as engine:
        await serves_max_size_at_once(engine, 3)
        assert engine.pool_stats()["idle"] == 3
        await until(lambda: engine.pool_stats()["size"] == 0, "the reaper closed the idle ones")
        stats = engine.pool_stats()
        assert (stats["connections_closed"], stats["connections_discarded"]) == (3, 0)
        await unique_values(engine, 5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_async_engine_serves_only_the_loop_that_first_used_it(dialect, url):
    engine = fastsess.create_async_engine(url, max_size=1, timeout=5)

    async def use():
        async with engine.session_manager() as s:
            return (await s.execute("SELECT 1 AS one")).fetchone()

    try:
        assert asyncio.run(use()) == {"one": 1}
        with pytest.raises(RuntimeError, match="serves the event loop that first used it"):
            asyncio.run(use())
    finally:
        engine._pool.close_now()


@run_async
async def test_closing_the_engine_wakes_waiters_and_closes_returned_connections(dialect, url):
    async with async_engine(url, max_size=1, timeout=30) as engine:
        held = await hold_all(engine, 1)
        waiter = asyncio.create_task(engine.get_session().execute("SELECT 1"))
        await until(lambda: engine.pool_stats()["waiting"] == 1, "one waiter")
        await engine.close()
        with pytest.raises(errors.SessionClosed):
            await asyncio.wait_for(waiter, 10)
        assert engine.pool_stats()["waiting"] == 0
        # The connection in use is closed when it comes back, not kept.
        await held[0].close()
        stats = engine.pool_stats()
        assert (stats["in_use"], stats["size"], stats["idle"], stats["connections_closed"]) == \
            (0, 0, 0, 1)
        with pytest.raises(errors.EngineClosed):
            engine.get_session()
