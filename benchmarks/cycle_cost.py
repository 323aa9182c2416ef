"""Instructions per session cycle on a stub driver, for ``valgrind --tool=callgrind``.

The stub connection answers every call at once (no socket, no server), so
what is counted is fastsess's own client-side work per cycle: checkout, one
``SELECT``, its rows as dicts, commit, close — through ``session_manager``
or another scope (``--scope``); ``--async`` runs the same through an async
engine on an awaitable stub, on one event loop, and ``--scope raw`` the
stub driver's own loop (cursor, execute, fetchall, commit) for comparison.
Run it with ``--n 0`` and with ``--n N`` and divide the difference of the
two totals by N:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/cycle_cost.py --n 20000 --scope session_manager [--async]
"""

from __future__ import annotations

import argparse
import asyncio

import fastsess
from fastsess.drivers.base import DriverAdapter
from fastsess.engine import AsyncEngine, Engine


class _Cursor:
    description = (("one",),)
    rowcount = 1

    def execute(self, statement, params=None):
        pass

    def fetchall(self):
        return [(1,)]

    def close(self):
        pass


class _Connection:
    def cursor(self):
        return _Cursor()

    def commit(self):
        pass

    def rollback(self):
        pass

    def close(self):
        pass


class StubAdapter(DriverAdapter):
    dialect = "postgresql"
    Error = ()  # nothing to catch: the stub never fails

    def connect(self):
        return _Connection()

    def usable(self, raw):
        return True

    def reset(self, raw, in_transaction):
        return True

    def translate(self, exc, connecting=False):  # pragma: no cover - never called
        raise exc


class StubEngine(Engine):
    def _make_adapter(self, url, connect_args, readonly):
        return StubAdapter(url, connect_args, readonly)


class _AsyncCursor(_Cursor):
    async def execute(self, statement, params=None):
        pass

    async def fetchall(self):
        return [(1,)]


class _AsyncConnection(_Connection):
    def cursor(self):
        return _AsyncCursor()

    async def commit(self):
        pass

    async def rollback(self):
        pass


class AsyncStubAdapter(StubAdapter):
    async def connect(self):
        return _AsyncConnection()

    def reset_state(self, raw, in_transaction):
        return True

    async def reset(self, raw, in_transaction):
        return True


class AsyncStubEngine(AsyncEngine):
    def _make_adapter(self, url, connect_args, readonly):
        return AsyncStubAdapter(url, connect_args, readonly)


URL = "postgresql://stub@127.0.0.1/stub"


def run_sync(scope: str, n: int) -> None:
    engine = StubEngine(URL, max_size=1)
    if scope == "raw":
        conn = _Connection()

        def cycle():
            cur = conn.cursor()
            cur.execute("SELECT 1 AS one")
            rows = cur.fetchall()
            conn.commit()
            return [{"one": r[0]} for r in rows]
    elif scope == "session_manager":
        def cycle():
            with engine.session_manager() as s:
                return s.execute("SELECT 1 AS one").fetchall()
    elif scope == "session_scope":
        def cycle():
            with fastsess.session_scope(engine) as s:
                return s.execute("SELECT 1 AS one").fetchall()
    elif scope == "with_session":
        @fastsess.with_session(using=engine)
        def cycle(session):
            return session.execute("SELECT 1 AS one").fetchall()
    else:
        @fastsess.atomic(using=engine)
        def cycle():
            return fastsess.current_session(engine).execute("SELECT 1 AS one").fetchall()

    assert cycle() == [{"one": 1}]
    for _ in range(n):
        cycle()
    engine.close()


async def run_async(scope: str, n: int) -> None:
    engine = AsyncStubEngine(URL, max_size=1)
    if scope == "raw":
        conn = _AsyncConnection()

        async def cycle():
            cur = conn.cursor()
            await cur.execute("SELECT 1 AS one")
            rows = await cur.fetchall()
            await conn.commit()
            return [{"one": r[0]} for r in rows]
    elif scope == "session_manager":
        async def cycle():
            async with engine.session_manager() as s:
                return (await s.execute("SELECT 1 AS one")).fetchall()
    elif scope == "session_scope":
        async def cycle():
            async with fastsess.async_session_scope(engine) as s:
                return (await s.execute("SELECT 1 AS one")).fetchall()
    elif scope == "with_session":
        @fastsess.async_with_session(using=engine)
        async def cycle(session):
            return (await session.execute("SELECT 1 AS one")).fetchall()
    else:
        @fastsess.async_atomic(using=engine)
        async def cycle():
            return (await fastsess.current_session(engine).execute("SELECT 1 AS one")).fetchall()

    assert await cycle() == [{"one": 1}]
    for _ in range(n):
        await cycle()
    await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--scope", default="session_manager",
                        choices=["raw", "session_manager", "session_scope", "with_session", "atomic"])
    parser.add_argument("--async", dest="asynchronous", action="store_true",
                        help="an async engine on an awaitable stub, on one event loop")
    args = parser.parse_args()
    if args.asynchronous:
        asyncio.run(run_async(args.scope, args.n))
    else:
        run_sync(args.scope, args.n)


if __name__ == "__main__":
    main()
