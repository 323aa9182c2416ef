"""The connection pool on the real servers: limits, timeouts, recovery, hygiene."""

from __future__ import annotations

import threading
import time

import pytest

import fastsess
from fastsess import errors

from .conftest import kill_backend, server_connection_count


def test_exhaustion_times_out_then_recovers(url):
    engine = fastsess.create_engine(url, max_size=2, timeout=0.3)
    held = [engine.get_session(), engine.get_session()]
    for s in held:
        s.execute("SELECT 1")
    waiter = engine.get_session()
    started = time.monotonic()
    with pytest.raises(errors.PoolTimeout, match="within 0.3 s"):
        waiter.execute("SELECT 1")
    waited = time.monotonic() - started
    assert waited >= 0.3  # it did wait for the timeout, not fail at once
    stats = engine.pool_stats()
    assert stats["timeouts"] == 1 and stats["in_use"] == 2 and stats["waiting"] == 0
    assert not waiter.has_connection
    for s in held:
        s.close()
    # Full recovery: both connections usable again, nothing lost.
    with engine.session_manager() as s:
        assert s.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["size"] == 2 and stats["idle"] == 2
    engine.close()


def test_waiter_gets_connection_released_by_another_thread(url):
    engine = fastsess.create_engine(url, max_size=1, timeout=5)
    holder = engine.get_session()
    holder.execute("SELECT 1")
    got = []

    def wait_for_one():
        with engine.session_manager() as s:
            got.append(s.execute("SELECT 7 AS v").fetchone())

    t = threading.Thread(target=wait_for_one)
    t.start()
    deadline = time.monotonic() + 5
    while engine.pool_stats()["waiting"] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.pool_stats()["waiting"] == 1
    holder.close()
    t.join(5)
    assert got == [{"v": 7}]
    assert engine.pool_stats()["connections_opened"] == 1
    engine.close()


def test_max_waiting(url):
    engine = fastsess.create_engine(url, max_size=1, timeout=5, max_waiting=1)
    holder = engine.get_session()
    holder.execute("SELECT 1")
    # One caller waits...
    waiting = threading.Thread(target=lambda: _run_one(engine))
    waiting.start()
    deadline = time.monotonic() + 5
    while engine.pool_stats()["waiting"] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    # ...a second one is refused at once.
    with pytest.raises(errors.PoolTooManyWaiting):
        engine.get_session().execute("SELECT 1")
    holder.close()
    waiting.join(5)
    assert engine.pool_stats()["in_use"] == 0
    engine.close()


def _run_one(engine):
    with engine.session_manager() as s:
        s.execute("SELECT 1")


def test_idle_connections_are_closed_after_max_idle(url):
    engine = fastsess.create_engine(url, max_size=3, max_idle=0.2)
    sessions = [engine.get_session() for _ in range(3)]
    for s in sessions:
        s.execute("SELECT 1")
    for s in sessions:
        s.close()
    stats = engine.pool_stats()
    # All three went idle (the reaper may already have closed some on a slow machine).
    assert stats["in_use"] == 0 and stats["idle"] + stats["connections_closed"] == 3
    deadline = time.monotonic() + 5
    while engine.pool_stats()["size"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the reaper thread closes them without any traffic
    stats = engine.pool_stats()
    assert stats["size"] == 0 and stats["connections_closed"] == 3
    engine.close()


def test_max_lifetime_replaces_old_connections(url):
    engine = fastsess.create_engine(url, max_size=1, max_lifetime=0.1, max_idle=60)
    with engine.session_manager() as s:
        first = _backend_id(s)
    time.sleep(0.2)
    with engine.session_manager() as s:
        second = _backend_id(s)
    assert first != second
    assert engine.pool_stats()["connections_opened"] == 2
    engine.close()


def _backend_id(session):
    dialect = session.engine.dialect_name
    sql = "SELECT pg_backend_pid() AS id" if dialect == "postgresql" else "SELECT CONNECTION_ID() AS id"
    return session.execute(sql).fetchone()["id"]


def test_connection_returned_in_transaction_is_rolled_back(url, table, raw_connect):
    engine = fastsess.create_engine(url, max_size=1)
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id) VALUES (1)")
    s.close()  # no commit
    with engine.session_manager() as s2:
        # Same connection (pool of one), and the insert is gone.
        assert s2.execute(f"SELECT count(*) AS c FROM {table}").fetchone()["c"] == 0
    assert engine.pool_stats()["rollbacks_on_checkin"] == 1
    engine.close()


def test_clean_checkin_sends_nothing(url):
    engine = fastsess.create_engine(url, max_size=1)
    with engine.session_manager() as s:
        s.execute("SELECT 1")
    for _ in range(3):
        with engine.session_manager() as s:
            s.execute("SELECT 1")
    # Committed sessions come back clean: no rollback was needed on checkin.
    assert engine.pool_stats()["rollbacks_on_checkin"] == 0
    engine.close()


def test_broken_connection_is_discarded(url, raw_connect, dialect):
    engine = fastsess.create_engine(url, max_size=1)
    s = engine.get_session()
    victim = _backend_id(s)
    s.commit()
    kill_backend(raw_connect(), dialect, victim)
    with pytest.raises(errors.ConnectionLost):
        s.execute("SELECT 1")
    s.close()
    stats = engine.pool_stats()
    assert stats["connections_discarded"] == 1 and stats["size"] == 0 and stats["in_use"] == 0
    with engine.session_manager() as s2:
        assert _backend_id(s2) != victim
    engine.close()


def test_many_threads_leave_nothing_checked_out(url, raw_connect, dialect):
    max_size = 8
    engine = fastsess.create_engine(url, max_size=max_size, timeout=30)
    admin = raw_connect()
    baseline = server_connection_count(admin, dialect)
    peak = [0]
    stop = threading.Event()
    failures = []

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], server_connection_count(admin, dialect) - baseline)
            time.sleep(0.005)

    def work():
        try:
            for _ in range(200):
                with engine.session_manager() as s:
                    s.execute("SELECT 1").fetchall()
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert failures == []
    stats = engine.pool_stats()
    assert stats["in_use"] == 0 and stats["waiting"] == 0
    assert stats["checkouts"] >= 32 * 200 // max_size  # connections were reused
    assert stats["size"] <= max_size
    assert 0 < peak[0] <= max_size
    assert server_connection_count(admin, dialect) - baseline <= max_size
    engine.close()
    deadline = time.monotonic() + 5
    while server_connection_count(admin, dialect) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server_connection_count(admin, dialect) == baseline


def test_prefill_opens_min_size(url):
    engine = fastsess.create_engine(url, min_size=2, max_size=4)
    stats = engine.pool_stats()
    assert stats["size"] == 2 and stats["idle"] == 2 and stats["in_use"] == 0
    engine.close()
    assert engine.pool_stats()["size"] == 0


def test_invalid_pool_options():
    with pytest.raises(ValueError, match="max_size"):
        fastsess.create_engine("postgresql://u@127.0.0.1/db", max_size=0)
    with pytest.raises(ValueError, match="min_size"):
        fastsess.create_engine("postgresql://u@127.0.0.1/db", max_size=2, min_size=3)


def test_returning_twice_is_refused(engine):
    conn = engine.get_connection()
    engine.close_connection(conn)
    with pytest.raises(ValueError):
        engine.close_connection(conn)
    assert engine.pool_stats()["in_use"] == 0
