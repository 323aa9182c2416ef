"""COPY in async PostgreSQL sessions: ``AsyncPostgreSQLAdapter.copy_insert``
and ``AsyncSession._copy`` give what the sync ones give.

Each case runs the same rows through a sync ``Session`` and an
``AsyncSession`` (twin tables) and compares the COPY statements sent, the
stored rows and the errors: realistic rows, a refused value falling back to
INSERT, a duplicate key, a JSON refusal past the first chunk (the savepoint
path).  A cancellation mid-COPY discards the connection and stores nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math
import uuid

import psycopg
import pytest
from psycopg import pq

import fastsess
from fastsess import errors
from fastsess.drivers import postgresql as pg_driver

from .conftest import URLS, async_backend_id, async_engine, raw_query, run_async

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)

TZ = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))
START = datetime.datetime(2024, 3, 1, 8, 0, 0, 250000, tzinfo=TZ)
ITEMS = ("id uuid PRIMARY KEY, name varchar(200) NOT NULL, created timestamptz, doc jsonb, "
         "amount numeric(12, 4), note text, n bigint")
COLUMNS = ["id", "name", "created", "doc", "amount", "note", "n"]


def item(i: int) -> dict:
    """A realistic row: UUID key, non-ASCII text, an aware datetime, a jsonb
    dict, a Decimal, a NULL every fourth row."""
    return {"id": uuid.UUID(int=i + 1), "name": f"näme {i} ✓ 日本語 😀",
            "created": START + datetime.timedelta(seconds=i),
            "doc": {"i": i, "ünï": ["çø", None, True, 1.5], "q": "it's \"q\"\ttab"},
            "amount": decimal.Decimal(f"{i}.0125"),
            "note": None if i % 4 == 0 else f"nöte\n{i}", "n": i * 1_000_003}


@pytest.fixture
def make_table(raw_connect):
    """Creates uniquely named tables (``make_table("id int PRIMARY KEY, ..")``),
    dropped after the test."""
    conn = raw_connect()
    made = []

    def make(columns_sql):
        name = f"acp_{uuid.uuid4().hex[:12]}"
        raw_query(conn, f'CREATE TABLE "{name}" ({columns_sql})')
        made.append(name)
        return name

    yield make
    raw_query(conn, "SET lock_timeout = '30s'")
    for name in made:
        raw_query(conn, f'DROP TABLE IF EXISTS "{name}"')


@pytest.fixture
def copies(monkeypatch):
    """``watch(raw)``: a list of the COPY statements then run on ``raw`` (sync or async)."""

    def watch(raw):
        seen = []
        is_async = isinstance(raw, psycopg.AsyncConnection)
        base = pg_driver.AsyncCursor if is_async else pg_driver.Cursor

        class Recording(base):
            def copy(self, statement, *args, **kwargs):
                seen.append(str(statement))
                return super().copy(statement, *args, **kwargs)

        monkeypatch.setattr(raw, "cursor_factory", Recording)
        return seen

    return watch


def sync_insert(url, table, rows, copies, columns=None, before=None):
    """``insert_rows`` then COMMIT in a sync session: (what each gave, its
    result or error, the COPY statements with the table name taken out)."""
    engine = fastsess.create_engine(url, max_size=1, timeout=5)
    try:
        with engine.session_manager() as s:
            seen = copies(s.connection())
            if before:
                s.execute(before.format(table=table))
            outcome = _outcome(lambda: s.insert_rows(table, rows, columns=columns))
            committed = _outcome(s.commit)
    finally:
        engine.close()
    return (outcome, committed), [q.replace(table, "T") for q in seen]


async def async_insert(url, table, rows, copies, columns=None, before=None):
    """``sync_insert`` for an ``AsyncSession``."""
    async with async_engine(url, max_size=1) as engine:
        async with engine.session_manager() as s:
            assert isinstance(s, fastsess.AsyncSession)
            seen = copies(await s.connection())
            if before:
                await s.execute(before.format(table=table))
            outcome = await _async_outcome(s.insert_rows(table, rows, columns=columns))
            committed = await _async_outcome(s.commit())
        assert engine.pool_stats()["in_use"] == 0
    return (outcome, committed), [q.replace(table, "T") for q in seen]


def _outcome(call):
    try:
        return call()
    except errors.FastsessError as e:
        return _failure(e)


async def _async_outcome(awaitable):
    try:
        return await awaitable
    except errors.FastsessError as e:
        return _failure(e)


def _failure(exc) -> dict:
    return {"error": type(exc), "key": getattr(exc, "key", None),
            "value": getattr(exc, "value", None), "parameter": getattr(exc, "parameter", None)}


def stored(reader, table):
    return raw_query(reader, f'SELECT t::text FROM "{table}" t ORDER BY 1')


@run_async
async def test_realistic_rows_go_by_copy_and_are_stored_as_sync_stores_them(
        url, make_table, raw_connect, copies):
    by_sync, by_async = make_table(ITEMS), make_table(ITEMS)
    rows = [item(i) for i in range(1200)]  # over one JSON chunk: the savepoint path too
    expected = sync_insert(url, by_sync, rows, copies)
    got = await async_insert(url, by_async, rows, copies)
    assert got == expected
    assert got == ((len(rows), None), ['COPY "T" ("id", "name", "created", "doc", "amount", '
                                       '"note", "n") FROM STDIN'])
    reader = raw_connect()
    assert stored(reader, by_async) == stored(reader, by_sync)
    assert raw_query(reader, f'SELECT name, doc->>\'q\', note FROM "{by_async}" '
                             f"WHERE id = %s", (uuid.UUID(int=6),)) == \
        [("näme 5 ✓ 日本語 😀", "it's \"q\"\ttab", "nöte\n5")]


@run_async
async def test_binary_copy_as_sync(url, make_table, raw_connect, copies):
    columns_sql = "id bigint PRIMARY KEY, name text, at timestamptz, u uuid, x float8"
    by_sync, by_async = make_table(columns_sql), make_table(columns_sql)
    rows = [(i, f"é{i}" if i % 3 else None, START + datetime.timedelta(days=i), uuid.uuid4(),
             i / 7) for i in range(300)]
    columns = ["id", "name", "at", "u", "x"]
    expected = sync_insert(url, by_sync, rows, copies, columns)
    got = await async_insert(url, by_async, rows, copies, columns)
    assert got == expected
    assert "FORMAT BINARY" in got[1][0]
    reader = raw_connect()
    assert stored(reader, by_async) == stored(reader, by_sync)


@run_async
async def test_a_refused_value_falls_back_to_insert_with_the_same_result(
        url, make_table, raw_connect, copies):
    by_sync, by_async = make_table(ITEMS), make_table(ITEMS)
    rows = [item(i) for i in range(150)]
    rows[70]["amount"] = 1.1  # float -> numeric: COPY keeps 17 digits, INSERT 15
    expected = sync_insert(url, by_sync, rows, copies)
    got = await async_insert(url, by_async, rows, copies)
    assert got == expected == ((len(rows), None), [])  # refused before COPY started
    reader = raw_connect()
    assert stored(reader, by_async) == stored(reader, by_sync)
    assert raw_query(reader, f'SELECT amount::text FROM "{by_async}" WHERE id = %s',
                     (uuid.UUID(int=71),)) == [("1.1000",)]


@run_async
async def test_a_duplicate_key_raises_the_same_conflict_and_leaves_nothing(
        url, make_table, raw_connect, copies):
    by_sync, by_async = make_table(ITEMS), make_table(ITEMS)
    rows = [item(i) for i in range(400)] + [item(123)]
    expected = sync_insert(url, by_sync, rows, copies)
    got = await async_insert(url, by_async, rows, copies)
    assert got == expected
    assert got[0][0] == {"error": errors.ConflictError, "key": "id",
                         "value": str(uuid.UUID(int=124)), "parameter": None}
    assert got[0][1]["error"] is errors.TransactionAborted  # the caught error aborted it
    assert len(got[1]) == 1  # COPY ran, the server refused the duplicate
    reader = raw_connect()
    assert stored(reader, by_async) == stored(reader, by_sync) == []


@run_async
async def test_json_refused_past_the_first_chunk_rolls_back_to_the_savepoint(
        url, make_table, raw_connect, copies):
    columns_sql = "id int PRIMARY KEY, j jsonb"
    by_sync, by_async = make_table(columns_sql), make_table(columns_sql)
    rows = [(i, {"n": i, "l": [i / 2, None]}) for i in range(3 * pg_driver._JSON_CHUNK)]
    rows[2 * pg_driver._JSON_CHUNK + 5] = (2 * pg_driver._JSON_CHUNK + 5, {"bad": math.inf})
    before = "INSERT INTO \"{table}\" (id, j) VALUES (-1, '{{\"kept\": true}}')"
    expected = sync_insert(url, by_sync, rows, copies, ["id", "j"], before)
    got = await async_insert(url, by_async, rows, copies, ["id", "j"], before)
    assert got == expected
    # COPY started and was refused in a later chunk; the INSERT path then refused the value
    assert got[0][0]["error"] is errors.InvalidParameterValue and len(got[1]) == 1
    assert got[0][1] is None  # the transaction went on: its first row is committed
    reader = raw_connect()
    assert stored(reader, by_async) == stored(reader, by_sync) == [('(-1,"{""kept"": true}")',)]


@run_async
async def test_adapter_copy_insert_keeps_the_transaction_usable_and_releases_its_savepoint(
        url, make_table, raw_connect, copies):
    table = make_table("id int PRIMARY KEY, j jsonb")
    rows = [(i, {"n": i}) for i in range(2 * pg_driver._JSON_CHUNK + 1)]
    bad = list(rows)
    bad[-1] = (bad[-1][0], {"bad": math.nan})
    async with async_engine(url, max_size=1) as engine:
        adapter = engine._adapter
        async with engine.session_manager() as s:
            raw = await s.connection()
            seen = copies(raw)
            with pytest.raises(pg_driver.CopyRefused, match="column j: a JSON value json.dumps"):
                await adapter.copy_insert(raw, table, ["id", "j"], bad)
            assert len(seen) == 1
            assert raw.info.transaction_status == pq.TransactionStatus.INTRANS
            assert await adapter.copy_insert(raw, table, ["id", "j"], rows) == len(rows)
            assert await adapter.copy_insert(raw, table, ["id", "j"], []) == 0
            with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
                await raw.execute("RELEASE SAVEPOINT " + pg_driver._JSON_SAVEPOINT)
            await s.rollback()
            with pytest.raises(ValueError, match="row 1 has 1 values, expected 2"):
                await adapter.copy_insert(raw, table, ["id", "j"], [(1, None), (2,)])
    assert raw_query(raw_connect(), f'SELECT count(*) FROM "{table}"') == [(0,)]


async def _until(check, what):
    """Poll ``check()`` until it is true, for at most 20 s."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


@run_async
async def test_cancelled_mid_copy_discards_the_connection_and_stores_nothing(
        url, make_table, raw_connect):
    table = make_table(ITEMS)
    rows = [item(i) for i in range(50_000)]
    # Another transaction's uncommitted row with the key of row 1000: the
    # COPY waits on it with rows already sent, so the task is mid-COPY.
    blocker = psycopg.connect(URLS["postgresql"])
    watcher = raw_connect()
    try:
        blocker.execute(f'INSERT INTO "{table}" (id, name) VALUES (%s, %s)',
                        (rows[1000]["id"], "blocker"))
        async with async_engine(url, max_size=1) as engine:
            with pytest.raises(asyncio.CancelledError):  # out through the scope, as in a service
                async with engine.session_manager() as s:
                    pid = await async_backend_id(s)
                    task = asyncio.ensure_future(s.insert_rows(table, rows))

                    def copy_waits():
                        return raw_query(
                            watcher, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                                     "AND wait_event_type = 'Lock' AND query LIKE 'COPY%%'",
                            (pid,)) == [(1,)]

                    await _until(lambda: task.done() or copy_waits(),
                                 "the COPY to wait on the lock")
                    assert not task.done()
                    task.cancel()
                    await task
            # The connection was closed, not pooled: the next session gets another.
            async with engine.session_manager() as s:
                assert await async_backend_id(s) != pid
        blocker.rollback()
        await _until(lambda: raw_query(watcher, "SELECT count(*) FROM pg_stat_activity "
                                                "WHERE pid = %s", (pid,)) == [(0,)],
                     "the cancelled connection's backend to end")
    finally:
        blocker.close()
    assert raw_query(watcher, f'SELECT count(*) FROM "{table}"') == [(0,)]
