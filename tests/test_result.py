"""``fastsess.result.Result`` on the real servers: rows as dicts, fetch*, iteration,
rowcount, lastrowid, description."""

from __future__ import annotations

import pytest

from fastsess import errors

from .conftest import fresh_table, raw_query


def test_results_are_dicts_equal_to_driver_rows(engine, table, raw_connect):
    with engine.session_manager() as s:
        s.execute_many(f"INSERT INTO {table} (id, name, n) VALUES (%s, %s, %s)",
                       [(i, f"name {i}", i * 10) for i in range(1, 6)])
    with engine.session_manager() as s:
        rows = s.execute(f"SELECT id, name, n FROM {table} ORDER BY id").fetchall()
    expected = raw_query(raw_connect(), f"SELECT id, name, n FROM {table} ORDER BY id")
    assert rows == [dict(zip(("id", "name", "n"), r)) for r in expected]
    assert all(type(r) is dict for r in rows)
    rows[0]["id"] = 99  # rows are fresh, mutable dicts
    assert rows[1]["id"] == 2


def test_fetchone_fetchmany_iteration_and_description(engine, table):
    with engine.session_manager() as s:
        s.execute_many(f"INSERT INTO {table} (id, name) VALUES (%s, %s)",
                       [(i, str(i)) for i in range(1, 6)])
        r = s.execute(f"SELECT id, name FROM {table} ORDER BY id")
        assert [d[0] for d in r.description] == ["id", "name"]
        assert r.keys() == ["id", "name"]
        assert r.fetchone() == {"id": 1, "name": "1"}
        assert r.fetchmany(2) == [{"id": 2, "name": "2"}, {"id": 3, "name": "3"}]
        assert list(r) == [{"id": 4, "name": "4"}, {"id": 5, "name": "5"}]
        assert r.fetchone() is None
        assert s.execute(f"SELECT id FROM {table} WHERE id > %s", (10,)).fetchall() == []


def test_rowcount_and_fetch_without_result_set(engine, table):
    with engine.session_manager() as s:
        r = s.execute(f"INSERT INTO {table} (id) VALUES (1), (2), (3)")
        assert r.rowcount == 3
        with pytest.raises(errors.ProgrammingError, match="no rows to fetch"):
            r.fetchall()
        assert s.execute(f"UPDATE {table} SET n = 1 WHERE id > %s", (1,)).rowcount == 2


@pytest.fixture
def autoinc_table(dialect, raw_connect):
    """A fresh table with an auto-increment ``id`` and a ``v`` column; dropped after."""
    key = "id INT AUTO_INCREMENT PRIMARY KEY" if dialect == "mysql" else "id SERIAL PRIMARY KEY"
    yield from fresh_table(dialect, raw_connect, "t_autoinc", f"{key}, v INT")


def test_lastrowid(engine, dialect, autoinc_table):
    table = autoinc_table
    with engine.session_manager() as s:
        first = s.execute(f"INSERT INTO {table} (v) VALUES (%s)", (1,)).lastrowid
        second = s.execute(f"INSERT INTO {table} (v) VALUES (%s)", (2,)).lastrowid
        if dialect == "mysql":
            assert (first, second) == (1, 2)
        else:  # PostgreSQL has no last-insert id; RETURNING says it
            assert first is None and second is None
            assert s.execute(f"INSERT INTO {table} (v) VALUES (3) RETURNING id").fetchone() == {"id": 3}


def test_duplicate_column_labels_last_wins(engine):
    with engine.session_manager() as s:
        assert s.execute("SELECT 1 AS x, 2 AS x").fetchall() == [{"x": 2}]


def test_non_ascii_column_labels(engine, dialect):
    q = '"' if dialect == "postgresql" else "`"
    with engine.session_manager() as s:
        row = s.execute(f"SELECT 1 AS {q}café{q}, %s AS {q}日本{q}", ("x",)).fetchone()
    assert row == {"café": 1, "日本": "x"}


# -- iteration mixed with fetch* (as RESTAlchemy's ORM reads rows) ---------------------


@pytest.fixture
def numbers(engine, dialect):
    """A session and the statement giving rows n = 1..300 in order."""
    if dialect == "postgresql":
        sql = "SELECT g AS n FROM generate_series(1, 300) AS g ORDER BY g"
    else:
        sql = ("SELECT a.i * 100 + b.i * 10 + c.i + 1 AS n FROM "
               + " CROSS JOIN ".join(
                   f"(SELECT 0 AS i UNION ALL SELECT 1 UNION ALL SELECT 2"
                   f"{''.join(f' UNION ALL SELECT {k}' for k in range(3, 10))}) {t}"
                   for t in "abc")
               + " WHERE a.i * 100 + b.i * 10 + c.i < 300 ORDER BY n")
    with engine.session_manager() as s:
        yield s, sql


def _n(rows):
    return [int(r["n"]) for r in rows]


def test_iteration_yields_every_row_in_order(numbers):
    s, sql = numbers
    assert _n(s.execute(sql)) == list(range(1, 301))
    assert _n(s.execute(sql)) == _n(s.execute(sql).fetchall())


def test_iteration_mixed_with_fetch_sees_each_row_once(numbers):
    s, sql = numbers
    result = s.execute(sql)
    it = iter(result)
    assert int(next(it)["n"]) == 1
    assert int(result.fetchone()["n"]) == 2
    assert _n(result.fetchmany(3)) == [3, 4, 5]
    assert int(next(it)["n"]) == 6
    for row in result:  # a second loop, left early
        if int(row["n"]) == 10:
            break
    rest = result.fetchall()
    assert _n(rest) == list(range(11, 301))
    assert result.fetchone() is None and result.fetchall() == [] and list(result) == []

    result = s.execute(sql)
    assert int(next(iter(result))["n"]) == 1
    assert _n(result.fetchmany(200)) == list(range(2, 202))  # pending, then the cursor
    assert _n(list(result)) == list(range(202, 301))
