"""Engines: a URL, a driver adapter, a pool and a session storage.

``Engine`` makes sync sessions (threads), ``AsyncEngine`` async ones (asyncio
tasks); both take the same URL and options.
"""

from __future__ import annotations

import threading

from .current import SessionContextStorage, SessionThreadStorage
from .drivers import get_adapter, get_async_adapter
from .errors import EngineClosed
from .pool import Pool
from .pool_async import AsyncPool
from .session import Session, session_manager
from .session_async import AsyncSession, async_session_manager
from .url import DatabaseURL

# Engine options that configure the pool, with their defaults.
POOL_OPTIONS = {
    "max_size": 10,
    "min_size": 0,
    "timeout": 30.0,
    "max_waiting": 0,
    "max_idle": 300.0,
    "max_lifetime": 3600.0,
}
# Aliases accepted for RESTAlchemy / psycopg_pool / mysql-connector configs.
_ALIASES = {"pool_size": "max_size", "pool_timeout": "timeout"}
# psycopg_pool options that have no meaning here; accepted and ignored so
# RESTAlchemy configs written for psycopg_pool keep working.
_IGNORED = {"open", "num_workers", "reconnect_timeout", "pool_name", "name", "check",
            "pool_reset_session"}


def pool_options(options: dict) -> dict:
    """The pool settings among engine ``options`` (aliases resolved, psycopg_pool-only
    ones ignored), defaults filled in; ``TypeError`` for an unknown one."""
    out = dict(POOL_OPTIONS)
    for key, value in options.items():
        key = _ALIASES.get(key, key)
        if key in _IGNORED:
            continue
        if key not in POOL_OPTIONS:
            raise TypeError(
                f"unknown engine option {key!r}; known: "
                f"{', '.join(sorted(list(POOL_OPTIONS) + ['query_cache', 'readonly', 'connect_args']))}")
        if value is not None:
            out[key] = value
    return out


class BaseEngine:
    """What sync and async engines share: the URL, the options, the
    adapter, the pool and the session storage."""

    def __init__(self, url, query_cache, readonly, connect_args, name, options, pool_class):
        self.url = DatabaseURL.parse(url)
        options = pool_options(options)
        self.name = name or "default"
        self.query_cache = bool(query_cache)
        self.readonly = bool(readonly)
        self._adapter = self._make_adapter(self.url, dict(connect_args or {}), self.readonly)
        self._pool = pool_class(self._adapter, name=f"{self._kind} {self.name!r} "
                                                    f"({self.url.censored()})", **options)

    #: How the pool's messages name the engine.
    _kind = "engine"

    def __repr__(self) -> str:
        state = " closed" if self._pool.closed else ""
        return f"<fastsess.{type(self).__name__} {self.name!r} {self.url.censored()}{state}>"

    # RESTAlchemy reads these off the engine.
    @property
    def dialect_name(self) -> str:
        return self._adapter.dialect

    @property
    def db_name(self) -> str:
        return self.url.database

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def get_session_storage(self):
        return self._storage

    def pool_stats(self) -> dict:
        """size, idle, in_use, waiting, checkouts, timeouts and other counters."""
        return self._pool.stats()


class Engine(BaseEngine):
    """Connects sessions to one database.  Create with ``create_engine``."""

    def __init__(self, url, *, query_cache=False, readonly=False, connect_args=None,
                 name=None, **options):
        super().__init__(url, query_cache, readonly, connect_args, name, options,
                         self._pool_class)
        self._storage = SessionThreadStorage()
        self._borrowed = {}  # id(raw) -> PooledConnection, for get_connection()
        self._borrowed_lock = threading.Lock()
        if self._pool.min_size:
            self._pool.prefill()

    #: The pool's class (a hook for integrations).
    _pool_class = Pool

    def _make_adapter(self, url, connect_args, readonly):
        """The driver adapter this engine's pool connects through.  A hook
        for subclasses (integrations) that configure each new connection;
        called once, before the pool exists."""
        return get_adapter(url, connect_args, readonly)

    def get_session(self) -> Session:
        """A new session (it takes a connection on its first statement)."""
        if self._pool._closed:
            raise EngineClosed(f"{self!r} is closed")
        return Session(self)

    def session_manager(self, session=None) -> session_manager:
        """See ``fastsess.session_manager``."""
        return session_manager(self, session)

    def get_connection(self):
        """Borrow a raw driver connection; give it back with ``close_connection``."""
        pc = self._pool.checkout()
        with self._borrowed_lock:
            self._borrowed[id(pc.raw)] = pc
        return pc.raw

    def close_connection(self, conn) -> None:
        """Give back a connection from ``get_connection()``; autocommit is
        switched off again (a connection that cannot be restored is
        discarded)."""
        with self._borrowed_lock:
            pc = self._borrowed.pop(id(conn), None)
        if pc is None:
            raise ValueError("this connection was not borrowed from this engine")
        try:
            self._adapter.restore_defaults(conn)
        except Exception:
            pc.broken = True  # the pool discards it
        self._pool.checkin(pc, None)

    def close(self) -> None:
        """Close the pool: idle connections now, borrowed ones when returned.
        Idempotent."""
        self._pool.close()


def create_engine(url, **options) -> Engine:
    """An engine for a ``postgresql://`` or ``mysql://`` URL.

    Options: ``max_size`` (alias ``pool_size``), ``min_size``, ``timeout``,
    ``max_waiting``, ``max_idle``, ``max_lifetime`` (pool); ``query_cache``;
    ``readonly``; ``connect_args`` (passed to the driver's connect).
    """
    return Engine(url, **options)


class AsyncEngine(BaseEngine):
    """Connects async sessions to one database: ``create_async_engine``.

    PostgreSQL through psycopg's ``AsyncConnection``, MySQL/MariaDB through
    asyncmy; the same options as ``Engine``.  Its pool serves the event loop
    that first uses it; ``await engine.close()``.  The session a scope makes
    current belongs to the task that opened it (``fastsess.current``).
    """

    def __init__(self, url, *, query_cache=False, readonly=False, connect_args=None,
                 name=None, **options):
        super().__init__(url, query_cache, readonly, connect_args, name, options, AsyncPool)
        self._storage = SessionContextStorage()

    _kind = "async engine"

    def _make_adapter(self, url, connect_args, readonly):
        return get_async_adapter(url, connect_args, readonly)

    def get_session(self) -> AsyncSession:
        """A new async session (it takes a connection on its first statement)."""
        if self._pool._closed:
            raise EngineClosed(f"{self!r} is closed")
        return AsyncSession(self)

    def session_manager(self, session=None) -> async_session_manager:
        """``async with engine.session_manager() as session:`` (see
        ``fastsess.session_manager``)."""
        return async_session_manager(self, session)

    async def open(self) -> None:
        """Open ``min_size`` connections now (otherwise they open as needed)."""
        await self._pool.prefill()

    async def close(self) -> None:
        """Close the pool: idle connections now, in-use ones when returned.
        Idempotent."""
        self._pool.close_now()
        await self._adapter.settle()


def create_async_engine(url, **options) -> AsyncEngine:
    """An async engine for a ``postgresql://`` or ``mysql://`` URL, with the
    options of ``create_engine``."""
    return AsyncEngine(url, **options)
