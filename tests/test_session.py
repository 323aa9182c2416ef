"""Sessions on the real servers: statements, transactions, lifecycle (results: test_result.py)."""

from __future__ import annotations

import threading

import pytest

import fastsess
from fastsess import errors

from .conftest import raw_query


def test_commit_is_visible_from_another_connection(engine, table, raw_connect):
    other = raw_connect()
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "a"))
    assert raw_query(other, f"SELECT id FROM {table}") == []  # not yet committed
    s.commit()
    assert raw_query(other, f"SELECT id, name FROM {table}") == [(1, "a")]
    s.close()


def test_rollback_is_invisible(engine, table, raw_connect):
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "a"))
    s.rollback()
    s.close()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []


def test_close_without_commit_rolls_back(engine, table, raw_connect):
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id) VALUES (1)")
    s.close()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["rollbacks_on_checkin"] == 1


def test_percent_literal_with_and_without_params(engine):
    with engine.session_manager() as s:
        # With params, %% is one literal percent on both databases.
        assert s.execute("SELECT '100%%' AS p, %s AS v", (1,)).fetchone() == {"p": "100%", "v": 1}
        assert s.execute("SELECT %s LIKE 'a%%' AS m", ("abc",)).fetchone()["m"] in (1, True)
        # Without params the statement is sent as written.
        assert s.execute("SELECT 'a%b' AS p").fetchone() == {"p": "a%b"}


def test_connection_is_checked_out_lazily(engine):
    s = engine.get_session()
    assert not s.has_connection
    assert engine.pool_stats()["size"] == 0
    s.commit()  # nothing to commit: no connection taken for it
    s.rollback()
    assert not s.has_connection and engine.pool_stats()["checkouts"] == 0
    s.execute("SELECT 1")
    assert s.has_connection and engine.pool_stats()["in_use"] == 1
    s.close()
    assert not s.has_connection and engine.pool_stats()["in_use"] == 0


def test_close_is_idempotent_and_session_reusable(engine, table):
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id) VALUES (1)")
    s.commit()
    s.close()
    s.close()
    assert s.closed and engine.pool_stats()["in_use"] == 0
    # Reused in the same thread: takes a fresh connection.
    assert s.execute(f"SELECT id FROM {table}").fetchall() == [{"id": 1}]
    assert not s.closed and engine.pool_stats()["in_use"] == 1
    s.close()
    assert engine.pool_stats()["in_use"] == 0


def test_closed_session_cannot_be_reused_from_another_thread(engine):
    s = engine.get_session()
    s.execute("SELECT 1")
    s.close()
    caught = []

    def other():
        try:
            s.execute("SELECT 1")
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            caught.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(caught) == 1 and isinstance(caught[0], errors.SessionClosed)
    assert engine.pool_stats()["in_use"] == 0


def test_statement_after_close_when_engine_closed(url):
    engine = fastsess.create_engine(url, max_size=1)
    s = engine.get_session()
    s.execute("SELECT 1")
    s.close()
    engine.close()
    with pytest.raises(errors.SessionClosed, match="engine is closed"):
        s.execute("SELECT 1")
    with pytest.raises(errors.EngineClosed):
        engine.get_session()
    assert engine.pool_stats()["size"] == 0


def test_engine_close_closes_borrowed_connection_on_return(url):
    engine = fastsess.create_engine(url, max_size=2)
    s = engine.get_session()
    s.execute("SELECT 1")
    engine.close()
    engine.close()  # idempotent
    assert engine.pool_stats()["in_use"] == 1
    s.close()
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["size"] == 0 and stats["connections_closed"] == 1


def test_abandoned_session_gives_its_connection_back(url, raw_connect):
    engine = fastsess.create_engine(url, max_size=1, timeout=2)
    s = engine.get_session()
    s.execute("SELECT 1")
    del s  # never closed
    import gc

    gc.collect()
    # The slot is free again: the next checkout adopts the orphan.
    with engine.session_manager() as s2:
        assert s2.execute("SELECT 2 AS v").fetchone() == {"v": 2}
    assert engine.pool_stats()["in_use"] == 0
    engine.close()


def test_execute_many_returns_rowcount(engine, table):
    with engine.session_manager() as s:
        r = s.execute_many(f"INSERT INTO {table} (id, n) VALUES (%s, %s)", [(1, 1), (2, 2), (3, 3)])
        assert r.rowcount == 3
        assert s.execute(f"SELECT count(*) AS c FROM {table}").fetchone()["c"] == 3


def test_values_round_trip_unchanged(engine, table):
    tricky = ["it's", 'say "hi"', "back\\slash", "50% off %s %%", "naïve ☃", "", None]
    with engine.session_manager() as s:
        s.execute_many(f"INSERT INTO {table} (id, name) VALUES (%s, %s)",
                       list(enumerate(tricky)))
    with engine.session_manager() as s:
        got = [r["name"] for r in s.execute(f"SELECT name FROM {table} ORDER BY id").fetchall()]
    assert got == tricky


def test_repr_does_not_leak_password(dialect):
    url = {"postgresql": "postgresql://u:topsecret@127.0.0.1:1/db",
           "mysql": "mysql://u:topsecret@127.0.0.1:1/db"}[dialect]
    engine = fastsess.create_engine(url)
    s = engine.get_session()
    assert "topsecret" not in repr(engine) and "topsecret" not in repr(s)
    assert "***" in repr(engine)
    engine.close()


def test_psycopg_c_implementation_when_installed_so():
    import psycopg

    # The project depends on psycopg[c]; the C implementation must be the one in use.
    assert psycopg.pq.__impl__ == "c"


def test_query_cache_minimal(engine, table):
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, n) VALUES (1, 1)")
        first = s.cache.fetchall(f"SELECT id, n FROM {table} WHERE id = %s", (1,))
        again = s.cache.fetchall(f"SELECT id, n FROM {table} WHERE id = %s", (1,))
        assert first is again and s.cache.hits == 1 and s.cache.misses == 1
        # 1 and "1" and True are different parameters.
        s.cache.fetchall(f"SELECT id, n FROM {table} WHERE id = %s", ("1",))
        assert s.cache.misses == 2
        # A write through the session empties the cache: no stale result.
        s.execute(f"UPDATE {table} SET n = 2 WHERE id = 1")
        assert len(s.cache) == 0
        assert s.cache.fetchall(f"SELECT id, n FROM {table} WHERE id = %s", (1,)) == [{"id": 1, "n": 2}]
        # Locking reads are never served from the cache.
        locked = f"SELECT id FROM {table} WHERE id = %s FOR UPDATE"
        assert s.cache.fetchall(locked, (1,)) is not s.cache.fetchall(locked, (1,))
        s.rollback()
        assert len(s.cache) == 0


# -- a caught error and the commit after it -------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_commit_after_a_caught_error_that_aborted_the_transaction(engine, dialect, table,
                                                                  raw_connect):
    # PostgreSQL ignores everything after an error up to ROLLBACK, and its
    # COMMIT then quietly rolls back: fastsess says so instead of pretending.
    raw = raw_connect()
    with pytest.raises(errors.TransactionAborted) as ei:
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'before')")
            with pytest.raises(errors.ProgrammingError):
                s.execute("SELECT * FROM no_such_table_anywhere")
    assert isinstance(ei.value.cause, errors.ProgrammingError)
    assert ei.value.retryable is False
    assert raw_query(raw, f"SELECT id FROM {table}") == []
    assert engine.pool_stats()["in_use"] == 0


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_mysql_statement_errors_do_not_abort_the_transaction(dialect, engine, table, raw_connect):
    # MySQL rolls back only the failed statement: the rest commits, as the driver does.
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'kept')")
        with pytest.raises(errors.ProgrammingError):
            s.execute("SELECT * FROM no_such_table_anywhere")
    assert raw_query(raw_connect(), f"SELECT id, name FROM {table}") == [(1, "kept")]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_rollback_to_savepoint_makes_the_transaction_committable_again(dialect, engine, table,
                                                                      raw_connect):
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'kept')")
        s.execute("SAVEPOINT sp")
        with pytest.raises(errors.ProgrammingError):
            s.execute("SELECT * FROM no_such_table_anywhere")
        s.execute("ROLLBACK TO SAVEPOINT sp")
        s.execute(f"INSERT INTO {table} (id, name) VALUES (2, 'after')")
    assert raw_query(raw_connect(), f"SELECT id FROM {table} ORDER BY id") == [(1,), (2,)]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_refused_commit_leaves_the_session_usable(dialect, engine, table, raw_connect):
    s = engine.get_session()
    try:
        with pytest.raises(errors.ProgrammingError):
            s.execute("SELECT * FROM no_such_table_anywhere")
        with pytest.raises(errors.TransactionAborted):
            s.commit()
        s.execute(f"INSERT INTO {table} (id, name) VALUES (3, 'next')")
        s.commit()  # a new transaction, no error in it
    finally:
        s.close()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == [(3,)]


def test_borrowed_connection_comes_back_with_autocommit_off(url, dialect, raw_connect):
    # A borrower that switched autocommit on must not hand the next session a
    # connection on which its rollback undoes nothing.
    engine = fastsess.create_engine(url, max_size=1)
    try:
        conn = engine.get_connection()
        if dialect == "postgresql":
            conn.autocommit = True
        else:
            conn.autocommit(True)
        engine.close_connection(conn)
        with engine.session_manager() as s:
            assert s.execute("SELECT 1 AS one").fetchone() == {"one": 1}
            raw = s.connection()
            assert (raw.autocommit if dialect == "postgresql" else raw.get_autocommit()) is False
        assert engine.pool_stats()["connections_opened"] == 1  # the same connection, restored
    finally:
        engine.close()
