"""Driver errors translated into ``fastsess.errors`` on both servers, through sessions."""

from __future__ import annotations

import logging
import threading
import traceback
import uuid

import MySQLdb
import psycopg
import pytest

import fastsess
from fastsess import errors

from .conftest import kill_backend, raw_query

DRIVER_ERROR = {"postgresql": psycopg.Error, "mysql": MySQLdb.Error}
SECRET = "s3cretpw"
BAD_CREDENTIALS = {
    "postgresql": f"postgresql://nosuchuser:{SECRET}@127.0.0.1:5432/test",
    "mysql": f"mysql://nosuchuser:{SECRET}@127.0.0.1:3306/test",
}


def backend_id(session, dialect) -> int:
    sql = "SELECT pg_backend_pid() AS bid" if dialect == "postgresql" else "SELECT CONNECTION_ID() AS bid"
    return int(session.execute(sql).fetchone()["bid"])


def rows(raw, sql, params=None):
    return sorted(raw_query(raw, sql, params))


# -- integrity errors ---------------------------------------------------------


def test_unique_violation_is_conflict_error_with_key_and_value(dialect, engine, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (1, 'first')")
    s = engine.get_session()
    with pytest.raises(errors.ConflictError) as ei:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "second"))
    err = ei.value
    assert isinstance(err, errors.IntegrityError) and isinstance(err, errors.DatabaseError)
    if dialect == "postgresql":
        assert (err.key, err.value) == ("id", "1")
        assert err.sqlstate == "23505"
        assert isinstance(err.orig, psycopg.errors.UniqueViolation)
    else:
        assert (err.key, err.value) == ("PRIMARY", "1")
        assert err.errno == 1062
        assert isinstance(err.orig, MySQLdb.IntegrityError)
    assert err.retryable is False
    assert err.__cause__ is err.orig
    s.rollback()
    s.close()
    # A constraint error does not cost the pool its connection.
    assert engine.pool_stats()["connections_discarded"] == 0
    assert rows(raw, f"SELECT id, name FROM {table}") == [(1, "first")]


def test_composite_unique_violation_key_and_value(dialect, engine, table2, raw_connect):
    raw_query(raw_connect(), f"INSERT INTO {table2} (a, b, v) VALUES (1, 'x', 10)")
    with pytest.raises(errors.ConflictError) as ei:
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {table2} (a, b, v) VALUES (%s, %s, %s)", (1, "x", 20))
    err = ei.value
    if dialect == "postgresql":
        assert (err.key, err.value) == ("a, b", "1, x")
    else:
        assert (err.key, err.value) == ("PRIMARY", "1-x")
    assert isinstance(err.orig, DRIVER_ERROR[dialect])
    assert err.retryable is False


@pytest.fixture
def parent_child(dialect, raw_connect):
    """``parent(id)`` and ``child(id, parent_id REFERENCES parent)``; dropped after."""
    suffix = uuid.uuid4().hex[:12]
    parent, child = f"p_{suffix}", f"c_{suffix}"
    raw = raw_connect()
    engine_clause = " ENGINE=InnoDB" if dialect == "mysql" else ""
    raw_query(raw, f"CREATE TABLE {parent} (id INT PRIMARY KEY){engine_clause}")
    raw_query(raw, f"CREATE TABLE {child} (id INT PRIMARY KEY, parent_id INT NOT NULL, "
                   f"FOREIGN KEY (parent_id) REFERENCES {parent} (id)){engine_clause}")
    raw_query(raw, f"INSERT INTO {parent} (id) VALUES (1)")
    raw_query(raw, f"INSERT INTO {child} (id, parent_id) VALUES (1, 1)")
    yield parent, child
    raw_query(raw, f"DROP TABLE IF EXISTS {child}")
    raw_query(raw, f"DROP TABLE IF EXISTS {parent}")


def test_foreign_key_violation_on_insert(dialect, engine, parent_child, raw_connect):
    parent, child = parent_child
    with pytest.raises(errors.ForeignKeyViolation) as ei:
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {child} (id, parent_id) VALUES (%s, %s)", (2, 42))
    err = ei.value
    assert isinstance(err, errors.IntegrityError)
    assert not isinstance(err, errors.ConflictError)
    assert isinstance(err.orig, DRIVER_ERROR[dialect])
    assert err.retryable is False
    if dialect == "postgresql":
        assert err.sqlstate == "23503"
    else:
        assert err.errno == 1452
    assert rows(raw_connect(), f"SELECT id, parent_id FROM {child}") == [(1, 1)]


def test_foreign_key_violation_on_delete_of_referenced_row(dialect, engine, parent_child, raw_connect):
    parent, child = parent_child
    with pytest.raises(errors.ForeignKeyViolation) as ei:
        with engine.session_manager() as s:
            s.execute(f"DELETE FROM {parent} WHERE id = %s", (1,))
    if dialect == "postgresql":
        assert ei.value.sqlstate == "23503"
    else:
        assert ei.value.errno == 1451
    assert rows(raw_connect(), f"SELECT id FROM {parent}") == [(1,)]


# -- statement errors ---------------------------------------------------------


def test_syntax_error_is_programming_error(dialect, engine):
    s = engine.get_session()
    with pytest.raises(errors.ProgrammingError) as ei:
        s.execute("SELEC 1 FROMM nowhere")
    err = ei.value
    assert isinstance(err, errors.DatabaseError)
    assert not isinstance(err, errors.OperationalError)
    assert isinstance(err.orig, DRIVER_ERROR[dialect])
    assert err.retryable is False
    if dialect == "postgresql":
        assert err.sqlstate == "42601"
    else:
        assert err.errno == 1064
    # The connection is fine: roll back and go on, nothing is discarded.
    s.rollback()
    assert s.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
    s.close()
    assert engine.pool_stats()["connections_discarded"] == 0


def test_unknown_table_is_programming_error(dialect, engine):
    with pytest.raises(errors.ProgrammingError) as ei:
        with engine.session_manager() as s:
            s.execute(f"SELECT * FROM no_such_table_{uuid.uuid4().hex[:8]}")
    if dialect == "postgresql":
        assert ei.value.sqlstate == "42P01"
    else:
        assert ei.value.errno == 1146


@pytest.mark.parametrize("statement, params", [
    pytest.param("SELECT %s AS a, %s AS b", (1,), id="too-few-params"),
    pytest.param("SELECT %s AS a", (1, 2), id="too-many-params"),
    pytest.param("SELECT '100%' AS a, %s AS b", (1,), id="stray-percent"),
    pytest.param("SELECT %(x)s AS a", {"y": 1}, id="missing-named-param"),
])
def test_bad_parameters_are_programming_error(dialect, engine, statement, params):
    # errors.ProgrammingError documents "bad parameters".  psycopg reports all
    # of these as ProgrammingError; mysqlclient formats the statement
    # client-side and raises plain ValueError / KeyError, which fastsess
    # translates.
    s = engine.get_session()
    try:
        with pytest.raises(errors.ProgrammingError):
            s.execute(statement, params)
    finally:
        s.close()


# -- transaction rollbacks ----------------------------------------------------


def test_deadlock_between_two_sessions(dialect, engine, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (1, 'init'), (2, 'init')")
    barrier = threading.Barrier(2, timeout=15)
    outcome = {}

    def worker(label, first, second):
        try:
            with engine.session_manager() as s:
                s.execute(f"UPDATE {table} SET name = %s WHERE id = %s", (label, first))
                barrier.wait()  # both hold their first row lock now
                s.execute(f"UPDATE {table} SET name = %s WHERE id = %s", (label, second))
            outcome[label] = "committed"
        except BaseException as e:  # noqa: BLE001 - reported below
            outcome[label] = e

    threads = [threading.Thread(target=worker, args=("A", 1, 2)),
               threading.Thread(target=worker, args=("B", 2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "deadlock was never broken"

    failed = {k: v for k, v in outcome.items() if v != "committed"}
    assert len(outcome) == 2 and len(failed) == 1, outcome
    (loser, err), = failed.items()
    winner = "B" if loser == "A" else "A"
    assert isinstance(err, errors.DeadlockDetected), repr(err)
    assert isinstance(err, errors.TransactionRollback)
    assert err.retryable is True
    assert isinstance(err.orig, DRIVER_ERROR[dialect])
    if dialect == "postgresql":
        assert err.sqlstate == "40P01"
    else:
        assert err.errno == 1213
    # The winner's two updates are committed, none of the loser's.
    assert rows(raw, f"SELECT id, name FROM {table}") == [(1, winner), (2, winner)]
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["connections_discarded"] == 0


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_serialization_failure_under_repeatable_read(dialect, engine, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, n) VALUES (1, 0)")
    a, b = engine.get_session(), engine.get_session()
    try:
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert a.execute(f"SELECT n FROM {table} WHERE id = 1").fetchall() == [{"n": 0}]  # snapshot
        b.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        b.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
        b.commit()
        with pytest.raises(errors.SerializationFailure) as ei:
            a.execute(f"UPDATE {table} SET n = n + 10 WHERE id = 1")
        err = ei.value
        assert isinstance(err, errors.TransactionRollback)
        assert err.retryable is True
        assert err.sqlstate == "40001"
        assert isinstance(err.orig, psycopg.errors.SerializationFailure)
        # Retrying the whole transaction, as retryable promises, succeeds.
        a.rollback()
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        a.execute(f"UPDATE {table} SET n = n + 10 WHERE id = 1")
        a.commit()
    finally:
        a.close()
        b.close()
    assert raw_query(raw, f"SELECT n FROM {table} WHERE id = 1") == [(11,)]


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_mariadb_snapshot_isolation_conflict_is_serialization_failure(dialect, engine, table,
                                                                       raw_connect):
    # MariaDB with innodb_snapshot_isolation=ON refuses to update a row
    # changed since the transaction's snapshot: errno 1020, "try restarting
    # transaction".  It must be retryable like PostgreSQL's 40001.  (The
    # session setting stays on the pooled connection: the engine is closed.)
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, n) VALUES (1, 0)")
    a = engine.get_session()
    try:
        try:
            a.execute("SET SESSION innodb_snapshot_isolation = ON")
        except errors.DatabaseError as e:  # MariaDB before 10.6.18/10.11.8, or MySQL
            pytest.skip(f"this server has no innodb_snapshot_isolation: {e}")
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert a.execute(f"SELECT n FROM {table} WHERE id = 1").fetchall() == [{"n": 0}]  # snapshot
        raw_query(raw, f"UPDATE {table} SET n = 5 WHERE id = 1")
        with pytest.raises(errors.SerializationFailure) as ei:
            a.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
        assert ei.value.errno == 1020 and ei.value.retryable is True
        a.rollback()
    finally:
        a.close()
        engine.close()
    assert raw_query(raw, f"SELECT n FROM {table} WHERE id = 1") == [(5,)]


def test_lock_wait_timeout_is_retryable(dialect, engine, table, raw_connect):
    raw_query(raw_connect(), f"INSERT INTO {table} (id, n) VALUES (1, 0)")
    holder, waiter = engine.get_session(), engine.get_session()
    try:
        holder.execute(f"UPDATE {table} SET n = 1 WHERE id = 1")
        if dialect == "postgresql":
            waiter.execute("SET LOCAL lock_timeout = '200ms'")
        else:
            waiter.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(errors.LockTimeout) as ei:
            waiter.execute(f"UPDATE {table} SET n = 2 WHERE id = 1")
        assert ei.value.retryable is True
        if dialect == "postgresql":
            assert ei.value.sqlstate == "55P03"
        else:
            assert ei.value.errno == 1205
    finally:
        waiter.close()
        holder.close()


# -- connections --------------------------------------------------------------


def test_killed_connection_raises_connection_lost_and_is_discarded(dialect, engine, raw_connect):
    s = engine.get_session()
    bid = backend_id(s, dialect)
    kill_backend(raw_connect(), dialect, bid)
    before = engine.pool_stats()
    assert before["in_use"] == 1

    with pytest.raises(errors.ConnectionLost) as ei:
        s.execute("SELECT 1")
    err = ei.value
    assert not isinstance(err, errors.CommitOutcomeUnknown)
    assert isinstance(err, errors.OperationalError)
    assert err.retryable is True
    assert isinstance(err.orig, DRIVER_ERROR[dialect])

    s.close()
    after = engine.pool_stats()
    assert after["connections_discarded"] == before["connections_discarded"] + 1
    assert after["in_use"] == 0 and after["idle"] == 0 and after["size"] == 0

    # A new session gets a fresh connection (another backend) and works.
    with engine.session_manager() as s2:
        assert s2.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
        assert backend_id(s2, dialect) != bid
    # So does the failed session itself once closed (same thread).
    assert s.execute("SELECT 2 AS two").fetchall() == [{"two": 2}]
    s.close()
    assert engine.pool_stats()["connections_opened"] == 2  # the broken one was never reused


def test_commit_on_killed_connection(dialect, engine, table, raw_connect):
    # Observed on both servers: COMMIT on a killed connection raises
    # CommitOutcomeUnknown (the ConnectionLost subclass), never plain ConnectionLost,
    # since fastsess cannot tell whether the server applied the COMMIT.
    raw = raw_connect()
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "lost"))
    kill_backend(raw, dialect, backend_id(s, dialect))
    with pytest.raises(errors.ConnectionLost) as ei:
        s.commit()
    err = ei.value
    assert isinstance(err, errors.CommitOutcomeUnknown), repr(err)
    assert err.retryable is False
    assert isinstance(err.orig, DRIVER_ERROR[dialect])
    s.close()
    stats = engine.pool_stats()
    assert stats["connections_discarded"] == 1 and stats["in_use"] == 0
    # The kill rolled the transaction back (the outcome was "not committed").
    assert raw_query(raw, f"SELECT id FROM {table}") == []


def test_commit_failure_in_session_manager_surfaces_commit_outcome_unknown(dialect, engine, table,
                                                                            raw_connect):
    raw = raw_connect()
    with pytest.raises(errors.CommitOutcomeUnknown) as ei:
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {table} (id) VALUES (1)")
            kill_backend(raw, dialect, backend_id(s, dialect))
    assert ei.value.retryable is False
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["connections_discarded"] == 1


def _assert_no_secret(text: str) -> None:
    assert SECRET not in text


def count_connects(engine, monkeypatch) -> list:
    """Records each connect the engine's pool asks its driver adapter for."""
    adapter = engine._adapter
    connect, calls = adapter.connect, []

    def counted():
        calls.append(1)
        return connect()

    monkeypatch.setattr(adapter, "connect", counted)
    return calls


def test_wrong_credentials_raise_connection_failed_without_leaking_password(dialect, caplog,
                                                                            monkeypatch):
    caplog.set_level(logging.DEBUG)
    engine = fastsess.create_engine(BAD_CREDENTIALS[dialect], max_size=2, timeout=5)
    try:
        _assert_no_secret(repr(engine))
        _assert_no_secret(str(engine.url))
        connects = count_connects(engine, monkeypatch)
        s = engine.get_session()  # lazy: nothing connects yet
        assert connects == []
        with pytest.raises(errors.ConnectionFailed) as ei:
            s.execute("SELECT 1")
        # Failed fast: the first refusal is raised, not retried until a timeout.
        assert len(connects) == 1 and engine.pool_stats()["timeouts"] == 0
        err = ei.value
        assert isinstance(err, errors.OperationalError)
        assert isinstance(err.orig, DRIVER_ERROR[dialect])
        if dialect == "mysql":
            assert err.errno == 1045
        assert "nosuchuser" in str(err)  # the message says who could not connect
        _assert_no_secret(str(err))
        _assert_no_secret(repr(err))
        _assert_no_secret("".join(traceback.format_exception(err)))
        _assert_no_secret(repr(engine))
        _assert_no_secret(repr(s))
        assert not s.has_connection
        s.close()
        stats = engine.pool_stats()
        assert stats["in_use"] == 0 and stats["size"] == 0 and stats["connections_opened"] == 0
        # Through session_manager as well (its rollback path must not log the secret).
        with pytest.raises(errors.ConnectionFailed):
            with engine.session_manager() as s2:
                s2.execute("SELECT 1")
    finally:
        engine.close()
    formatter = logging.Formatter()
    for record in caplog.records:
        _assert_no_secret(formatter.format(record))


def test_unreachable_port_fails_fast(dialect, monkeypatch):
    url = {"postgresql": "postgresql://postgres@127.0.0.1:1/test",
           "mysql": "mysql://root@127.0.0.1:1/test"}[dialect]
    engine = fastsess.create_engine(url, max_size=2, timeout=5)
    try:
        connects = count_connects(engine, monkeypatch)
        s = engine.get_session()
        with pytest.raises(errors.ConnectionFailed) as ei:
            s.execute("SELECT 1")
        # Failed fast: the first refused connect is raised, not retried.
        assert len(connects) == 1 and engine.pool_stats()["timeouts"] == 0
        assert isinstance(ei.value.orig, DRIVER_ERROR[dialect])
        stats = engine.pool_stats()
        assert stats["in_use"] == 0 and stats["size"] == 0
        # The slot was given back: the pool does not run dry after repeated failures.
        for _ in range(3):
            with pytest.raises(errors.ConnectionFailed):
                s.execute("SELECT 1")
        assert len(connects) == 4
        assert engine.pool_stats()["size"] == 0 and engine.pool_stats()["timeouts"] == 0
        s.close()
    finally:
        engine.close()


# -- read-only engines --------------------------------------------------------


def test_readonly_engine_refuses_writes_and_allows_reads(dialect, url, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (1, 'seed')")
    engine = fastsess.create_engine(url, readonly=True, max_size=1, timeout=5)
    try:
        for attempt in range(2):  # the same pooled connection stays read-only
            with pytest.raises(errors.ReadOnlyViolation) as ei:
                with engine.session_manager() as s:
                    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (2 + attempt, "w"))
            err = ei.value
            assert isinstance(err.orig, DRIVER_ERROR[dialect])
            if dialect == "postgresql":
                assert err.sqlstate == "25006"
            else:
                assert err.errno == 1792
        with engine.session_manager() as s:
            assert s.execute(f"SELECT id, name FROM {table}").fetchall() == [{"id": 1, "name": "seed"}]
        stats = engine.pool_stats()
        assert stats["connections_opened"] == 1 and stats["connections_discarded"] == 0
    finally:
        engine.close()
    assert rows(raw, f"SELECT id FROM {table}") == [(1,)]
