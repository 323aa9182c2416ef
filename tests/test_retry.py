"""Transaction retry: forced deadlocks and serialization failures, lost
connections, and the cases that must never be run again."""

from __future__ import annotations

import threading

import pytest

import fastsess
from fastsess import atomic, errors, on_commit, retry, with_session

from .conftest import kill_backend, raw_query
from .helpers_tx import backend_id, ids, run_threads, session_settings, short_lock_waits


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff waits the retry loop asked for (no real sleeping)."""
    waits = []
    monkeypatch.setattr(retry, "_sleep", waits.append)
    return waits


def retries_done():
    return fastsess.get_session_stats()["retries"]


# -- forced conflicts between two threads ------------------------------------------


@pytest.mark.parametrize("form", ["with_session", "atomic", "retrying"])
def test_deadlock_between_two_threads_is_retried_to_success(engine, dialect, table, raw_connect,
                                                            sleeps, form):
    raw_query(raw_connect(), f"INSERT INTO {table} (id, n) VALUES (1, 0), (2, 0)")
    barrier = threading.Barrier(2, timeout=30)
    calls = {"A": 0, "B": 0}
    committed = []
    outcome = {}

    def body(session, label, first, second):
        calls[label] += 1
        short_lock_waits(session, dialect)
        session.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (first,))
        if calls[label] == 1:
            barrier.wait()  # both hold their first row: the second update deadlocks
        session.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (second,))
        session.execute(f"INSERT INTO {table} (id, n) VALUES (%s, 0)",
                        (10 * first + calls[label],))
        on_commit(lambda: committed.append((label, calls[label])), using=engine)

    def worker(label, first, second):
        try:
            if form == "with_session":
                @with_session(using=engine, retry_attempts=3, retry_delay=0.01)
                def unit(session):
                    body(session, label, first, second)
                unit()
            elif form == "atomic":
                @atomic(using=engine, retry_attempts=3, retry_delay=0.01)
                def unit():
                    body(fastsess.current_session(engine), label, first, second)
                unit()
            else:
                for attempt in fastsess.retrying(engine, retry_attempts=3, retry_delay=0.01):
                    with attempt as session:
                        body(session, label, first, second)
            outcome[label] = "ok"
        except BaseException as e:  # noqa: BLE001
            outcome[label] = e

    fastsess.reset_session_stats()
    run_threads(lambda: worker("A", 1, 2), lambda: worker("B", 2, 1))
    assert outcome == {"A": "ok", "B": "ok"}
    # The loser ran once more.  (Rarely the retry, run at once here since the
    # backoff does not sleep, takes its first row before the winner gets it
    # and deadlocks again, or PostgreSQL aborts both sides: then a unit runs
    # once more per deadlock, and the counts below still hold.)
    retried = calls["A"] + calls["B"] - 2
    assert retried >= 1 and min(calls.values()) >= 1
    first_row = {"A": 1, "B": 2}
    # Each unit's writes are present exactly once: both rows updated twice,
    # one insert per unit (10 * its first row + its attempt), none from the
    # failed attempt.
    inserted = {10 * first_row[label] + n: 0 for label, n in calls.items()}
    assert dict(raw_query(raw_connect(), f"SELECT id, n FROM {table}")) == {1: 2, 2: 2, **inserted}
    # Only the successful attempts' callbacks ran.
    assert sorted(committed) == sorted([("A", calls["A"]), ("B", calls["B"])])
    assert retries_done() == retried and len(sleeps) == retried
    assert all(0.005 <= wait <= 0.02 for wait in sleeps)  # retry_delay * 2**(n-1) * [0.5, 1)
    stats = fastsess.get_session_stats()
    assert stats["committed_transactions"] == 2 and stats["failed_transactions"] == retried
    assert engine.pool_stats()["in_use"] == 0


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_serialization_failure_under_repeatable_read_is_retried(engine, dialect, table,
                                                                 raw_connect, sleeps):
    other = raw_connect()
    raw_query(other, f"INSERT INTO {table} (id, n) VALUES (1, 0)")
    calls = []

    @with_session(using=engine, retry_attempts=2, retry_delay=0)
    def add_ten(session):
        calls.append(1)
        session.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        short_lock_waits(session, dialect)
        n = session.execute(f"SELECT n FROM {table} WHERE id = 1").fetchone()["n"]  # snapshot
        if len(calls) == 1:
            raw_query(other, f"UPDATE {table} SET n = n + 1 WHERE id = 1")  # commits meanwhile
        session.execute(f"UPDATE {table} SET n = %s WHERE id = 1", (n + 10,))

    fastsess.reset_session_stats()
    add_ten()
    assert len(calls) == 2 and retries_done() == 1
    assert raw_query(other, f"SELECT n FROM {table} WHERE id = 1") == [(11,)]


def test_serialization_failure_under_serializable_is_retried(engine, dialect, table,
                                                             raw_connect, sleeps, caplog):
    # Two read-modify-write increments of one counter.  PostgreSQL fails the
    # second writer with a serialization failure; InnoDB takes shared locks
    # on SERIALIZABLE reads, so the two writers deadlock.  Either way one of
    # them is retried and both increments land exactly once.
    raw_query(raw_connect(), f"INSERT INTO {table} (id, n) VALUES (1, 0)")
    barrier = threading.Barrier(2, timeout=30)
    outcome = {}
    caplog.set_level("INFO", logger="fastsess.retry")

    def worker(label):
        calls = []

        @with_session(using=engine, retry_attempts=3, retry_delay=0)
        def increment(session):
            calls.append(1)
            session.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            short_lock_waits(session, dialect)
            n = session.execute(f"SELECT n FROM {table} WHERE id = 1").fetchone()["n"]
            if len(calls) == 1:
                barrier.wait()  # both have read
            session.execute(f"UPDATE {table} SET n = %s WHERE id = 1", (n + 1,))

        try:
            increment()
            outcome[label] = len(calls)
        except BaseException as e:  # noqa: BLE001
            outcome[label] = e

    fastsess.reset_session_stats()
    run_threads(lambda: worker("A"), lambda: worker("B"))
    assert sorted(outcome.values()) == [1, 2], outcome
    assert raw_query(raw_connect(), f"SELECT n FROM {table} WHERE id = 1") == [(2,)]
    assert retries_done() == 1
    retried = [r.getMessage() for r in caplog.records if r.name == "fastsess.retry"]
    expected = "SerializationFailure" if dialect == "postgresql" else "DeadlockDetected"
    assert len(retried) == 1 and f"after {expected}:" in retried[0], retried


# -- lost connections ----------------------------------------------------------------


def test_connection_lost_before_commit_is_retried_on_a_fresh_connection(engine, dialect, table,
                                                                        raw_connect, sleeps):
    killer = raw_connect()
    backends = []

    @with_session(using=engine, retry_attempts=2, retry_delay=0)
    def unit(session):
        backends.append(backend_id(session, dialect))
        session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (len(backends),))
        if len(backends) == 1:
            kill_backend(killer, dialect, backends[0])
            session.execute("SELECT 1")  # ConnectionLost, before any COMMIT was sent

    unit()
    assert len(backends) == 2 and backends[0] != backends[1]
    assert ids(killer, table) == [2]  # the first attempt's insert died with its connection
    stats = engine.pool_stats()
    assert stats["connections_discarded"] == 1 and stats["in_use"] == 0


def test_commit_outcome_unknown_is_never_retried(engine, dialect, table, raw_connect, sleeps):
    killer = raw_connect()
    calls = []

    @with_session(using=engine, retry_attempts=5, retry_delay=0)
    def unit(session):
        calls.append(1)
        session.execute(f"INSERT INTO {table} (id) VALUES (1)")
        # The connection dies after the last statement: the COMMIT meets it.
        kill_backend(killer, dialect, backend_id(session, dialect))

    fastsess.reset_session_stats()
    with pytest.raises(errors.CommitOutcomeUnknown):
        unit()
    assert len(calls) == 1 and sleeps == [] and retries_done() == 0


# -- what is never run again ---------------------------------------------------------


def test_non_retryable_error_raises_at_once(engine, table, sleeps):
    calls = []

    @with_session(using=engine, retry_attempts=5, retry_delay=0)
    def duplicate(session):
        calls.append(1)
        session.execute(f"INSERT INTO {table} (id) VALUES (1), (1)")

    @with_session(using=engine, retry_attempts=5)
    def own_error(session):
        calls.append(2)
        raise ValueError("not a database error")

    fastsess.reset_session_stats()
    with pytest.raises(errors.ConflictError):
        duplicate()
    with pytest.raises(ValueError):
        own_error()
    assert calls == [1, 2] and sleeps == [] and retries_done() == 0


def test_nothing_is_retried_after_a_commit_succeeded(engine, table, raw_connect, sleeps):
    calls = []

    @with_session(using=engine, retry_attempts=3, retry_delay=0)
    def commits_then_fails(session):
        calls.append(1)
        session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (len(calls),))
        session.commit()
        raise errors.DeadlockDetected("a retryable error after a commit")

    with pytest.raises(errors.DeadlockDetected):
        commits_then_fails()
    assert calls == [1] and ids(raw_connect(), table) == [1]

    def fails():
        raise errors.SerializationFailure("raised by a callback, after the commit")

    @atomic(using=engine, retry_attempts=3, retry_delay=0)
    def callback_fails():
        calls.append(2)
        on_commit(fails, using=engine)

    with pytest.raises(errors.SerializationFailure):
        callback_fails()
    assert calls == [1, 2] and sleeps == []


def test_a_nested_retrying_unit_runs_once_and_the_outer_one_retries(engine, table, raw_connect,
                                                                     sleeps):
    inner_calls, outer_calls = [], []

    @with_session(using=engine, retry_attempts=3, retry_delay=0)
    def inner(session):
        inner_calls.append(1)
        session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (len(inner_calls),))
        if len(inner_calls) == 1:
            raise errors.DeadlockDetected("the transaction was rolled back")

    @with_session(using=engine, retry_attempts=1, retry_delay=0)
    def outer(session):
        outer_calls.append(1)
        inner()  # joins this transaction: must not re-run itself inside it

    with pytest.raises(errors.DeadlockDetected):
        with fastsess.session_scope(using=engine):
            inner()
    assert inner_calls == [1] and ids(raw_connect(), table) == []
    inner_calls.clear()
    outer()
    assert len(outer_calls) == 2 and len(inner_calls) == 2
    assert ids(raw_connect(), table) == [2]


def test_a_caller_supplied_session_is_never_retried(engine, sleeps):
    calls = []

    @with_session(using=engine, retry_attempts=3, retry_delay=0)
    def unit(session):
        calls.append(session)
        raise errors.DeadlockDetected("x")

    own = engine.get_session()
    try:
        with pytest.raises(errors.DeadlockDetected):
            unit(own)
    finally:
        own.close()
    assert calls == [own] and sleeps == []


def test_attempts_are_limited_and_the_last_error_is_raised(engine, sleeps):
    calls = []

    @with_session(using=engine, retry_attempts=3, retry_delay=0.1, retry_max_delay=0.25)
    def always_deadlocks(session):
        calls.append(1)
        raise errors.DeadlockDetected(f"attempt {len(calls)}")

    fastsess.reset_session_stats()
    with pytest.raises(errors.DeadlockDetected, match="attempt 4"):
        always_deadlocks()
    assert len(calls) == 4 and retries_done() == 3
    # Exponential (0.1, 0.2, 0.4 capped at 0.25), each jittered into its upper half.
    assert [round(w, 6) >= lo and w <= hi for w, (lo, hi) in
            zip(sleeps, [(0.05, 0.1), (0.1, 0.2), (0.125, 0.25)])] == [True] * 3


def test_global_retry_defaults_and_per_call_override(engine, sleeps):
    calls = []

    @with_session(using=engine)
    def by_default(session):
        calls.append("default")
        raise errors.DeadlockDetected("x")

    @with_session(using=engine, retry_attempts=0)
    def never(session):
        calls.append("never")
        raise errors.DeadlockDetected("x")

    @atomic(using=engine)
    def atomic_default():
        calls.append("atomic")
        raise errors.DeadlockDetected("x")

    with pytest.raises(errors.DeadlockDetected):
        by_default()
    assert calls == ["default"]  # retry_attempts defaults to 0
    calls.clear()
    with session_settings(retry_attempts=2, retry_delay=0.0):
        for fn in (by_default, never, atomic_default):
            with pytest.raises(errors.DeadlockDetected):
                fn()
    assert calls == ["default"] * 3 + ["never"] + ["atomic"] * 3
    assert sleeps == []  # a zero delay does not sleep


# -- the attempts iterator -------------------------------------------------------------


def test_retrying_iterator(engine, table, raw_connect, sleeps):
    seen = []
    for attempt in fastsess.retrying(engine, retry_attempts=3, retry_delay=0):
        with attempt as session:
            seen.append(attempt.number)
            session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (attempt.number,))
            if attempt.number < 3:
                raise errors.SerializationFailure("again")
        seen.append(("after", attempt.number, type(attempt.error).__name__))
    assert seen == [1, ("after", 1, "SerializationFailure"), 2,
                    ("after", 2, "SerializationFailure"), 3, ("after", 3, "NoneType")]
    assert ids(raw_connect(), table) == [3]

    with pytest.raises(errors.SerializationFailure):
        for attempt in fastsess.retrying(engine, retry_attempts=1, retry_delay=0):
            with attempt:
                raise errors.SerializationFailure("every time")
    with pytest.raises(KeyError):
        for attempt in fastsess.retrying(engine, retry_attempts=5, retry_delay=0):
            with attempt:
                raise KeyError("not retryable")
    numbers = [a.number for a in fastsess.retrying(engine, retry_attempts=5)]
    assert numbers == [1]  # an attempt never entered ends the loop


def test_backoff_is_exponential_capped_and_jittered():
    assert retry.backoff(1, 0.1, 2.0, lambda: 0.0) == pytest.approx(0.05)
    assert retry.backoff(1, 0.1, 2.0, lambda: 1.0) == pytest.approx(0.1)
    assert retry.backoff(3, 0.1, 2.0, lambda: 1.0) == pytest.approx(0.4)
    assert retry.backoff(10, 0.1, 2.0, lambda: 1.0) == pytest.approx(2.0)
    assert retry.backoff(10_000, 0.1, 2.0, lambda: 0.0) == pytest.approx(1.0)  # no overflow
    assert retry.is_retryable(errors.DeadlockDetected("x"))
    assert retry.is_retryable(errors.ConnectionLost("x"))
    assert not retry.is_retryable(errors.CommitOutcomeUnknown("x"))
    assert not retry.is_retryable(errors.ConflictError("x"))
    assert not retry.is_retryable(ValueError("x"))
    with pytest.raises(ValueError):
        with_session(retry_delay=-1)
    with pytest.raises(ValueError):
        fastsess.retrying(retry_attempts=1.5)
