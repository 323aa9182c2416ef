"""session_manager semantics and per-thread session storage."""

from __future__ import annotations

import threading

import pytest

import fastsess
from fastsess import SessionConflict, SessionContextStorage, SessionNotFound, SessionThreadStorage

from .conftest import raw_query


class Boom(Exception):
    pass


@pytest.mark.parametrize("form", ["engine", "module"])
def test_session_manager_commits_and_closes(engine, table, raw_connect, form):
    manager = engine.session_manager() if form == "engine" else fastsess.session_manager(engine)
    with manager as s:
        s.execute(f"INSERT INTO {table} (id) VALUES (1)")
    assert s.closed and engine.pool_stats()["in_use"] == 0
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == [(1,)]


@pytest.mark.parametrize("form", ["engine", "module"])
def test_session_manager_rolls_back_and_reraises(engine, table, raw_connect, form):
    manager = engine.session_manager() if form == "engine" else fastsess.session_manager(engine)
    with pytest.raises(Boom):
        with manager as s:
            s.execute(f"INSERT INTO {table} (id) VALUES (1)")
            raise Boom()
    assert s.closed and engine.pool_stats()["in_use"] == 0
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []


def test_session_manager_rolls_back_on_base_exception(engine, table, raw_connect):
    with pytest.raises(KeyboardInterrupt):
        with engine.session_manager() as s:
            s.execute(f"INSERT INTO {table} (id) VALUES (1)")
            raise KeyboardInterrupt()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []
    assert engine.pool_stats()["in_use"] == 0


def test_given_session_passes_through_untouched(engine, table, raw_connect):
    outer = engine.get_session()
    with engine.session_manager(outer) as s:
        assert s is outer
        s.execute(f"INSERT INTO {table} (id) VALUES (1)")
    # Nothing committed, nothing closed: the owner decides.
    assert not outer.closed and outer.has_connection
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []
    with pytest.raises(Boom):
        with fastsess.session_manager(engine, outer):
            raise Boom()
    assert outer.has_connection  # an error in the inner block did not roll back or close
    assert outer.execute(f"SELECT id FROM {table}").fetchall() == [{"id": 1}]
    outer.commit()
    outer.close()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == [(1,)]


def test_stored_session_is_used_and_not_committed(engine, table, raw_connect):
    storage = engine.get_session_storage()
    stored = storage.store_session(engine.get_session())
    try:
        with engine.session_manager() as s:
            assert s is stored
            s.execute(f"INSERT INTO {table} (id) VALUES (1)")
        assert not stored.closed
        assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []
        stored.rollback()
    finally:
        storage.pop_session().close()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []


def test_stored_session_of_one_engine_is_not_used_by_another(url):
    a = fastsess.create_engine(url, max_size=1)
    b = fastsess.create_engine(url, max_size=1)
    stored = a.get_session_storage().store_session(a.get_session())
    try:
        with b.session_manager() as s:
            assert s is not stored and s.engine is b
        with a.session_manager() as s:
            assert s is stored
    finally:
        a.get_session_storage().remove_session()
        stored.close()
        a.close()
        b.close()


def test_commit_failure_rolls_back_closes_and_raises(engine, dialect, raw_connect):
    if dialect == "mysql":
        pytest.skip("MySQL checks constraints per statement; there is no deferred constraint to fail at COMMIT")
    conn = raw_connect()
    raw_query(conn, "CREATE TABLE t_deferred (id INT PRIMARY KEY, parent INT REFERENCES t_deferred (id) "
                    "DEFERRABLE INITIALLY DEFERRED)")
    try:
        with pytest.raises(fastsess.errors.ForeignKeyViolation):
            with engine.session_manager() as s:
                s.execute("INSERT INTO t_deferred (id, parent) VALUES (1, 42)")
        assert s.closed and engine.pool_stats()["in_use"] == 0
        assert raw_query(conn, "SELECT id FROM t_deferred") == []
    finally:
        raw_query(conn, "DROP TABLE t_deferred")


@pytest.mark.parametrize("storage_class", [SessionThreadStorage, SessionContextStorage])
def test_storage_contract(storage_class):
    # The thread storage and its task-local twin keep the same contract.
    storage = storage_class()
    with pytest.raises(SessionNotFound):
        storage.get_session()
    assert storage.find_session() is None
    sentinel = object()
    assert storage.store_session(sentinel) is sentinel
    assert storage.get_session() is sentinel and storage.find_session() is sentinel
    with pytest.raises(SessionConflict):
        storage.store_session(object())
    assert storage.pop_session() is sentinel
    with pytest.raises(SessionNotFound):
        storage.pop_session()
    storage.store_session(sentinel)
    storage.remove_session()
    with pytest.raises(SessionNotFound):
        storage.get_session()
    storage.remove_session()  # removing nothing is fine


def test_thread_storage_isolated_across_threads():
    storage = SessionThreadStorage()
    barrier = threading.Barrier(8)
    seen = {}

    def work(i):
        mine = object()
        storage.store_session(mine)
        barrier.wait()  # every thread has stored before any reads
        seen[i] = storage.get_session() is mine
        storage.remove_session()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {i: True for i in range(8)}
    with pytest.raises(SessionNotFound):
        storage.get_session()  # the main thread never stored one


def test_two_storages_are_independent():
    a, b = SessionThreadStorage(), SessionThreadStorage()
    a.store_session("x")
    with pytest.raises(SessionNotFound):
        b.get_session()
    a.remove_session()
