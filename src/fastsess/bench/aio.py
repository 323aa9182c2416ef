"""The async scenarios (issue 12): their floors and stacks.

Everything async runs on the workload's one event loop (``Workload.loop``).
An ``Impl.run`` here is ``loop.run_until_complete`` of one batch (x2,000
cycles, x5,000 selects, one 10k-row fetch), so the runner times it like any
sync run and the loop's own per-call cost is spread over the batch.

Floors: psycopg's ``AsyncConnection`` on PostgreSQL, asyncmy on MySQL, the
same code for both (their cursors have the same awaitable API).  Stacks:
fastsess async, SQLAlchemy async (``postgresql+psycopg``, ``mysql+asyncmy``:
the floor's own drivers) and asyncpg (PostgreSQL only).  As in the sync
bench, each engine holds one connection and lends it to the floor; asyncpg's
connection is not the floor's driver, so it is compared with the floor on
the lender's connection (marked with a dagger).
"""

from __future__ import annotations

import contextlib

from .base import NotApplicable, Stack, Unavailable
from .connect import raw_connect_async, sqlalchemy_url
from .scenarios import ROW_COLUMNS, Impl, Workload, values


def _on_loop(w: Workload, batch):
    """``batch`` (a coroutine function) as a sync ``Impl.run`` on the workload's loop."""
    run = w.loop.run_until_complete
    return lambda: run(batch())


def _cycle_outcome(result):
    return result[0], values(result[1])


def afloor_impl(key: str, w: Workload, conn) -> Impl:
    """The raw async driver's implementation of scenario ``key``; ``conn()``
    gives the psycopg ``AsyncConnection`` or asyncmy connection to run on."""
    n, sql = w.size[key], w.sql
    if key == "acycle":
        async def cycle():
            c = conn()
            for _ in range(n):
                cur = c.cursor()
                await cur.execute("SELECT 1")
                rows = await cur.fetchall()
                await c.commit()
            return n, rows

        return Impl(_on_loop(w, cycle), outcome=_cycle_outcome)
    if key == "apoint":
        ids, statement = w.apoint_ids, sql["point"]

        async def point():
            c = conn()
            cur = c.cursor()
            out = []
            for i in ids:
                await cur.execute(statement, (i,))
                out.append(await cur.fetchone())
            await c.commit()
            return out

        return Impl(_on_loop(w, point), outcome=w.tuples_outcome)
    if key == "afetch":
        statement = sql["fetch"]

        async def fetch():
            c = conn()
            cur = c.cursor()
            await cur.execute(statement)
            rows = await cur.fetchall()
            await c.commit()
            return rows

        return Impl(_on_loop(w, fetch), outcome=w.tuples_outcome)
    raise KeyError(key)


class AsyncStack(Stack):
    asynchronous = True

    def impl(self, key):
        batch, outcome = self.batch(key)
        return Impl(_on_loop(self.w, batch), outcome=outcome)

    def batch(self, key):  # pragma: no cover - abstract
        """(coroutine function doing the batch, outcome) of scenario ``key``."""
        raise NotImplementedError


class RawAsyncLender(AsyncStack):
    """A plain async driver connection of the bench's own: the async floor's
    connection when fastsess async cannot lend one (not installed, not asked for)."""

    key = "araw"

    def __init__(self, workload):
        super().__init__(workload)
        try:
            self.conn = workload.run_async(raw_connect_async(workload.url))
        except ImportError as e:
            raise Unavailable(f"the async driver is not installed ({e})") from None

    @contextlib.contextmanager
    def borrow(self):
        yield self.conn

    def close(self) -> None:
        self.w.run_async(self.conn.close() if self.w.dialect == "postgresql"
                         else self.conn.ensure_closed())


class AsyncFastsessStack(AsyncStack):
    """fastsess's async sessions (``create_async_engine``), on a pool of one."""

    key = "afastsess"

    def __init__(self, workload):
        super().__init__(workload)
        import fastsess

        try:
            self.engine = fastsess.create_async_engine(workload.url, max_size=1)
        except ImportError as e:  # asyncmy missing
            raise Unavailable(f"its async driver is not installed ({e})") from None

    @contextlib.contextmanager
    def borrow(self):
        # A session's own connection (``await session.connection()``): checked out
        # of the pool of one, given back when the session closes.
        w = self.w
        session = self.engine.get_session()
        try:
            yield w.run_async(session.connection())
        finally:
            w.run_async(session.close())

    def batch(self, key):
        w, e = self.w, self.engine
        n = w.size[key]
        if key == "acycle":
            async def cycle():
                manager = e.session_manager
                for _ in range(n):
                    async with manager() as s:
                        rows = (await s.execute("SELECT 1")).fetchall()
                return n, rows

            return cycle, _cycle_outcome
        if key == "apoint":
            ids, statement = w.apoint_ids, w.sql["point"]

            async def point():
                out = []
                async with e.session_manager() as s:
                    execute = s.execute
                    for i in ids:
                        out.append((await execute(statement, (i,))).fetchone())
                return out

            return point, w.rows_outcome()
        statement = w.sql["fetch"]

        async def fetch():
            async with e.session_manager() as s:
                return (await s.execute(statement)).fetchall()

        return fetch, w.rows_outcome()

    def close(self) -> None:
        self.w.run_async(self.engine.close())


class AsyncSQLAlchemyStack(AsyncStack):
    """SQLAlchemy 2 Core's asyncio extension on the floor's drivers
    (``postgresql+psycopg``, ``mysql+asyncmy``), ``text()`` and ``.mappings()``."""

    key = "asqlalchemy"

    def __init__(self, workload):
        super().__init__(workload)
        try:
            import sqlalchemy as sa
            from sqlalchemy.ext.asyncio import create_async_engine
        except ImportError as e:
            raise Unavailable(f"SQLAlchemy is not installed ({e})") from None
        try:
            import greenlet  # noqa: F401 - SQLAlchemy's asyncio extension runs on it
        except ImportError:
            raise Unavailable("SQLAlchemy's asyncio extension needs greenlet, which is not "
                              "installed") from None
        if workload.dialect == "mysql":
            try:
                import asyncmy  # noqa: F401
            except ImportError:
                raise Unavailable("asyncmy is not installed") from None
        self.sa = sa
        self.engine = create_async_engine(sqlalchemy_url(workload.url, asynchronous=True),
                                          pool_size=1, max_overflow=0)

    @contextlib.contextmanager
    def borrow(self):
        w = self.w
        connection = w.run_async(self.engine.connect())
        try:
            proxied = w.run_async(connection.get_raw_connection())
            yield proxied.driver_connection
        finally:
            w.run_async(connection.close())

    def batch(self, key):
        sa, w, e = self.sa, self.w, self.engine
        n = w.size[key]
        if key == "acycle":
            statement = sa.text("SELECT 1")

            async def cycle():
                begin = e.begin
                for _ in range(n):
                    async with begin() as c:
                        rows = (await c.execute(statement)).mappings().all()
                return n, rows

            return cycle, _cycle_outcome
        if key == "apoint":
            ids = w.apoint_ids
            statement = sa.text(f"SELECT {', '.join(ROW_COLUMNS)} FROM {w.rows_table} WHERE uuid = :key")

            async def point():
                out = []
                async with e.begin() as c:
                    execute = c.execute
                    for i in ids:
                        out.append((await execute(statement, {"key": i})).mappings().first())
                return out

            return point, w.rows_outcome()
        statement = sa.text(w.sql["fetch"])

        async def fetch():
            async with e.begin() as c:
                return (await c.execute(statement)).mappings().all()

        return fetch, w.rows_outcome()

    def close(self) -> None:
        self.w.run_async(self.engine.dispose())


class AsyncpgStack(AsyncStack):
    """asyncpg on its own connection: its Records are its rows (read by
    column name, like SQLAlchemy's RowMapping), a transaction per cycle."""

    key = "asyncpg"

    def __init__(self, workload):
        super().__init__(workload)
        if workload.dialect != "postgresql":
            raise NotApplicable("asyncpg speaks PostgreSQL only")
        try:
            import asyncpg
        except ImportError as e:
            raise Unavailable(f"asyncpg is not installed ({e})") from None
        from ..url import DatabaseURL

        u = DatabaseURL.parse(workload.url)
        # The URL's query arguments are libpq's; asyncpg has none of them.
        self.conn = workload.run_async(asyncpg.connect(
            host=u.host, port=u.port, user=u.username, password=u.password, database=u.database,
            timeout=10))

    @contextlib.contextmanager
    def borrow(self):
        yield self.conn

    def batch(self, key):
        w, c = self.w, self.conn
        n = w.size[key]
        # asyncpg gives jsonb as text (decoding is left to its users, through
        # set_type_codec): decoded with json.loads, as they would.
        outcome = w.rows_outcome(json_text=True)
        if key == "acycle":
            async def cycle():
                transaction, fetch = c.transaction, c.fetch
                for _ in range(n):
                    async with transaction():
                        rows = await fetch("SELECT 1")
                return n, rows

            return cycle, _cycle_outcome
        if key == "apoint":
            ids, statement = w.apoint_ids, w.sql["point"].replace("%s", "$1")

            async def point():
                out = []
                async with c.transaction():
                    fetchrow = c.fetchrow
                    for i in ids:
                        out.append(await fetchrow(statement, i))
                return out

            return point, outcome
        statement = w.sql["fetch"]

        async def fetch():
            async with c.transaction():
                return await c.fetch(statement)

        return fetch, outcome

    def close(self) -> None:
        self.w.run_async(self.conn.close())


def open_async_stack(key: str, workload: Workload) -> Stack:
    """The async stack ``key`` on ``workload``'s database; raises Unavailable."""
    if key == "afastsess":
        return AsyncFastsessStack(workload)
    if key == "asqlalchemy":
        return AsyncSQLAlchemyStack(workload)
    if key == "asyncpg":
        return AsyncpgStack(workload)
    raise KeyError(key)
