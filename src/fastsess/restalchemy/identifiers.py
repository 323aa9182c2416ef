"""Table and column names in the SQL RESTAlchemy builds, checked on drop-in engines.

RESTAlchemy writes identifiers into its statements' text in two ways: column
names (and, in its query builder, table names and aliases) through
``engine.escape(name)``, which wraps the name in the dialect's quote
character without looking inside it; and the table name of its insert,
update, delete, count and select commands straight into a quoted template
(``INSERT INTO "%s" ...``).  A name that carries the quote character closes
the quotes, and the rest of it runs as SQL: a model whose table is named
``victim" (id) SELECT 42 ... --`` inserts into ``victim``.

This module holds what a drop-in engine uses instead:

- ``quote(dialect, name)``, the engine's ``escape``: fastsess's batch
  builder's rule (``fastsess._impl.quote_identifier``: no empty name, NUL,
  quote character or over-long name), raising ``InvalidIdentifier``;
- ``PgSQLDialect`` and ``MySQLDialect``, the stock dialects with the table
  name of every command they build checked by the same rule.

A name the rule accepts is quoted exactly as stock RESTAlchemy quotes it, so
ordinary models get byte-identical statements.  A table name is checked as
one identifier, as RESTAlchemy quotes it: ``"a.b"`` is one name there, not
a schema and a table.
"""

from __future__ import annotations

from restalchemy.storage import exceptions as ra_storage_exc
from restalchemy.storage.sql.dialect import mysql as ra_mysql
from restalchemy.storage.sql.dialect import pgsql as ra_pgsql

from .._impl import quote_identifier

__all__ = ["InvalidIdentifier", "quote", "PgSQLDialect", "MySQLDialect"]


class InvalidIdentifier(ra_storage_exc.UnknownStorageException, ValueError):
    """A table or column name that cannot be put into SQL safely.

    A ``ValueError``, as fastsess's batch builder raises for the same name,
    and the ``UnknownStorageException`` RESTAlchemy's model methods turn any
    other failure into, so it reaches their callers as it is.  ``identifier``
    is the name; ``caused`` the builder's ``ValueError``.
    """

    message = "%(caused)s (refused before any SQL was sent)"

    def __init__(self, identifier, caused):
        self.identifier = identifier
        super().__init__(caused=caused)


def quote(dialect: str, name) -> str:
    """``name`` as one quoted identifier of ``dialect``, or ``InvalidIdentifier``."""
    try:
        return quote_identifier(dialect, name)
    except ValueError as e:
        raise InvalidIdentifier(name, e) from e


class _CheckedTables:
    """Checks the table name of every command the dialect builds.

    The commands splice ``table.name`` into their statement unescaped;
    checking it here, where every one of them is made, covers them all.
    """

    def _check(self, table):
        quote(self.DIALECT_NAME, table.name)

    def insert(self, table, *args, **kwargs):
        self._check(table)
        return super().insert(table, *args, **kwargs)

    def update(self, table, *args, **kwargs):
        self._check(table)
        return super().update(table, *args, **kwargs)

    def delete(self, table, *args, **kwargs):
        self._check(table)
        return super().delete(table, *args, **kwargs)

    def select(self, table, *args, **kwargs):
        self._check(table)
        return super().select(table, *args, **kwargs)

    def custom_select(self, table, *args, **kwargs):
        self._check(table)
        return super().custom_select(table, *args, **kwargs)

    def count(self, table, *args, **kwargs):
        self._check(table)
        return super().count(table, *args, **kwargs)

    def orm_command(self, table, *args, **kwargs):
        # The query itself names its tables through engine.escape().
        self._check(table)
        return super().orm_command(table, *args, **kwargs)


class PgSQLDialect(_CheckedTables, ra_pgsql.PgSQLDialect):
    """RESTAlchemy's PostgreSQL dialect, table names checked."""


class MySQLDialect(_CheckedTables, ra_mysql.MySQLDialect):
    """RESTAlchemy's MySQL dialect, table names checked."""
