"""Helpers for the transaction-scope tests: short lock waits, forced conflicts, settings."""

from __future__ import annotations

import contextlib
import threading

import fastsess
from fastsess import config

from .conftest import raw_query

# Waits long enough for the servers' deadlock detection, short enough that a
# bug fails the test instead of hanging the suite.
LOCK_WAIT_S = 10


def short_lock_waits(session, dialect) -> None:
    """Bound this session's lock waits; on PostgreSQL also detect deadlocks
    after 100 ms instead of 1 s (the test user is a superuser)."""
    if dialect == "postgresql":
        session.execute(f"SET lock_timeout = '{LOCK_WAIT_S}s'")
        session.execute("SET deadlock_timeout = '100ms'")
    else:
        session.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_S}")


def backend_id(session, dialect) -> int:
    sql = "SELECT pg_backend_pid() AS bid" if dialect == "postgresql" else "SELECT CONNECTION_ID() AS bid"
    return int(session.execute(sql).fetchone()["bid"])


def ids(raw, table) -> list:
    """The sorted ids in ``table``, read on a plain connection."""
    return sorted(r[0] for r in raw_query(raw, f"SELECT id FROM {table}"))


def run_threads(*targets, timeout=60) -> None:
    """Start one thread per target, join them all; fail if one hangs."""
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread is still blocked"


@contextlib.contextmanager
def session_settings(**options):
    """configure_session(**options) for the block, then the previous values."""
    before = config.get_session_config()
    fastsess.configure_session(**options)
    try:
        yield
    finally:
        fastsess.configure_session(**{k: before[k] for k in options})


@contextlib.contextmanager
def registered(url, name):
    """An engine registered under ``name`` for the block, destroyed after."""
    engine = fastsess.configure_factory(url, config={"max_size": 4, "timeout": 5}, name=name)
    try:
        yield engine
    finally:
        fastsess.destroy_engine(name)
