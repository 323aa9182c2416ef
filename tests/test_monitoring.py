"""get_session_stats / reset_session_stats, latency percentiles and leak warnings."""

from __future__ import annotations

import gc
import inspect

import pytest

import fastsess
from fastsess import atomic, errors, with_session

from .helpers_tx import registered, session_settings


class Boom(Exception):
    pass


@pytest.fixture
def stats_engine(url):
    """A registered engine (its pool shows up in the stats), counts reset."""
    with registered(url, "monitoring_test") as engine:
        gc.collect()  # sessions other tests dropped are counted now, not during the test
        fastsess.reset_session_stats()
        yield engine


def test_counts_match_what_was_done(stats_engine, table):
    engine = stats_engine
    active_before = fastsess.get_session_stats()["active_sessions"]

    @with_session(using=engine)
    def write(session, value, fail=False):
        session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (value,))
        if fail:
            raise Boom()

    write(1)
    write(2)
    with pytest.raises(Boom):
        write(3, fail=True)                       # a failed transaction, rolled back
    with atomic(using=engine) as s:               # one transaction, two savepoints
        with atomic(using=engine):
            s.execute(f"INSERT INTO {table} (id) VALUES (4)")
        with pytest.raises(Boom):
            with atomic(using=engine):
                s.execute(f"INSERT INTO {table} (id) VALUES (5)")
                raise Boom()
        assert fastsess.get_session_stats()["active_sessions"] == active_before + 1
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id) VALUES (6)")
    with pytest.raises(Boom):
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {table} (id) VALUES (7)")
            raise Boom()                          # failed, through session_manager
    engine.get_session().close()                  # a session that did nothing
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id) VALUES (8)")
    s.rollback()                                  # asked for: a rollback, not a failure
    s.close()

    stats = fastsess.get_session_stats()
    assert {k: stats[k] for k in (
        "session_count", "active_sessions", "total_transactions", "committed_transactions",
        "failed_transactions", "success_rate", "rollbacks", "retries", "savepoints",
        "savepoint_rollbacks")} == {
        "session_count": 8, "active_sessions": active_before, "total_transactions": 6,
        "committed_transactions": 4, "failed_transactions": 2,
        "success_rate": pytest.approx(100.0 * 4 / 6), "rollbacks": 3, "retries": 0,
        "savepoints": 2, "savepoint_rollbacks": 1}
    assert stats["engines"]["monitoring_test"] == engine.pool_stats()
    assert stats["engines"]["monitoring_test"]["in_use"] == 0
    assert stats["commit_latency_ms"] is None and stats["leak_tracking"] is False

    fastsess.reset_session_stats()
    after = fastsess.get_session_stats()
    assert after["session_count"] == after["total_transactions"] == after["rollbacks"] == 0
    assert after["success_rate"] == 100.0 and after["active_sessions"] == active_before


def test_active_sessions_is_a_gauge(stats_engine):
    engine = stats_engine
    before = fastsess.get_session_stats()["active_sessions"]
    a, b = engine.get_session(), engine.get_session()
    assert fastsess.get_session_stats()["active_sessions"] == before + 2
    fastsess.reset_session_stats()  # does not forget sessions still open
    assert fastsess.get_session_stats()["active_sessions"] == before + 2
    a.close()
    a.close()  # closing twice counts once
    del b      # collected without close(): its lifetime ended too
    gc.collect()
    assert fastsess.get_session_stats()["active_sessions"] == before
    a.execute("SELECT 1")  # a closed session used again is open again
    assert fastsess.get_session_stats()["active_sessions"] == before + 1
    assert fastsess.get_session_stats()["session_count"] == 1
    a.close()


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_failed_commit_counts_as_a_failed_transaction(stats_engine, dialect, raw_connect):
    from .conftest import raw_query

    name = "t_monitoring_deferred"
    conn = raw_connect()
    raw_query(conn, f"DROP TABLE IF EXISTS {name}")
    raw_query(conn, f"CREATE TABLE {name} (id INT PRIMARY KEY, parent INT REFERENCES {name} (id) "
                    "DEFERRABLE INITIALLY DEFERRED)")
    try:
        with pytest.raises(errors.ForeignKeyViolation):
            with fastsess.session_scope(using=stats_engine) as s:
                s.execute(f"INSERT INTO {name} (id, parent) VALUES (1, 42)")
        stats = fastsess.get_session_stats()
        assert (stats["failed_transactions"], stats["committed_transactions"]) == (1, 0)
    finally:
        raw_query(conn, f"DROP TABLE {name}")


def test_latency_percentiles_only_when_enabled(stats_engine, table):
    engine = stats_engine

    @with_session(using=engine)
    def write(session, value):
        session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (value,))

    write(1)
    assert fastsess.get_session_stats()["commit_latency_ms"] is None
    with session_settings(enable_monitoring=True):
        fastsess.reset_session_stats()
        for i in range(2, 7):
            write(i)
        with pytest.raises(errors.ConflictError):
            write(2)  # rolled back
        stats = fastsess.get_session_stats()
        commit, rollback = stats["commit_latency_ms"], stats["rollback_latency_ms"]
        assert commit["count"] == 5 and rollback["count"] == 1
        assert 0 < commit["p50"] <= commit["p90"] <= commit["p99"] <= commit["max"]
        assert rollback["p50"] == rollback["max"] > 0
        fastsess.reset_session_stats()
        assert fastsess.get_session_stats()["commit_latency_ms"]["count"] == 0
    assert fastsess.get_session_stats()["commit_latency_ms"] is None
    assert fastsess.session._monitor is None  # nothing left on the hot path


def test_leak_warnings_are_off_by_default(stats_engine, caplog):
    caplog.set_level("WARNING", logger="fastsess.monitoring")
    s = stats_engine.get_session()
    s.execute("SELECT 1")
    del s
    gc.collect()
    assert fastsess.check_sessions() == 0
    assert fastsess.get_session_stats()["tracked_open_sessions"] is None
    assert not [r for r in caplog.records if r.name == "fastsess.monitoring"]


def test_warning_for_a_session_never_closed_names_where_it_was_opened(stats_engine, caplog):
    caplog.set_level("WARNING", logger="fastsess.monitoring")
    with session_settings(track_leaks=True):
        def leak():
            s = stats_engine.get_session()
            s.execute("SELECT 1")
            return inspect.currentframe().f_lineno - 2  # the get_session() line

        line = leak()
        gc.collect()
        fastsess.check_sessions()
        with stats_engine.session_manager() as s:  # closed: no warning
            s.execute("SELECT 1")
        fastsess.check_sessions()
    warnings = [r.getMessage() for r in caplog.records if r.name == "fastsess.monitoring"]
    assert len(warnings) == 1, warnings
    assert "garbage-collected without close()" in warnings[0]
    assert f'{__file__}", line {line}, in leak' in warnings[0]
    assert "fastsess/session.py" not in warnings[0]  # fastsess's own frames are left out
    assert stats_engine.pool_stats()["in_use"] == 0  # the connection went back all the same


def test_warning_for_a_session_held_open_too_long(stats_engine, caplog):
    caplog.set_level("WARNING", logger="fastsess.monitoring")
    with session_settings(track_leaks=True, leak_threshold=0.0):
        with stats_engine.session_manager() as s:
            s.execute("SELECT 1")
        held = stats_engine.get_session(); line = inspect.currentframe().f_lineno  # noqa: E702
        try:
            assert fastsess.get_session_stats()["tracked_open_sessions"] == 1
            fastsess.check_sessions()
            fastsess.check_sessions()  # once per session
        finally:
            held.close()
        assert fastsess.get_session_stats()["tracked_open_sessions"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "fastsess.monitoring"]
    assert len(warnings) == 1, warnings
    assert "has been open for" in warnings[0] and "leak_threshold 0 s" in warnings[0]
    assert f'{__file__}", line {line}, in test_warning_for_a_session_held_open_too_long' \
        in warnings[0]
