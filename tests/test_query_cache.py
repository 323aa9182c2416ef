"""The per-session query cache on the real servers, including each of
RESTAlchemy's cache bugs, which must not happen here."""

from __future__ import annotations

import pytest

from fastsess.cache import SessionQueryCache


class Table:
    """A RESTAlchemy-like table object (only ``.name`` is read)."""

    def __init__(self, name):
        self.name = name


class EQ:
    """A RESTAlchemy-like filter clause object."""

    def __init__(self, value):
        self.value = value


def make_fallback(table, calls):
    """A get_all fallback that really runs the query; counts its calls."""

    def fallback(filters, session, limit, order_by, locked):
        calls.append(filters)
        where, values = [], []
        for column, value in (filters or {}).items():
            if isinstance(value, EQ):
                value = value.value
            if isinstance(value, list):
                where.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
                values.extend(value)
            else:
                where.append(f"{column} = %s")
                values.append(value)
        sql = f"SELECT id, name, n FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if order_by:
            sql += " ORDER BY " + ", ".join(f"{c} {d}" for c, d in order_by.items())
        if limit:
            sql += f" LIMIT {int(limit)}"
        if locked:
            sql += " FOR UPDATE"
        return session.execute(sql, values or None).fetchall()

    return fallback


@pytest.fixture
def filled(engine, table):
    with engine.session_manager() as s:
        s.insert_rows(table, [{"id": i, "name": f"n{i}", "n": i % 3} for i in range(1, 7)])
    return table


def test_repeated_call_returns_the_same_object(engine, filled):
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        first = s.cache.get_all(engine, Table(filled), {"n": 1}, fb)
        again = s.cache.get_all(engine, Table(filled), {"n": 1}, fb)
        assert again is first and len(calls) == 1
        assert [r["id"] for r in first] == [1, 4]
        assert s.cache.hits == 1 and s.cache.misses == 1


def test_order_by_is_part_of_the_key(engine, filled):
    # RESTAlchemy's key drops ORDER BY: the second call got the first's order.
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        up = s.cache.get_all(engine, filled, {}, fb, order_by={"id": "ASC"})
        down = s.cache.get_all(engine, filled, {}, fb, order_by={"id": "DESC"})
        assert [r["id"] for r in up] == [1, 2, 3, 4, 5, 6]
        assert [r["id"] for r in down] == [6, 5, 4, 3, 2, 1]
        assert len(calls) == 2


def test_limit_is_part_of_the_key(engine, filled):
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        assert len(s.cache.get_all(engine, filled, {}, fb, limit=2, order_by={"id": "ASC"})) == 2
        assert len(s.cache.get_all(engine, filled, {}, fb, limit=3, order_by={"id": "ASC"})) == 3


def test_locked_reads_work_and_are_never_cached(engine, filled):
    # RESTAlchemy crashes on locked=True with the cache on.
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        a = s.cache.get_all(engine, filled, {"id": 1}, fb, locked=True)
        b = s.cache.get_all(engine, filled, {"id": 1}, fb, locked=True)
        assert a == b == [{"id": 1, "name": "n1", "n": 1}]
        assert a is not b and len(calls) == 2 and len(s.cache) == 0
        # A plain read of the same filters is cached apart from the locked one.
        s.cache.get_all(engine, filled, {"id": 1}, fb)
        assert len(calls) == 3 and len(s.cache) == 1


def test_list_and_dict_parameters(engine, filled):
    # RESTAlchemy hashes the values with hash(), which raises on a list.
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        rows = s.cache.get_all(engine, filled, {"id": [1, 2, 3]}, fb)
        again = s.cache.get_all(engine, filled, {"id": [1, 2, 3]}, fb)
        other = s.cache.get_all(engine, filled, {"id": [1, 2]}, fb)
        assert again is rows and len(rows) == 3 and len(other) == 2 and len(calls) == 2


def test_python_hash_collisions_do_not_share_entries(engine, filled):
    # hash(-1) == hash(-2) in CPython: RESTAlchemy's hash()-keyed cache
    # returned the row of id -1's query for id -2's.
    assert hash(-1) == hash(-2)
    with engine.session_manager() as s:
        s.execute(f"UPDATE {filled} SET id = -1 WHERE id = 1")
        s.execute(f"UPDATE {filled} SET id = -2 WHERE id = 2")
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        assert [r["id"] for r in s.cache.get_all(engine, filled, {"id": -1}, fb)] == [-1]
        assert [r["id"] for r in s.cache.get_all(engine, filled, {"id": -2}, fb)] == [-2]
        assert len(calls) == 2


def test_types_are_distinguished(engine, filled):
    calls = []

    def fallback(filters, session, limit, order_by, locked):
        # No SQL: PostgreSQL would refuse "n = true"; the keys are the point.
        calls.append(filters["n"])
        return [filters["n"]]

    values = (1, True, 1.0, "1", EQ(1), [1], (1,), {"n": 1}, None)
    with engine.session_manager() as s:
        got = [s.cache.get_all(engine, filled, {"n": v}, fallback) for v in values]
        again = [s.cache.get_all(engine, filled, {"n": v}, fallback) for v in values]
        assert len(calls) == len(values) and len(s.cache) == len(values)
        assert all(a is b for a, b in zip(got, again))
        assert [g[0] for g in got] == list(values)


def test_write_in_the_session_invalidates(engine, filled):
    # RESTAlchemy kept serving the result from before the write.
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        before = s.cache.get_all(engine, filled, {"n": 0}, fb)
        s.execute(f"INSERT INTO {filled} (id, name, n) VALUES (%s, %s, %s)", (100, "new", 0))
        assert len(s.cache) == 0
        after = s.cache.get_all(engine, filled, {"n": 0}, fb)
        assert len(after) == len(before) + 1


@pytest.mark.parametrize("write", ["execute_many", "insert_rows", "delete_rows", "update"])
def test_every_write_path_invalidates(engine, filled, write):
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        s.cache.get_all(engine, filled, {}, fb)
        assert len(s.cache) == 1
        if write == "execute_many":
            s.execute_many(f"INSERT INTO {filled} (id) VALUES (%s)", [(50,), (51,)])
        elif write == "insert_rows":
            s.insert_rows(filled, [{"id": 60}])
        elif write == "delete_rows":
            s.delete_rows(filled, [1], "id")
        else:
            s.execute(f"UPDATE {filled} SET n = 9")
        assert len(s.cache) == 0
        s.cache.get_all(engine, filled, {}, fb)
        assert len(calls) == 2


def test_rollback_and_savepoint_rollback_invalidate(engine, filled):
    calls = []
    fb = make_fallback(filled, calls)
    s = engine.get_session()
    try:
        s.execute("SAVEPOINT sp1")
        s.execute(f"INSERT INTO {filled} (id) VALUES (70)")
        assert len(s.cache.get_all(engine, filled, {}, fb)) == 7
        s.execute("ROLLBACK TO SAVEPOINT sp1")
        assert len(s.cache) == 0
        assert len(s.cache.get_all(engine, filled, {}, fb)) == 6
        s.rollback()
        assert len(s.cache) == 0
    finally:
        s.close()


def test_reads_do_not_invalidate(engine, filled):
    calls = []
    fb = make_fallback(filled, calls)
    with engine.session_manager() as s:
        s.cache.get_all(engine, filled, {}, fb)
        s.execute(f"SELECT count(*) AS c FROM {filled}").fetchall()
        s.execute("  (SELECT 1 AS one)").fetchall()
        assert len(s.cache) == 1


def test_query_entry_point(engine, filled):
    def fallback(where_conditions, where_values, session, limit, order_by, locked):
        calls.append(where_values)
        order = "" if "FOR UPDATE" in where_conditions else " ORDER BY id"
        return session.execute(f"SELECT id FROM {filled} WHERE {where_conditions}{order}",
                               where_values).fetchall()

    calls = []
    with engine.session_manager() as s:
        a = s.cache.query(engine, filled, "n = %s", (1,), fallback)
        b = s.cache.query(engine, filled, "n = %s", (1,), fallback)
        c = s.cache.query(engine, filled, "n = %s", (2,), fallback)
        assert a is b and a == [{"id": 1}, {"id": 4}] and c == [{"id": 2}, {"id": 5}]
        s.cache.query(engine, filled, "n = %s FOR UPDATE", (1,), fallback)
        assert len(calls) == 3 and len(s.cache) == 2


def test_lru_bound_and_counters(engine, filled):
    with engine.session_manager() as s:
        cache = SessionQueryCache(s, max_entries=2)
        sql = f"SELECT id FROM {filled} WHERE id = %s"
        cache.fetchall(sql, (1,))
        cache.fetchall(sql, (2,))
        cache.fetchall(sql, (1,))  # hit: 1 becomes the most recent
        cache.fetchall(sql, (3,))  # evicts 2
        assert len(cache) == 2
        cache.fetchall(sql, (1,))
        assert cache.stats() == {"entries": 2, "max_entries": 2, "hits": 2, "misses": 3,
                                 "uncacheable": 0}
        cache.fetchall(sql, (2,))  # was evicted: a miss again
        assert cache.misses == 4


def test_uncacheable_input_runs_without_cache(engine, filled):
    calls = []

    def fallback(filters, session, limit, order_by, locked):
        calls.append(filters)
        return [len(calls)]

    weird = object()  # no __dict__, no __slots__: cannot be encoded
    with engine.session_manager() as s:
        a = s.cache.get_all(engine, filled, {"id": [1]}, fallback)
        b = s.cache.get_all(engine, filled, {"id": weird}, fallback)
        c = s.cache.get_all(engine, filled, {"id": weird}, fallback)
        # Each uncacheable call runs the query; nothing of theirs is stored.
        assert (a, b, c) == ([1], [2], [3])
        assert s.cache.uncacheable == 2 and len(s.cache) == 1
