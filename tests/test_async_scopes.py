"""Async scopes (issue 12) on both servers: ``engine.session_manager()``,
``async_session_scope``, ``async_with_session``, ``async_atomic`` with
``on_commit``, ``async_with_retry`` and ``retry_attempts=``, one registry name
for both modes, the current session per task, and a forced deadlock retried to
success between two tasks.

Each test is a coroutine run by ``run_async`` (tests/conftest.py); its engine
is made on the running loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid

import pytest

import fastsess
from fastsess import errors, retry

from .conftest import async_backend_id, async_engine, kill_backend, raw_query, run_async
from .helpers_tx import LOCK_WAIT_S, ids


async def short_lock_waits(session, dialect) -> None:
    """tests/helpers_tx.short_lock_waits for an async session."""
    if dialect == "postgresql":
        await session.execute(f"SET lock_timeout = '{LOCK_WAIT_S}s'")
        await session.execute("SET deadlock_timeout = '100ms'")
    else:
        await session.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_S}")


def insert_sql(table) -> str:
    return f"INSERT INTO {table} (id, name) VALUES (%s, %s)"


NAME = "ünïcødé ✓ 日本語"


# -- engine.session_manager() -------------------------------------------------------------


@run_async
async def test_session_manager_commits_rolls_back_and_closes(dialect, url, table, raw_connect):
    raw = raw_connect()
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            assert isinstance(s, fastsess.AsyncSession)
            await s.execute(insert_sql(table), (1, NAME))
            assert ids(raw, table) == []  # not before the block ends
        assert s.closed and ids(raw, table) == [1]
        with pytest.raises(KeyError):
            async with engine.session_manager() as s:
                await s.execute(insert_sql(table), (2, NAME))
                raise KeyError("rolled back")
        assert s.closed and ids(raw, table) == [1]
        # A given session passes through untouched: not committed, not closed.
        mine = engine.get_session()
        async with engine.session_manager(mine) as s:
            assert s is mine
            await s.execute(insert_sql(table), (3, NAME))
        assert not mine.closed and ids(raw, table) == [1]
        # So does the current one a scope made (the scope commits it).
        async with fastsess.async_session_scope(engine) as outer:
            async with engine.session_manager() as s:
                assert s is outer
                await s.execute(insert_sql(table), (4, NAME))
            assert not outer.closed and ids(raw, table) == [1]
        await mine.commit()
        await mine.close()
        assert ids(raw, table) == [1, 3, 4]
        assert raw_query(raw, f"SELECT name FROM {table} WHERE id = 4") == [(NAME,)]
        assert engine.pool_stats()["in_use"] == 0


# -- async_session_scope ----------------------------------------------------------------------


@run_async
async def test_async_session_scope_options(dialect, url, table, raw_connect):
    raw = raw_connect()
    async with async_engine(url) as engine:
        async with fastsess.async_session_scope(engine) as s:
            await s.execute(insert_sql(table), (1, NAME))
            async with fastsess.async_session_scope(engine) as nested:  # joins, commits nothing
                assert nested is s and fastsess.current_session(engine) is s
                await nested.execute(insert_sql(table), (2, NAME))
            assert ids(raw, table) == []
        assert s.closed and ids(raw, table) == [1, 2]
        with pytest.raises(errors.SessionNotFound):
            fastsess.current_session(engine)

        # auto_commit=False: only what the block commits itself stays.
        async with fastsess.async_session_scope(engine, auto_commit=False) as s:
            await s.execute(insert_sql(table), (3, NAME))
            await s.commit()
            await s.execute(insert_sql(table), (4, NAME))
        assert ids(raw, table) == [1, 2, 3]

        # auto_rollback=False: the scope skips its ROLLBACK, closing still discards.
        before = engine.pool_stats()["rollbacks_on_checkin"]
        with pytest.raises(ZeroDivisionError):
            async with fastsess.async_session_scope(engine, auto_rollback=False) as s:
                await s.execute(insert_sql(table), (5, NAME))
                1 / 0
        assert ids(raw, table) == [1, 2, 3]
        assert engine.pool_stats()["rollbacks_on_checkin"] == before + 1

        # readonly=True: reads work, writes are refused by the server.
        async with fastsess.async_session_scope(engine, readonly=True) as s:
            rows = (await s.execute(f"SELECT id FROM {table} ORDER BY id")).fetchall()
            assert [r["id"] for r in rows] == [1, 2, 3]
            with pytest.raises(errors.ReadOnlyViolation):
                await s.execute(insert_sql(table), (6, NAME))
            await s.rollback()
        assert ids(raw, table) == [1, 2, 3]

        # session=: your own session, made current for the block, left untouched.
        mine = engine.get_session()
        async with fastsess.async_session_scope(session=mine) as s:
            assert s is mine and fastsess.current_session(engine) is mine
            async with fastsess.async_atomic(engine) as inner:  # a savepoint in it
                assert inner is mine
                await inner.execute(insert_sql(table), (7, NAME))
        assert not mine.closed and ids(raw, table) == [1, 2, 3]
        with pytest.raises(errors.SessionNotFound):
            fastsess.current_session(engine)
        await mine.commit()
        await mine.close()
        assert ids(raw, table) == [1, 2, 3, 7]

        with pytest.raises(TypeError):
            fastsess.async_session_scope(engine, retry_attempts=2)
        sync_engine = fastsess.create_engine(url)
        try:
            with pytest.raises(TypeError):
                async with fastsess.async_session_scope(sync_engine):
                    pass
        finally:
            sync_engine.close()
        with pytest.raises(TypeError):
            with fastsess.session_scope(engine):
                pass
        assert engine.pool_stats()["in_use"] == 0


# -- async_with_session ----------------------------------------------------------------------


@run_async
async def test_async_with_session_injects_a_session_unless_given_one(dialect, url, table,
                                                                     raw_connect):
    raw = raw_connect()
    async with async_engine(url) as engine:
        @fastsess.async_with_session(using=engine)
        async def add(session, i, name=NAME):
            assert fastsess.current_session(engine) is session
            await session.execute(insert_sql(table), (i, name))
            return session

        @fastsess.async_with_session(using=engine, session_arg="db")
        async def add_named(i, *, db):
            await db.execute(insert_sql(table), (i, NAME))
            return db

        assert list(inspect.signature(add).parameters) == ["i", "name"]
        s1 = await add(1)
        assert isinstance(s1, fastsess.AsyncSession) and s1.closed
        assert ids(raw, table) == [1]
        assert (await add_named(2)).closed and ids(raw, table) == [1, 2]

        # A caller's own session, by keyword or in the session's position: used as it is.
        given = engine.get_session()
        assert await add(3, session=given) is given
        assert await add(given, 4) is given
        assert await add_named(5, db=given) is given
        assert not given.closed and ids(raw, table) == [1, 2]
        await given.rollback()
        await given.close()
        assert ids(raw, table) == [1, 2]

        with pytest.raises(errors.ConflictError):
            await add(1)  # failed: rolled back and closed
        @fastsess.async_with_session(using=engine)
        async def two_then_fail(session):
            await session.execute(insert_sql(table), (6, NAME))
            raise LookupError("rolled back")

        with pytest.raises(LookupError):
            await two_then_fail()
        assert ids(raw, table) == [1, 2]

        with pytest.raises(TypeError):
            @fastsess.async_with_session(using=engine)
            def not_a_coroutine(session):
                pass
        assert engine.pool_stats()["in_use"] == 0


# -- async_atomic and on_commit --------------------------------------------------------------


@run_async
async def test_async_atomic_savepoints_and_on_commit(dialect, url, table, raw_connect):
    raw = raw_connect()
    events = []

    async def note(tag):
        await asyncio.sleep(0)
        events.append(tag)

    async with async_engine(url) as engine:
        async def audit():
            # Runs after the commit with the committed session hidden: a scope
            # here opens (and commits) a session of its own.
            async with fastsess.async_session_scope(engine) as other:
                assert other is not outer
                await other.execute(insert_sql(table), (99, "audit"))
            events.append("audit")

        fastsess.reset_session_stats()
        async with fastsess.async_atomic(engine) as outer:
            await outer.execute(insert_sql(table), (1, NAME))
            fastsess.on_commit(lambda: events.append("sync"), using=engine)
            fastsess.on_commit(functools.partial(note, "coroutine"), using=engine)
            with pytest.raises(RuntimeError):
                async with fastsess.async_atomic(engine) as inner:
                    assert inner is outer and fastsess.in_atomic_block(engine)
                    await inner.execute(insert_sql(table), (2, NAME))
                    fastsess.on_commit(lambda: events.append("dropped"), using=engine)
                    raise RuntimeError("back to the savepoint")
            async with fastsess.async_atomic(engine, savepoint=True) as inner:
                await inner.execute(insert_sql(table), (3, NAME))
                fastsess.on_commit(audit, using=engine)
                async with fastsess.async_atomic(engine, savepoint=False) as joined:
                    assert joined is outer
                    await joined.execute(insert_sql(table), (4, NAME))
            # The outer writes survived the rolled-back block.
            rows = (await outer.execute(f"SELECT id FROM {table} ORDER BY id")).fetchall()
            assert [r["id"] for r in rows] == [1, 3, 4]
            with pytest.raises(fastsess.TransactionManagementError):
                await outer.commit()
            with pytest.raises(fastsess.TransactionManagementError):
                async with fastsess.async_atomic(engine, durable=True):
                    pass
            assert events == [] and ids(raw, table) == []
        assert outer.closed
        assert events == ["sync", "coroutine", "audit"]
        assert ids(raw, table) == [1, 3, 4, 99]
        stats = fastsess.get_session_stats()
        assert (stats["savepoints"], stats["savepoint_rollbacks"]) == (2, 1)
        assert stats["committed_transactions"] == 2  # the block's and the audit's

        # A rolled-back outermost block drops every callback.
        with pytest.raises(ValueError):
            async with fastsess.async_atomic(engine) as s:
                await s.execute(insert_sql(table), (5, NAME))
                fastsess.on_commit(functools.partial(note, "never"), using=engine)
                raise ValueError("all of it")
        assert events == ["sync", "coroutine", "audit"] and ids(raw, table) == [1, 3, 4, 99]

        # A durable block that is outermost commits; the decorator form too.
        async with fastsess.async_atomic(engine, durable=True) as s:
            await s.execute(insert_sql(table), (6, NAME))

        @fastsess.async_atomic(using=engine)
        async def add(i):
            await fastsess.current_session(engine).execute(insert_sql(table), (i, NAME))
            return i

        @fastsess.async_atomic
        async def default_engine_block():  # bare form: the "default" name
            pass

        assert await add(7) == 7
        assert ids(raw, table) == [1, 3, 4, 6, 7, 99]
        with pytest.raises(TypeError):
            with fastsess.async_atomic(engine):
                pass
        with pytest.raises(TypeError):
            async with fastsess.async_atomic(engine, retry_attempts=2):
                pass
        assert engine.pool_stats()["in_use"] == 0


# -- retries --------------------------------------------------------------------------------


@pytest.fixture
def waits(monkeypatch):
    """The backoff waits the async retry loop asked for (really waited, briefly)."""
    seen = []
    real = retry._async_sleep

    async def sleep(seconds):
        seen.append(seconds)
        await real(min(seconds, 0.01))

    monkeypatch.setattr(retry, "_async_sleep", sleep)
    return seen


@run_async
async def test_async_with_retry_reruns_a_unit_that_failed_retryably(dialect, url, table,
                                                                    raw_connect, waits):
    raw = raw_connect()
    calls = []
    async with async_engine(url) as engine:
        async def unit(i, fail_times, error=errors.DeadlockDetected):
            calls.append(i)
            async with fastsess.async_session_scope(engine) as s:
                await s.execute(insert_sql(table), (i * 10 + calls.count(i), NAME))
                if calls.count(i) <= fail_times:
                    raise error("forced")
            return calls.count(i)

        fastsess.reset_session_stats()
        assert await fastsess.async_with_retry(unit, 1, 2, max_retries=3, retry_delay=0.01) == 3
        assert calls == [1, 1, 1] and ids(raw, table) == [13]  # only the last attempt's row
        assert len(waits) == 2 and 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02
        assert fastsess.get_session_stats()["retries"] == 2

        # Used up: the last error is raised after 1 + max_retries attempts.
        with pytest.raises(errors.DeadlockDetected):
            await fastsess.async_with_retry(unit, 2, 9, max_retries=2, retry_delay=0)
        assert calls.count(2) == 3 and ids(raw, table) == [13]
        # Not retryable: raised at once.
        with pytest.raises(errors.ConflictError):
            await fastsess.async_with_retry(unit, 3, 1, error=errors.ConflictError,
                                            max_retries=3, retry_delay=0)
        assert calls.count(3) == 1
        # A unit that did not begin its transaction (nested in a scope) runs once.
        async with fastsess.async_session_scope(engine, auto_commit=False):
            with pytest.raises(errors.DeadlockDetected):
                await fastsess.async_with_retry(unit, 4, 1, max_retries=3, retry_delay=0)
        assert calls.count(4) == 1 and ids(raw, table) == [13]
        # Something committed in the attempt: never run again.
        async def commits_then_fails():
            calls.append(5)
            async with fastsess.async_session_scope(engine) as s:
                await s.execute(insert_sql(table), (50 + calls.count(5), NAME))
                await s.commit()
                raise errors.DeadlockDetected("after a commit")

        with pytest.raises(errors.DeadlockDetected):
            await fastsess.async_with_retry(commits_then_fails, max_retries=3, retry_delay=0)
        assert calls.count(5) == 1 and ids(raw, table) == [13, 51]
        # The sync twin keeps the same rules.
        assert fastsess.with_retry(lambda: "once", max_retries=1) == "once"
        assert engine.pool_stats()["in_use"] == 0


@run_async
async def test_connection_lost_before_commit_is_retried_on_a_fresh_connection(
        dialect, url, table, raw_connect, waits):
    killer = raw_connect()
    backends = []
    async with async_engine(url, max_size=2) as engine:
        @fastsess.async_with_session(using=engine, retry_attempts=2, retry_delay=0)
        async def unit(session):
            backends.append(await async_backend_id(session))
            await session.execute(insert_sql(table), (len(backends), NAME))
            if len(backends) == 1:
                kill_backend(killer, dialect, backends[0])  # this unit's own connection
            await session.execute(f"UPDATE {table} SET n = 1 WHERE id = %s", (len(backends),))

        fastsess.reset_session_stats()
        await unit()
        assert len(backends) == 2 and backends[0] != backends[1]
        assert raw_query(killer, f"SELECT id, n FROM {table}") == [(2, 1)]
        assert fastsess.get_session_stats()["retries"] == 1
        stats = engine.pool_stats()
        assert (stats["in_use"], stats["connections_discarded"]) == (0, 1)


@pytest.mark.parametrize("form", ["async_with_session", "async_atomic", "async_with_retry"])
@run_async
async def test_deadlock_between_two_tasks_is_retried_to_success(dialect, url, table, raw_connect,
                                                                waits, form):
    raw_query(raw_connect(), f"INSERT INTO {table} (id, n) VALUES (1, 0), (2, 0)")
    barrier = asyncio.Barrier(2)
    calls = {"A": 0, "B": 0}
    committed = []
    outcome = {}

    async with async_engine(url) as engine:
        async def body(session, label, first, second):
            calls[label] += 1
            await short_lock_waits(session, dialect)
            await session.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (first,))
            if calls[label] == 1:
                # Both hold their first row: the second updates deadlock.
                await asyncio.wait_for(barrier.wait(), 30)
            await session.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (second,))
            await session.execute(f"INSERT INTO {table} (id, n) VALUES (%s, 0)",
                                  (10 * first + calls[label],))
            attempt = calls[label]
            fastsess.on_commit(lambda: committed.append((label, attempt)), using=engine)

        async def worker(label, first, second):
            try:
                if form == "async_with_session":
                    @fastsess.async_with_session(using=engine, retry_attempts=3, retry_delay=0.01)
                    async def unit(session):
                        await body(session, label, first, second)
                    await unit()
                elif form == "async_atomic":
                    @fastsess.async_atomic(using=engine, retry_attempts=3, retry_delay=0.01)
                    async def unit():
                        await body(fastsess.current_session(engine), label, first, second)
                    await unit()
                else:
                    async def unit():
                        async with fastsess.async_session_scope(engine) as session:
                            await body(session, label, first, second)
                    await fastsess.async_with_retry(unit, max_retries=3, retry_delay=0.01)
                outcome[label] = "ok"
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                outcome[label] = e

        fastsess.reset_session_stats()
        await asyncio.gather(worker("A", 1, 2), worker("B", 2, 1))
        assert outcome == {"A": "ok", "B": "ok"}
        assert sorted(calls.values()) == [1, 2]  # the loser ran exactly twice
        first_row = {"A": 1, "B": 2}
        inserted = {10 * first_row[label] + n: 0 for label, n in calls.items()}
        # Each unit's writes are present exactly once: both rows updated twice,
        # one insert per unit, none from the failed attempt.
        assert dict(raw_query(raw_connect(), f"SELECT id, n FROM {table}")) == \
            {1: 2, 2: 2, **inserted}
        assert sorted(committed) == sorted([("A", calls["A"]), ("B", calls["B"])])
        stats = fastsess.get_session_stats()
        assert stats["retries"] == 1 and len(waits) == 1 and 0.005 <= waits[0] <= 0.01
        assert stats["committed_transactions"] == 2 and stats["failed_transactions"] == 1
        assert engine.pool_stats()["in_use"] == 0


# -- one registry name for both modes ------------------------------------------------------------


@run_async
async def test_one_registered_name_serves_sync_and_async_scopes(dialect, url, table, raw_connect):
    name = f"async_reg_{uuid.uuid4().hex[:8]}"
    raw = raw_connect()
    sync_engine = fastsess.configure_factory(url, config={"max_size": 3, "timeout": 5}, name=name)
    try:
        with fastsess.session_scope(using=name) as s:
            assert s.engine is sync_engine
            s.execute(insert_sql(table), (1, NAME))
        async_engine_ = fastsess.get_async_engine(name)
        assert isinstance(async_engine_, fastsess.AsyncEngine)
        assert fastsess.get_async_engine(name) is async_engine_
        assert async_engine_.url == sync_engine.url and async_engine_.name == name
        assert async_engine_.pool_stats()["max_size"] == 3
        async with fastsess.async_session_scope(using=name) as s:
            assert isinstance(s, fastsess.AsyncSession) and s.engine is async_engine_
            assert fastsess.current_session(name) is s
            rows = (await s.execute(f"SELECT id, name FROM {table}")).fetchall()
            assert rows == [{"id": 1, "name": NAME}]
            await s.execute(insert_sql(table), (2, NAME))

        @fastsess.async_with_session(using=name)
        async def add(session, i):
            assert session.engine is async_engine_
            await session.execute(insert_sql(table), (i, NAME))

        await add(3)
        async with fastsess.async_atomic(using=name) as s:
            await s.execute(insert_sql(table), (4, NAME))
        assert ids(raw, table) == [1, 2, 3, 4]
        assert async_engine_.pool_stats()["in_use"] == 0
        with pytest.raises(errors.EngineNotFound):
            fastsess.get_async_engine(f"{name}_unknown")
    finally:
        fastsess.destroy_engine(name)
    assert async_engine_.closed and sync_engine.closed
    with pytest.raises(errors.EngineNotFound):
        fastsess.get_async_engine(name)
    with pytest.raises(errors.EngineNotFound):
        async with fastsess.async_session_scope(using=name):
            pass


# -- the current session belongs to its task ----------------------------------------------------


@run_async
async def test_child_tasks_never_use_the_parent_session(dialect, url, table, raw_connect):
    raw = raw_connect()
    async with async_engine(url, max_size=4) as engine:
        async def child(i):
            with pytest.raises(errors.SessionNotFound):
                fastsess.current_session(engine)
            async with engine.session_manager() as other:
                assert other is not parent  # a session of its own, not the parent's
            async with fastsess.async_session_scope(engine) as mine:
                assert mine is not parent and mine is not other
                bid = await async_backend_id(mine)
                await mine.execute(insert_sql(table), (10 + i, NAME))
                async with fastsess.async_atomic(engine) as block:  # nested in the child's own
                    assert block is mine
            return bid

        async def atomic_child(i):
            async with fastsess.async_atomic(engine) as mine:  # outermost: its own transaction
                assert mine is not parent
                await mine.execute(insert_sql(table), (10 + i, NAME))
                return await async_backend_id(mine)

        with pytest.raises(LookupError):
            async with fastsess.async_session_scope(engine) as parent:
                await parent.execute(insert_sql(table), (1, NAME))
                parent_bid = await async_backend_id(parent)
                children = [await asyncio.create_task(child(1))]
                children += await asyncio.gather(child(2), child(3), atomic_child(4))
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(child(5)), group.create_task(atomic_child(6))]
                children += [t.result() for t in tasks]
                # Each child committed its own transaction; the parent's is still open.
                assert ids(raw, table) == [11, 12, 13, 14, 15, 16]
                assert parent_bid not in children
                assert fastsess.current_session(engine) is parent
                assert (await parent.execute(f"SELECT count(*) AS n FROM {table}")).fetchone() \
                    == {"n": 7}
                raise LookupError("the parent rolls back alone")
        assert ids(raw, table) == [11, 12, 13, 14, 15, 16]
        assert engine.pool_stats()["in_use"] == 0


@run_async
async def test_a_session_is_closed_when_its_scope_exits(dialect, url, table, raw_connect):
    async with async_engine(url) as engine:
        scope_over = asyncio.Event()

        async def late_use(session):
            await asyncio.wait_for(scope_over.wait(), 10)
            await session.execute(insert_sql(table), (2, NAME))

        async with fastsess.async_session_scope(engine) as s:
            await s.execute(insert_sql(table), (1, NAME))
            late = asyncio.create_task(late_use(s))
            await asyncio.sleep(0)
        scope_over.set()
        assert s.closed and not s.has_connection
        with pytest.raises(errors.SessionClosed):
            await late  # a task that kept the session cannot start a transaction nobody commits
        with pytest.raises(errors.SessionClosed):
            await s.execute("SELECT 1")
        for scope in (engine.session_manager(), fastsess.async_atomic(engine)):
            async with scope as other:
                await other.execute("SELECT 1")
            with pytest.raises(errors.SessionClosed):
                await other.execute("SELECT 1")

        @fastsess.async_with_session(using=engine)
        async def keep(session):
            return session

        kept = await keep()
        with pytest.raises(errors.SessionClosed):
            await kept.insert_rows(table, [{"id": 3, "name": NAME, "n": None}])
        assert ids(raw_connect(), table) == [1]
        assert engine.pool_stats()["in_use"] == 0


# (The coroutine of `after` below, made but never awaited once `fails` raised: see
# test_on_commit_runs_sync_and_coroutine_callbacks_in_registration_order.)
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@run_async
async def test_on_commit_coroutine_callbacks_that_raise(dialect, url, table, raw_connect, caplog):
    events = []

    async def fails():
        events.append("fails")
        raise OSError("callback failed")

    async def after():
        events.append("after")

    async with async_engine(url) as engine:
        # robust=True: logged, the next callbacks still run.
        caplog.set_level("ERROR", logger="fastsess.session")
        async with fastsess.async_atomic(engine) as s:
            await s.execute(insert_sql(table), (1, NAME))
            fastsess.on_commit(fails, using=engine, robust=True)
            fastsess.on_commit(after, using=engine)
        assert events == ["fails", "after"]
        assert any("on_commit callback" in r.getMessage() for r in caplog.records)
        # Not robust: its error comes out of the block, the transaction is committed,
        # the callbacks after it do not run.
        with pytest.raises(OSError, match="callback failed"):
            async with fastsess.async_atomic(engine) as s:
                await s.execute(insert_sql(table), (2, NAME))
                fastsess.on_commit(fails, using=engine)
                fastsess.on_commit(after, using=engine)
        assert events == ["fails", "after", "fails"]
        assert ids(raw_connect(), table) == [1, 2]
        # With no transaction to wait for, the callback runs at once (a coroutine
        # callback's coroutine is handed back to be awaited).
        pending = fastsess.on_commit(after, using=engine)
        assert inspect.isawaitable(pending)
        await pending
        assert events[-1] == "after"
        assert engine.pool_stats()["in_use"] == 0


@run_async
async def test_on_commit_runs_sync_and_coroutine_callbacks_in_registration_order(dialect, url,
                                                                                 table):
    events = []

    async def note(tag):
        await asyncio.sleep(0)
        events.append(tag)

    async def fails():
        events.append("fails")
        raise OSError("callback failed")

    async with async_engine(url) as engine:
        async with fastsess.async_atomic(engine) as s:
            await s.execute(insert_sql(table), (1, NAME))
            fastsess.on_commit(functools.partial(note, "1 coroutine"), using=engine)
            fastsess.on_commit(lambda: events.append("2 sync"), using=engine)
            fastsess.on_commit(functools.partial(note, "3 coroutine"), using=engine)
        assert events == ["1 coroutine", "2 sync", "3 coroutine"]
        # A callback that raises stops the remaining ones (README, fastsess.atomic).
        del events[:]
        with pytest.raises(OSError):
            async with fastsess.async_atomic(engine) as s:
                await s.execute(insert_sql(table), (2, NAME))
                fastsess.on_commit(fails, using=engine)
                fastsess.on_commit(lambda: events.append("after, sync"), using=engine)
        assert events == ["fails"]
