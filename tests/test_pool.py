"""The connection pool on the real servers: limits, timeouts, recovery, hygiene."""

from __future__ import annotations

import threading
import time

import pytest

import fastsess
import fastsess.pool
from fastsess import errors

from .conftest import kill_backend, raw_query
from .faults.conftest import alive_backends


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
    # The reaper thread closes them without any traffic: it takes them out of
    # the pool (size) first, then closes and counts them.
    while time.monotonic() < deadline:
        stats = engine.pool_stats()
        if stats["size"] == 0 and stats["connections_closed"] == 3:
            break
        time.sleep(0.05)
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
    """32 threads x 200 sessions on a pool of 8: never more than 8 server
    connections, all gone after close().  Counted by the backend ids the
    sessions ran on, not the server's total: other clients may come and go."""
    max_size = 8
    engine = fastsess.create_engine(url, max_size=max_size, timeout=30)
    admin = raw_connect()
    sql = "SELECT pg_backend_pid() AS bid" if dialect == "postgresql" else "SELECT CONNECTION_ID() AS bid"
    seen = set()  # backend ids the sessions ran on (set.add is atomic)
    peak = [0]
    stop = threading.Event()
    failures = []

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], len(alive_backends(admin, dialect, list(seen))))
            time.sleep(0.005)

    def work():
        try:
            for _ in range(200):
                with engine.session_manager() as s:
                    seen.add(s.execute(sql).fetchone()["bid"])
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
    # No connection died, so none was replaced: at most max_size ever opened.
    assert 0 < len(seen) <= max_size and len(seen) == stats["connections_opened"]
    assert 0 < peak[0] <= max_size
    assert alive_backends(admin, dialect, list(seen)) == seen  # idle in the pool
    engine.close()
    deadline = time.monotonic() + 5
    while alive_backends(admin, dialect, list(seen)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive_backends(admin, dialect, list(seen)) == set()


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


# Sync and async engines: both pools are PoolState.
_ENGINE_FACTORIES = [fastsess.create_engine, fastsess.create_async_engine]


@pytest.mark.parametrize("factory", _ENGINE_FACTORIES, ids=["sync", "async"])
@pytest.mark.parametrize("option, value, message", [
    ("max_size", 2.5, "max_size must be an int, got float"),
    ("min_size", True, "min_size must be an int, got bool"),
    ("max_waiting", "3", "max_waiting must be an int, got str"),
    ("timeout", "5", "timeout must be a number of seconds, got str"),
    ("max_idle", False, "max_idle must be a number of seconds, got bool"),
])
def test_pool_options_of_the_wrong_type_are_refused(factory, option, value, message):
    # The same in the compiled build (C fields) and the pure one.
    for url in ("postgresql://u@127.0.0.1/db", "mysql://u@127.0.0.1/db"):
        with pytest.raises(TypeError, match=f"^{message}$"):
            factory(url, **{option: value})


@pytest.mark.parametrize("factory", _ENGINE_FACTORIES, ids=["sync", "async"])
def test_pool_times_are_kept_as_floats(factory):
    engine = factory("postgresql://u@127.0.0.1/db", timeout=5, max_idle=60, max_lifetime=600,
                     max_size=3)
    pool = engine._pool
    assert (pool.timeout, pool.max_idle, pool.max_lifetime) == (5.0, 60.0, 600.0)
    assert {type(pool.timeout), type(pool.max_idle), type(pool.max_lifetime)} == {float}
    assert type(pool.max_size) is int and pool.max_size == 3
    assert pool.stats()["size"] == 0  # nothing connected


def test_returning_twice_is_refused(engine):
    conn = engine.get_connection()
    engine.close_connection(conn)
    with pytest.raises(ValueError):
        engine.close_connection(conn)
    assert engine.pool_stats()["in_use"] == 0


# -- liveness: no dead connection handed out, no round trip added --------------


def _idle_engine(url, n):
    """An engine whose pool holds ``n`` idle connections; their backend ids."""
    engine = fastsess.create_engine(url, max_size=n)
    sessions = [engine.get_session() for _ in range(n)]
    ids = [_backend_id(s) for s in sessions]
    for s in sessions:
        s.commit()
        s.close()
    assert engine.pool_stats()["idle"] == n
    return engine, ids


def test_connection_killed_while_idle_is_never_handed_out(url, raw_connect, dialect):
    engine, ids = _idle_engine(url, 3)
    admin = raw_connect()
    for bid in ids[:2]:
        kill_backend(admin, dialect, bid)
    # Three sessions at once take every idle connection (the pool is LIFO).
    sessions = [engine.get_session() for _ in range(3)]
    seen = [_backend_id(s) for s in sessions]
    for s in sessions:
        s.close()
    # Found at checkout from the socket alone: no session failed, none had to
    # run its statement again, and the killed ones never came back.
    stats = engine.pool_stats()
    assert stats["dead_on_checkout"] == 2 and stats["reconnects"] == 0
    assert stats["connections_discarded"] == 2 and stats["in_use"] == 0
    assert not set(seen) & set(ids[:2])
    assert ids[2] in seen
    engine.close()


def _last_activity(admin, dialect, bid):
    """When the server last heard from backend ``bid``: PostgreSQL's
    state_change, MariaDB's milliseconds in the current state."""
    if dialect == "postgresql":
        return raw_query(admin, "SELECT state_change FROM pg_stat_activity WHERE pid = %s", (bid,))[0][0]
    return raw_query(admin, "SELECT time_ms FROM information_schema.processlist WHERE id = %s", (bid,))[0][0]


def test_checkout_liveness_check_sends_nothing(url, raw_connect, dialect):
    engine, (bid,) = _idle_engine(url, 1)
    admin = raw_connect()
    time.sleep(0.3)  # MariaDB: a command would reset time_ms to about 0
    before = _last_activity(admin, dialect, bid)
    pool = engine._pool
    for _ in range(200):
        pool.checkin(pool.checkout(), False)
    after = _last_activity(admin, dialect, bid)
    if dialect == "postgresql":
        assert after == before  # the backend saw no message at all
    else:
        assert after >= before  # still in the same Sleep state, its clock not reset
    assert engine.pool_stats()["dead_on_checkout"] == 0
    with engine.session_manager() as s:
        assert _backend_id(s) == bid  # the same connection, still fine
    engine.close()


def test_first_statement_runs_again_on_a_connection_dead_after_checkout(
        url, raw_connect, dialect, table, monkeypatch):
    # The socket check is blinded, as for a connection that dies between the
    # checkout and the first statement (or behind a proxy that says nothing).
    monkeypatch.setattr(fastsess.pool, "_socket_state", lambda fd: 0)
    engine, (bid,) = _idle_engine(url, 1)
    kill_backend(raw_connect(), dialect, bid)
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name, n) VALUES (%s, %s, %s)", (1, "né", None))
        assert _backend_id(s) != bid
    assert raw_query(raw_connect(), f"SELECT id, name, n FROM {table}") == [(1, "né", None)]
    stats = engine.pool_stats()
    assert stats["reconnects"] == 1 and stats["connections_discarded"] == 1
    assert stats["dead_on_checkout"] == 0 and stats["in_use"] == 0
    engine.close()


@pytest.mark.parametrize("first", ["execute", "insert_rows", "execute_many"])
def test_every_first_statement_kind_runs_again(url, raw_connect, dialect, table, monkeypatch, first):
    monkeypatch.setattr(fastsess.pool, "_socket_state", lambda fd: 0)
    engine, (bid,) = _idle_engine(url, 1)
    kill_backend(raw_connect(), dialect, bid)
    rows = [(i, f"ü{i}", i if i % 2 else None) for i in range(150)]  # PostgreSQL: COPY
    with engine.session_manager() as s:
        if first == "execute":
            for row in rows:
                s.execute(f"INSERT INTO {table} (id, name, n) VALUES (%s, %s, %s)", row)
        elif first == "insert_rows":
            assert s.insert_rows(table, rows, columns=["id", "name", "n"]) == len(rows)
        else:
            s.execute_many(f"INSERT INTO {table} (id, name, n) VALUES (%s, %s, %s)", rows)
    assert sorted(raw_query(raw_connect(), f"SELECT id, name, n FROM {table}")) == rows
    assert engine.pool_stats()["reconnects"] == 1
    engine.close()


def test_no_second_run_once_a_statement_succeeded(url, raw_connect, dialect, table, monkeypatch):
    monkeypatch.setattr(fastsess.pool, "_socket_state", lambda fd: 0)
    engine = fastsess.create_engine(url, max_size=1)
    admin = raw_connect()
    with pytest.raises(errors.ConnectionLost) as caught:
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {table} (id, name, n) VALUES (1, 'a', 1)")
            kill_backend(admin, dialect, _backend_id(s))
            s.execute(f"INSERT INTO {table} (id, name, n) VALUES (2, 'b', 2)")
    assert not isinstance(caught.value, errors.CommitOutcomeUnknown)
    assert raw_query(admin, f"SELECT count(*) FROM {table}") == [(0,)]
    stats = engine.pool_stats()
    assert stats["reconnects"] == 0 and stats["connections_discarded"] == 1
    assert stats["in_use"] == 0 and stats["size"] == 0
    engine.close()


def test_a_lost_commit_is_never_run_again(url, raw_connect, dialect, table, monkeypatch):
    monkeypatch.setattr(fastsess.pool, "_socket_state", lambda fd: 0)
    engine = fastsess.create_engine(url, max_size=1)
    admin = raw_connect()
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id, name, n) VALUES (1, 'a', 1)")
    kill_backend(admin, dialect, _backend_id(s))
    with pytest.raises(errors.ConnectionLost):
        s.commit()
    s.close()
    assert raw_query(admin, f"SELECT count(*) FROM {table}") == [(0,)]
    assert engine.pool_stats()["reconnects"] == 0
    engine.close()


def test_a_second_dead_connection_is_the_callers_error(url, raw_connect, dialect, monkeypatch):
    # Once only: a first statement whose second connection dies as well fails.
    monkeypatch.setattr(fastsess.pool, "_socket_state", lambda fd: 0)
    engine, ids = _idle_engine(url, 2)
    admin = raw_connect()
    for bid in ids:
        kill_backend(admin, dialect, bid)
    with pytest.raises(errors.ConnectionLost):
        with engine.session_manager() as s:
            s.execute("SELECT 1")
    stats = engine.pool_stats()
    assert stats["reconnects"] == 1 and stats["connections_discarded"] == 2
    assert stats["in_use"] == 0 and stats["size"] == 0
    engine.close()


def test_postgresql_notification_does_not_discard_an_idle_connection(raw_connect, dialect):
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    from .conftest import PG_URL

    engine = fastsess.create_engine(PG_URL, max_size=1)
    with engine.session_manager() as s:
        s.execute("LISTEN fastsess_liveness")
        bid = _backend_id(s)
    raw_query(raw_connect(), "NOTIFY fastsess_liveness, 'wake'")
    conn = engine._pool._idle[-1].raw
    deadline = time.monotonic() + 5
    while not fastsess._impl.socket_state(conn.pgconn.socket):  # wait for it to arrive
        assert time.monotonic() < deadline, "the notification never arrived"
        time.sleep(0.01)
    with engine.session_manager() as s:
        assert _backend_id(s) == bid
    stats = engine.pool_stats()
    assert stats["dead_on_checkout"] == 0 and stats["connections_discarded"] == 0
    assert [n.payload for n in conn.notifies(timeout=0, stop_after=1)] == ["wake"]
    engine.close()


class _Interrupt(BaseException):
    """Raised from a signal handler in the middle of a statement."""


def test_connection_interrupted_mid_statement_is_never_handed_out(url, dialect):
    import signal

    engine = fastsess.create_engine(url, max_size=1)
    sleep = "SELECT pg_sleep(1)" if dialect == "postgresql" else "SELECT SLEEP(1)"

    def interrupt(signum, frame):
        raise _Interrupt()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(_Interrupt):
            with engine.session_manager() as s:
                victim = _backend_id(s)
                signal.setitimer(signal.ITIMER_REAL, 0.2)
                s.execute(sleep)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    stats = engine.pool_stats()
    assert stats["connections_discarded"] == 1 and stats["size"] == 0 and stats["in_use"] == 0
    with engine.session_manager() as s:
        assert _backend_id(s) != victim
        assert s.execute("SELECT 41 + 1 AS n").fetchall() == [{"n": 42}]
    engine.close()
