"""Iterating a result (as RESTAlchemy's ORM reads rows) mixed with fetch*."""

from __future__ import annotations

import pytest


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
