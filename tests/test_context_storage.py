"""The current session on contextvars: per task and thread, and what children see.

The rule under test (fastsess.current): a current session is seen only by
the task or thread that made it current; child tasks and threads start with
none and open their own; sharing is explicit (session_scope(session=s)).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import fastsess
from fastsess import SessionContextStorage, SessionNotFound, session_scope

from .helpers_tx import ids


def current_or_none(engine):
    try:
        return fastsess.current_session(engine)
    except SessionNotFound:
        return None


# -- SessionContextStorage: the task-local twin of SessionThreadStorage ---------------


def test_context_storage_per_task_and_thread():
    storage = SessionContextStorage()
    outer = object()
    storage.store_session(outer)

    async def child(i):
        assert storage.find_session() is None  # the parent's is not inherited
        mine = object()
        storage.store_session(mine)
        await asyncio.sleep(0)
        assert storage.get_session() is mine
        return i

    async def main():
        storage.store_session("main task")  # a task is not its thread
        results = await asyncio.gather(*(child(i) for i in range(20)))
        assert storage.get_session() == "main task"
        return results

    assert asyncio.run(main()) == list(range(20))
    assert storage.get_session() is outer  # the thread's own, untouched

    seen = []
    t = threading.Thread(target=lambda: seen.append(storage.find_session()))
    t.start()
    t.join()
    assert seen == [None]
    storage.remove_session()


# -- scopes and asyncio tasks --------------------------------------------------------------


def test_one_hundred_concurrent_tasks_each_have_their_own_session(engine, table, raw_connect):
    @fastsess.with_session(using=engine)
    def nested(session):
        return session

    async def task(i):
        with session_scope(using=engine) as s:
            for _ in range(3):
                await asyncio.sleep(0)  # let the other 99 run in between
                assert fastsess.current_session(engine) is s
                assert nested() is s
                with session_scope(using=engine) as again:
                    assert again is s
            # The statement runs without an await before the scope ends, so
            # one connection serves every task in turn.
            s.execute(f"INSERT INTO {table} (id) VALUES (%s)", (i,))
            return id(s)

    async def main():
        return await asyncio.gather(*(task(i) for i in range(100)))

    sessions = asyncio.run(main())
    assert len(set(sessions)) == 100
    assert ids(raw_connect(), table) == list(range(100))
    assert current_or_none(engine) is None
    assert engine.pool_stats()["in_use"] == 0


def test_child_task_does_not_see_the_parent_session(engine, table, raw_connect):
    async def child(parent):
        assert current_or_none(engine) is None
        with session_scope(using=engine) as mine:
            assert mine is not parent
            mine.execute(f"INSERT INTO {table} (id) VALUES (2)")
        return "child committed"

    async def main():
        with session_scope(using=engine) as parent:
            parent.execute(f"INSERT INTO {table} (id) VALUES (1)")
            assert await asyncio.create_task(child(parent)) == "child committed"
            # The child's transaction is its own: committed before the parent's.
            assert ids(raw_connect(), table) == [2]
            assert fastsess.current_session(engine) is parent
            raise RuntimeError("the parent rolls back alone")

    with pytest.raises(RuntimeError):
        asyncio.run(main())
    assert ids(raw_connect(), table) == [2]


def test_sharing_with_a_child_task_is_explicit(engine, table, raw_connect):
    async def child(shared):
        with session_scope(session=shared):
            with fastsess.atomic(using=engine) as s:  # a savepoint in the parent's transaction
                assert s is shared
                s.execute(f"INSERT INTO {table} (id) VALUES (2)")
        assert current_or_none(engine) is None

    async def main():
        with session_scope(using=engine) as parent:
            parent.execute(f"INSERT INTO {table} (id) VALUES (1)")
            await asyncio.create_task(child(parent))
            assert ids(raw_connect(), table) == []  # nothing committed by the child

    asyncio.run(main())
    assert ids(raw_connect(), table) == [1, 2]


# -- threads ------------------------------------------------------------------------------


def test_threads_do_not_see_the_session_even_with_a_copied_context(engine):
    seen = {}
    with session_scope(using=engine) as s:
        ctx = contextvars.copy_context()
        plain = threading.Thread(target=lambda: seen.setdefault("plain", current_or_none(engine)))
        copied = threading.Thread(
            target=lambda: seen.setdefault("copied", ctx.run(current_or_none, engine)))
        for t in (plain, copied):
            t.start()
            t.join()

        async def to_thread():
            # asyncio.to_thread copies the context into the worker thread.
            return await asyncio.to_thread(current_or_none, engine)

        seen["to_thread"] = asyncio.run(to_thread())
        seen["same thread, copied context"] = ctx.run(current_or_none, engine)
    assert seen == {"plain": None, "copied": None, "to_thread": None,
                    "same thread, copied context": s}


def test_a_scope_stops_being_current_in_copies_of_the_context(engine):
    with session_scope(using=engine):
        ctx = contextvars.copy_context()
    # The copy still holds the frame, but the scope is over: nothing is current.
    assert ctx.run(current_or_none, engine) is None


def test_each_thread_has_its_own_session(engine):
    barrier = threading.Barrier(8, timeout=30)
    seen = {}

    def work(i):
        with session_scope(using=engine) as s:
            barrier.wait()  # all eight are inside their scopes at once
            seen[i] = (s, fastsess.current_session(engine) is s)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(ok for _, ok in seen.values()) and len({id(s) for s, _ in seen.values()}) == 8


def test_two_engines_have_separate_current_sessions(url):
    a = fastsess.create_engine(url, max_size=1)
    b = fastsess.create_engine(url, max_size=1)
    try:
        with session_scope(using=a) as sa:
            with session_scope(using=b) as sb:
                assert sa is not sb
                assert fastsess.current_session(a) is sa and fastsess.current_session(b) is sb
                with session_scope(using=a) as again:
                    assert again is sa
            assert current_or_none(b) is None
    finally:
        a.close()
        b.close()
