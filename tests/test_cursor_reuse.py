"""One reused driver cursor per session connection (issue 13): a result stays
readable, and unchanged, whatever the session runs after it.

A session runs ``execute`` on one cursor per connection (PostgreSQL, and every
async session; mysqlclient's cursors cost less to make than to detach); before the next
statement it detaches the last result (its unread rows, ``rowcount``,
``lastrowid`` and ``description`` copied onto it).  These tests interleave
statements with partly read results, iterations and failures on realistic
rows (UUID keys, non-ASCII text, aware datetimes, JSON, NULLs) and compare
what each result gives with what the same statement gives read whole, alone.
"""

from __future__ import annotations

import pytest

import fastsess
from fastsess import errors
from fastsess.result import BufferedRows

from .conftest import async_engine, run_async
from .test_async_session import COLUMNS, drop_schema, item, make_schema

N_ROWS = 300  # more than Result's iteration chunk (128)


@pytest.fixture
def items(dialect, url, raw_connect):
    """A realistic ``items`` table holding N_ROWS rows; dropped after."""
    raw = raw_connect()
    names = make_schema(dialect, raw, "cur")
    setup = fastsess.create_engine(url, max_size=1)
    try:
        with setup.session_manager() as s:
            s.insert_rows(names["items"], [item(i) for i in range(N_ROWS)])
    finally:
        setup.close()
    yield names["items"]
    drop_schema(dialect, raw, names)


def _select(items):
    return f"SELECT {', '.join(COLUMNS)} FROM {items} ORDER BY name"


def test_results_survive_later_statements(engine, items):
    with engine.session_manager() as s:
        everything = s.execute(_select(items)).fetchall()
    assert len(everything) == N_ROWS
    with engine.session_manager() as s:
        partly = s.execute(_select(items))
        first = partly.fetchone()
        some = partly.fetchmany(3)
        # Other statements on the same session: a point select, a write, a read with no rows.
        point = s.execute(f"SELECT {', '.join(COLUMNS)} FROM {items} WHERE id = %s",
                          (everything[7]["id"],))
        update = s.execute(f"UPDATE {items} SET note = %s WHERE note IS NULL", ("fïlled ✓",))
        empty = s.execute(f"SELECT id FROM {items} WHERE name = %s", ("no such näme",))
        # Each result reads what its own statement returned.
        assert [first] + some == everything[:4]
        assert partly.fetchall() == everything[4:]
        assert point.fetchall() == [everything[7]]
        assert update.rowcount == sum(r["note"] is None for r in everything) > 0
        with pytest.raises(errors.ProgrammingError, match="no rows to fetch"):
            update.fetchall()
        assert update.description is None
        assert empty.fetchall() == [] and [d[0] for d in empty.description] == ["id"]
        assert [d[0] for d in partly.description] == COLUMNS
        s.rollback()


def test_iteration_with_statements_inside_the_loop(engine, items):
    with engine.session_manager() as s:
        everything = s.execute(_select(items)).fetchall()
        seen, looked_up = [], []
        for row in s.execute(_select(items)):
            seen.append(row)
            # Reads and writes inside the loop, on the same session.
            looked_up.append(s.execute(f"SELECT name FROM {items} WHERE id = %s",
                                       (row["id"],)).fetchone()["name"])
            if len(seen) % 50 == 0:
                s.execute(f"UPDATE {items} SET amount = amount + 1 WHERE id = %s", (row["id"],))
        assert seen == everything
        assert looked_up == [r["name"] for r in everything]
        s.rollback()


def test_one_cursor_per_connection(engine, items):
    if not engine._adapter.reuse_cursor:  # mysqlclient: a cursor per statement, never detached
        with engine.session_manager() as s:
            results = [s.execute(f"SELECT count(*) AS n FROM {items}") for _ in range(3)]
            assert s._cursor is None and len({id(r._cursor) for r in results}) == 3
            assert [r.fetchone()["n"] for r in results] == [N_ROWS] * 3
        return
    with engine.session_manager() as s:
        s.execute("SELECT 1")
        cursor = s._cursor
        results = [s.execute(f"SELECT count(*) AS n FROM {items}") for _ in range(3)]
        assert s._cursor is cursor and cursor is not None
        # The earlier results were detached (snapshots), the last one is live.
        assert [type(r._cursor) for r in results] == [BufferedRows, BufferedRows, type(cursor)]
        assert [r.fetchone()["n"] for r in results] == [N_ROWS] * 3
    # A new connection, a new cursor.
    with engine.session_manager() as s:
        s.execute("SELECT 1")
        assert s._cursor is not None and s._cursor is not cursor


def test_a_closed_result_leaves_the_session_working(engine, items):
    with engine.session_manager() as s:
        r = s.execute(_select(items))
        r.fetchone()
        r.close()
        assert r.fetchall() == []
        assert len(s.execute(_select(items)).fetchall()) == N_ROWS


def test_a_failed_statement_leaves_earlier_results_and_the_cursor_usable(engine, dialect, items):
    with engine.session_manager() as s:
        before = s.execute(_select(items))
        with pytest.raises(errors.DatabaseError):  # MySQL says OperationalError
            s.execute(f"SELECT no_such_column FROM {items}")
        s.rollback()
        assert len(before.fetchall()) == N_ROWS
        assert s.execute(f"SELECT count(*) AS n FROM {items}").fetchone()["n"] == N_ROWS


def test_lastrowid_and_rowcount_are_kept(engine, dialect, raw_connect):
    raw = raw_connect()
    names = make_schema(dialect, raw, "curauto")
    try:
        auto = names["auto"]
        with engine.session_manager() as s:
            firsts = [s.execute(f"INSERT INTO {auto} (label) VALUES (%s)", (f"lä {i}",))
                      for i in range(3)]
            many = s.execute(f"UPDATE {auto} SET label = %s", ("ü",))
            s.execute(f"SELECT label FROM {auto}").fetchall()
            assert [r.rowcount for r in firsts] == [1, 1, 1] and many.rowcount == 3
            if dialect == "mysql":
                ids = [r.lastrowid for r in firsts]
                assert ids == sorted(ids) and len(set(ids)) == 3
            else:
                assert [r.lastrowid for r in firsts] == [None] * 3
    finally:
        drop_schema(dialect, raw, names)


@run_async
async def test_async_results_survive_later_statements(url, items):
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            everything = (await s.execute(_select(items))).fetchall()
            partly = await s.execute(_select(items))
            first = partly.fetchone()
            cursor = s._cursor
            update = await s.execute(f"UPDATE {items} SET note = %s WHERE note IS NULL", ("x",))
            point = await s.execute(f"SELECT name FROM {items} WHERE id = %s",
                                    (everything[3]["id"],))
            assert s._cursor is cursor  # one cursor for every statement
            assert [first] + partly.fetchall() == everything and len(everything) == N_ROWS
            assert update.rowcount == sum(r["note"] is None for r in everything) > 0
            assert point.fetchall() == [{"name": everything[3]["name"]}]
            await s.rollback()


def test_a_detached_description_equals_the_drivers(engine, items, raw_connect):
    """The description a detached result keeps (built later from what psycopg
    reads, on PostgreSQL) is the one the driver gives for the statement."""
    raw = raw_connect()
    cur = raw.cursor()
    cur.execute(_select(items))
    expected = [tuple(c) for c in cur.description]
    with engine.session_manager() as s:
        result = s.execute(_select(items))
        s.execute("SELECT 1")  # detaches it (where the cursor is reused)
        assert (type(result._cursor) is BufferedRows) == engine._adapter.reuse_cursor
        assert [tuple(c) for c in result.description] == expected
        assert [d[0] for d in result.description] == COLUMNS


@run_async
async def test_async_description_equals_the_drivers(url, dialect, items, raw_connect):
    raw = raw_connect()
    cur = raw.cursor()
    cur.execute(_select(items))
    names = [c[0] for c in cur.description]
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            result = await s.execute(_select(items))
            await s.execute("SELECT 1")
            assert [d[0] for d in result.description] == names == COLUMNS
            if dialect == "postgresql":  # the same driver: the same description
                assert [tuple(c) for c in result.description] == [tuple(c) for c in cur.description]
