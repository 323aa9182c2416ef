"""Driver adapters: everything that differs between PostgreSQL and MySQL.

An adapter (``base.DriverAdapter``) connects, tells whether an idle
connection is still usable without a round trip, resets a returned one,
knows its dialect's statement limits and batch strategy, and translates its
driver's exceptions into ``fastsess.errors``.  Only the modules of this
package import a driver, each its own, when an engine for its database is
made: a MySQL-only user needs no psycopg and the other way round.
"""

from __future__ import annotations

from .base import BatchPlan, DriverAdapter


def get_adapter(url, connect_args: dict, readonly: bool = False) -> DriverAdapter:
    """The adapter for ``url``'s database (``fastsess.url.DatabaseURL``)."""
    if url.dialect == "postgresql":
        from .postgresql import PostgreSQLAdapter as cls
    else:
        from .mysql import MySQLAdapter as cls
    return cls(url, connect_args, readonly)


def get_async_adapter(url, connect_args: dict, readonly: bool = False) -> DriverAdapter:
    """The async adapter for ``url``'s database: psycopg's AsyncConnection,
    or asyncmy."""
    if url.dialect == "postgresql":
        from .postgresql import AsyncPostgreSQLAdapter as cls
    else:
        from .mysql_async import AsyncMySQLAdapter as cls
    return cls(url, connect_args, readonly)


__all__ = ["BatchPlan", "DriverAdapter", "get_adapter", "get_async_adapter"]
