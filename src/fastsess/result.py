"""The cursor-like result of ``Session.execute``: rows come out as dicts."""

from __future__ import annotations

from collections import deque

from . import _impl
from .errors import ProgrammingError

_rows_to_dicts = _impl.rows_to_dicts
_row_to_dict = _impl.row_to_dict
# Rows fetched and turned into dicts at a time when a result is iterated.
_ITER_CHUNK = 128


class Result:
    """Rows of one statement as fresh dicts keyed by column label.

    Column names are made once per result.  With duplicate column labels the
    last column's value wins (``dict(zip(names, row))``); alias columns in SQL
    to keep both.  ``fetch*`` on a statement that returned no result set
    (an INSERT, say) raises ``ProgrammingError``.  Iteration fetches rows in
    chunks; rows a suspended or abandoned iteration fetched but did not yield
    come first from the next ``fetch*`` call, so any mix of iteration and
    ``fetch*`` sees every row once, in order.

    A session runs its statements on one reused driver cursor (a psycopg
    cursor costs more to make than a short statement costs to run).  When
    the next statement needs that cursor, the session detaches this result
    from it: the rows not fetched yet, ``rowcount``, ``lastrowid`` and
    ``description`` are copied onto the result (``_detach``), so a result
    stays readable, and unchanged, after later statements.
    """

    __slots__ = ("_cursor", "_names", "_adapter", "_pending")

    def __init__(self, cursor, adapter):
        self._cursor = cursor
        self._names = None
        self._adapter = adapter
        self._pending = None  # deque of dict rows iteration fetched, not yielded

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
        rows = _rows_to_dicts(names, self._cursor.fetchall())
        if self._pending:
            rows[:0] = self._pending
            self._pending.clear()
        return rows

    def fetchone(self):
        names = self._column_names()
        if self._pending:
            return self._pending.popleft()
        row = self._cursor.fetchone()
        return None if row is None else _row_to_dict(names, row)

    def fetchmany(self, size: int | None = None) -> list:
        names = self._column_names()
        if size is None:
            size = self._cursor.arraysize
        pending = self._pending
        if not pending:
            return _rows_to_dicts(names, self._cursor.fetchmany(size))
        out = [pending.popleft() for _ in range(min(size, len(pending)))]
        if len(out) < size:
            out += _rows_to_dicts(names, self._cursor.fetchmany(size - len(out)))
        return out

    def __iter__(self):
        # Chunks through the row kernel: a driver fetchone() and a dict per
        # row cost several times more per row (RESTAlchemy's ORM iterates).
        # The cursor is looked up per chunk: a statement run inside the loop
        # detaches this result from the session's cursor.
        names = self._column_names()
        while True:
            pending = self._pending
            if not pending:
                rows = self._cursor.fetchmany(_ITER_CHUNK)
                if not rows:
                    return
                pending = self._pending = deque(_rows_to_dicts(names, rows))
            yield pending.popleft()

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
        """Drop the rows not fetched yet (the cursor may be the session's,
        which goes on serving it)."""
        self._detach(keep_rows=False)
        self._cursor.clear()
        if self._pending:
            self._pending.clear()

    def _detach(self, keep_rows=True) -> None:
        """Copy what is left to read off the driver cursor, which the
        session is about to run another statement on."""
        cursor = self._cursor
        if type(cursor) is BufferedRows:  # detached already (closed)
            return
        names = self._names
        if names is None:
            names = self._adapter.column_names(cursor)
            if names is None:  # no result set: fetch* keeps raising ProgrammingError
                self._adapter = _NO_RESULT_SET
            self._names = names
        rows = cursor.fetchall() if names is not None and keep_rows else None
        self._cursor = BufferedRows(rows, cursor, self._adapter)


class _NoResultSet:
    """The adapter of a detached result whose statement returned no rows."""

    __slots__ = ()

    @staticmethod
    def column_names(cursor):
        return None

    @staticmethod
    def description_of(cursor):
        return None


_NO_RESULT_SET = _NoResultSet()


class BufferedRows:
    """Rows already fetched, with a cursor's API: what a detached result
    reads, and what async sessions fetch with each statement.  ``rowcount``,
    ``lastrowid`` and ``description`` are the cursor's when it was made
    (``description`` as ``adapter.description_of`` keeps it)."""

    __slots__ = ("_rows", "_at", "rowcount", "lastrowid", "_description", "arraysize")

    def __init__(self, rows, cursor, adapter):
        self._rows = rows if rows is not None else []
        self._at = 0
        self.rowcount = cursor.rowcount
        self.lastrowid = getattr(cursor, "lastrowid", None)
        self._description = adapter.description_of(cursor)
        self.arraysize = 1

    @property
    def description(self):
        description = self._description
        if callable(description):
            description = self._description = description()
        return description

    def fetchall(self):
        rows, at = self._rows, self._at
        self._at = len(rows)
        return rows[at:] if at else rows

    def fetchone(self):
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size):
        rows = self._rows[self._at:self._at + size]
        self._at += len(rows)
        return rows

    def clear(self) -> None:
        self._rows = []
        self._at = 0

    def close(self) -> None:
        pass
