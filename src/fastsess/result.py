"""The cursor-like result of ``Session.execute``: rows come out as dicts."""

from __future__ import annotations

from . import _impl
from .errors import ProgrammingError

_rows_to_dicts = _impl.rows_to_dicts
_row_to_dict = _impl.row_to_dict


class Result:
    """Rows of one statement as fresh dicts keyed by column label.

    Column names are made once per result.  With duplicate column labels the
    last column's value wins (``dict(zip(names, row))``); alias columns in SQL
    to keep both.  ``fetch*`` on a statement that returned no result set
    (an INSERT, say) raises ``ProgrammingError``.
    """

    __slots__ = ("_cursor", "_names", "_adapter")

    def __init__(self, cursor, adapter):
        self._cursor = cursor
        self._names = None
        self._adapter = adapter

    def _column_names(self):
        names = self._names
        if names is None:
            names = self._adapter.column_names(self._cursor)
            if names is None:
                raise ProgrammingError("the statement returned no rows to fetch")
            self._names = names
        return names

    def fetchall(self) -> list:
        names = self._names or self._column_names()
        return _rows_to_dicts(names, self._cursor.fetchall())

    def fetchone(self):
        names = self._column_names()
        row = self._cursor.fetchone()
        return None if row is None else _row_to_dict(names, row)

    def fetchmany(self, size: int | None = None) -> list:
        names = self._column_names()
        rows = self._cursor.fetchmany(size) if size is not None else self._cursor.fetchmany()
        return _rows_to_dicts(names, rows)

    def __iter__(self):
        names = self._column_names()
        fetchone = self._cursor.fetchone
        while True:
            row = fetchone()
            if row is None:
                return
            yield _row_to_dict(names, row)

    def keys(self) -> list:
        """The column labels, in order."""
        return list(self._column_names())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self):
        """The AUTO_INCREMENT id of the row inserted (MySQL); None on
        PostgreSQL, where ``INSERT ... RETURNING`` says it instead."""
        return getattr(self._cursor, "lastrowid", None) or None

    @property
    def description(self):
        return self._cursor.description

    def close(self) -> None:
        self._cursor.close()
