"""Sessions: one connection, checked out lazily, one transaction at a time.

A session is used by one thread (or task) at a time.  It takes a connection
from its engine's pool on the first statement, not before, and gives it back
on ``close()``; a closed session may be used again in the thread that opened
it and then takes a fresh connection.
"""

from __future__ import annotations

import logging
import threading

from . import _impl
from .cache import SessionQueryCache
from .errors import ConnectionLost, CommitOutcomeUnknown, EngineClosed, SessionClosed
from .result import Result

LOG = logging.getLogger("fastsess.session")

_build_insert = _impl.build_insert
_build_delete = _impl.build_delete
_get_ident = threading.get_ident


class Session:
    """A unit of work on one pooled connection (see the module docstring)."""

    __slots__ = ("_engine", "_pool", "_adapter", "_driver_error", "_pc", "_raw", "_dirty",
                 "_closed", "_thread", "_cache", "__weakref__")

    def __init__(self, engine):
        self._engine = engine
        self._pool = engine._pool
        self._adapter = engine._adapter
        self._driver_error = engine._adapter.Error
        self._pc = None
        self._raw = None
        # True once a statement ran since the last commit/rollback: the
        # connection then carries a transaction that close() must end.
        self._dirty = False
        self._closed = False
        self._thread = _get_ident()
        self._cache = None  # made on first use: most sessions never touch it

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("active" if self._pc is not None else "idle")
        return f"<fastsess.Session {state} on {self._engine.url.censored()}>"

    @property
    def engine(self):
        return self._engine

    @property
    def cache(self) -> SessionQueryCache:
        """The per-session query cache."""
        cache = self._cache
        if cache is None:
            cache = self._cache = SessionQueryCache(self)
        return cache

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_connection(self) -> bool:
        """Whether a pooled connection is checked out right now."""
        return self._pc is not None

    # -- connection ----------------------------------------------------------

    def _checkout(self):
        if self._closed:
            if _get_ident() != self._thread:
                raise SessionClosed(
                    "this session was closed; only the thread that opened it may use it again")
            if self._pool.closed:
                raise SessionClosed("this session was closed and its engine is closed; "
                                    "it cannot take a new connection")
            self._closed = False
        try:
            pc = self._pool.checkout()
        except EngineClosed:
            raise SessionClosed(f"the engine of this session ({self._engine.url.censored()}) "
                                "is closed") from None
        self._pc = pc
        self._raw = pc.raw
        return pc.raw

    def _fail(self, exc, during_commit=False):
        """Translate a driver error; a connection that broke is discarded."""
        err = self._adapter.translate(exc)
        pc = self._pc
        if pc is not None and (isinstance(err, ConnectionLost) or not self._adapter.usable(pc.raw)):
            pc.broken = True
            if during_commit:
                err = CommitOutcomeUnknown(
                    f"the connection was lost during COMMIT; the transaction may or may not "
                    f"have been committed: {err}", orig=exc, sqlstate=err.sqlstate, errno=err.errno)
            elif not isinstance(err, ConnectionLost):
                err = ConnectionLost(str(err), orig=exc, sqlstate=err.sqlstate, errno=err.errno)
        return err

    def connection(self):
        """The driver connection this session uses (checked out if needed).
        Whatever runs on it counts as this session's transaction."""
        self._dirty = True  # the session cannot see what runs on it
        return self._raw if self._raw is not None else self._checkout()

    # -- statements ----------------------------------------------------------

    def execute(self, statement, params=None):
        """Run one statement.  ``%s`` placeholders; with params, ``%%`` is a
        literal percent.  Returns a ``Result`` whose rows are dicts."""
        raw = self._raw
        if raw is None:
            raw = self._checkout()
        cache = self._cache
        if cache is not None and cache._entries:
            cache._on_statement(statement)
        self._dirty = True
        try:
            cursor = raw.cursor()
            cursor.execute(statement, params)
        except self._driver_error as e:
            raise self._fail(e) from e
        return Result(cursor, self._adapter)

    def execute_many(self, statement, seq_of_params):
        """Run one statement once per parameter set (the driver's executemany)."""
        raw = self._raw
        if raw is None:
            raw = self._checkout()
        if self._cache is not None:
            self._cache.clear()
        self._dirty = True
        try:
            cursor = raw.cursor()
            cursor.executemany(statement, seq_of_params)
        except self._driver_error as e:
            raise self._fail(e) from e
        return Result(cursor, self._adapter)

    def commit(self) -> None:
        raw = self._raw
        if raw is None:
            return
        # Always ask the driver, even when nothing ran through execute():
        # work done on connection() is invisible to the session.
        try:
            raw.commit()
        except self._driver_error as e:
            raise self._fail(e, during_commit=True) from e
        self._dirty = False

    def rollback(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        raw = self._raw
        if raw is None:
            return
        try:
            raw.rollback()
        except self._driver_error as e:
            raise self._fail(e) from e
        self._dirty = False

    def close(self) -> None:
        """Give the connection back (rolled back if a transaction is open).
        Idempotent."""
        pc = self._pc
        if pc is not None:
            self._pc = self._raw = None
            dirty = self._dirty
            self._dirty = False
            self._pool.checkin(pc, dirty)
        if self._cache is not None:
            self._cache.clear()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def __del__(self):
        # A session dropped without close() must not keep its pool slot: hand
        # the connection back through the pool's orphan queue (taking the
        # pool's lock here could deadlock if the collector runs inside it).
        try:
            pc = self._pc
        except AttributeError:  # __init__ did not finish
            return
        if pc is not None:
            self._pc = self._raw = None
            try:
                self._pool.release_orphan(pc, self._dirty)
            except Exception:
                pass

    # -- batch operations ----------------------------------------------------

    def _run_chunks(self, chunks) -> int:
        """Run built statements; several chunks run inside a savepoint so a
        failure leaves none of them applied (one chunk is atomic by itself)."""
        if not chunks:
            return 0
        if len(chunks) == 1:
            statement, params = chunks[0]
            return self.execute(statement, params).rowcount
        self.execute("SAVEPOINT fastsess_batch")
        total = 0
        try:
            for statement, params in chunks:
                total += self.execute(statement, params).rowcount
        except BaseException:
            if self._pc is not None and not self._pc.broken:
                try:
                    self.execute("ROLLBACK TO SAVEPOINT fastsess_batch")
                    self.execute("RELEASE SAVEPOINT fastsess_batch")
                except Exception:
                    # A deadlock already rolled the whole transaction back
                    # (and the savepoint with it): the first error is the news.
                    pass
            raise
        self.execute("RELEASE SAVEPOINT fastsess_batch")
        return total

    def _limits(self, table, columns, composite_keys=False):
        """Statement limits for a batch, after checking its identifiers: a bad
        name fails before anything (even the limit query) is sent."""
        dialect = self._adapter.dialect
        _impl.quote_table(dialect, table)
        for column in columns:
            _impl.quote_identifier(dialect, column)
        max_params = self._adapter.max_params
        if composite_keys and self._adapter.max_row_keys:
            max_params = min(max_params, self._adapter.max_row_keys * len(columns))
        return max_params, self._adapter.max_statement_bytes(self)

    def insert_rows(self, table: str, rows, columns=None) -> int:
        """Insert plain rows with multi-row INSERTs (one per chunk).

        ``rows`` are dicts (``columns`` defaults to the first dict's keys and
        every dict must have exactly those keys) or sequences in ``columns``
        order.  Returns the number of rows inserted; empty ``rows`` is a no-op.
        """
        columns, values = _rows_and_columns(rows, columns)
        if not values:
            return 0
        return self._insert_values(table, columns, values)

    def _insert_values(self, table, columns, values) -> int:
        """Insert value sequences: COPY where the adapter has it and the batch
        is large enough to pay for it, else multi-row INSERTs."""
        max_params, max_bytes = self._limits(table, columns)  # checks the names first
        adapter = self._adapter
        if adapter.copy_min_rows and len(values) >= adapter.copy_min_rows:
            raw = self._raw if self._raw is not None else self._checkout()
            if self._cache is not None:
                self._cache.clear()
            self._dirty = True
            try:
                return adapter.copy_insert(raw, table, columns, values)
            except adapter.CopyRefused:
                pass  # a value COPY would store differently: INSERT it instead
            except self._driver_error as e:
                raise self._fail(e) from e
        if adapter.builds_literals:
            raw = self._raw if self._raw is not None else self._checkout()
            chunks = adapter.insert_statements(raw, table, columns, values, max_bytes)
        else:
            chunks = _build_insert(adapter.dialect, table, columns, values, max_params, max_bytes)
        return self._run_chunks(chunks)

    def upsert_rows(self, table: str, rows, key_columns, update_columns=None, columns=None) -> int:
        """Insert rows, updating the existing ones on a key conflict.

        ``rows`` as for ``insert_rows``.  ``key_columns`` name the unique key
        that decides a conflict (PostgreSQL's ``ON CONFLICT`` target; MySQL
        uses whichever unique key the row collides with).  ``update_columns``
        (default: every column not in the key) take the new row's values; an
        empty list leaves existing rows untouched.  Returns the driver's row
        count: PostgreSQL counts each row inserted or updated once, MySQL
        counts an updated row twice.
        """
        if isinstance(key_columns, str):
            key_columns = [key_columns]
        columns, values = _rows_and_columns(rows, columns)
        if not values:
            return 0
        max_params, max_bytes = self._limits(table, columns)
        chunks = _impl.build_upsert(self._adapter.dialect, table, columns, values, list(key_columns),
                                    None if update_columns is None else list(update_columns),
                                    max_params, max_bytes)
        return self._run_chunks(chunks)

    def delete_rows(self, table: str, keys, key_columns) -> int:
        """Delete rows by primary key: ``keys`` are dicts, tuples (composite
        keys, in ``key_columns`` order) or scalars (one key column).
        Returns the number of rows deleted; empty ``keys`` is a no-op."""
        if isinstance(key_columns, str):
            key_columns = [key_columns]
        key_columns = list(key_columns)
        keys = list(keys)
        if not keys:
            return 0
        values = []
        for i, key in enumerate(keys):
            if isinstance(key, dict):
                try:
                    values.append([key[c] for c in key_columns])
                except KeyError as e:
                    raise ValueError(f"key {i} lacks the key column {e.args[0]!r}") from None
            elif isinstance(key, (tuple, list)):
                values.append(key)
            else:
                values.append((key,))
        max_params, max_bytes = self._limits(table, key_columns, len(key_columns) > 1)
        chunks = _build_delete(self._adapter.dialect, table, key_columns, values, max_params,
                               max_bytes)
        return self._run_chunks(chunks)

    def batch_insert(self, models) -> int:
        """Insert RESTAlchemy-style models (``get_table()``,
        ``get_storable_snapshot()``) of one type, one multi-row INSERT per chunk."""
        models = list(models)
        if not models:
            return 0
        table = _check_models(models)
        columns = None
        values = []
        for i, model in enumerate(models):
            snapshot = model.get_storable_snapshot()
            if columns is None:
                columns = list(snapshot)
                wanted = snapshot.keys()
            elif snapshot.keys() != wanted:
                raise ValueError(f"model {i} stores other columns than the first model")
            values.append([snapshot[c] for c in columns])
        return self._insert_values(table, columns, values)

    def batch_delete(self, models) -> int:
        """Delete RESTAlchemy-style models of one type by their primary key
        (``get_id_properties()``; single and composite keys)."""
        models = list(models)
        if not models:
            return 0
        table = _check_models(models)
        key_columns = list(models[0].get_id_properties())
        if not key_columns:
            raise ValueError(f"{type(models[0]).__name__} has no primary key; cannot delete by key")
        values = []
        for model in models:
            snapshot = model.get_storable_snapshot()
            values.append([snapshot[c] for c in key_columns])
        max_params, max_bytes = self._limits(table, key_columns, len(key_columns) > 1)
        chunks = _build_delete(self._adapter.dialect, table, key_columns, values, max_params,
                               max_bytes)
        return self._run_chunks(chunks)


def _rows_and_columns(rows, columns):
    """(columns, value sequences) of plain rows: dicts with the same keys, or
    sequences in ``columns`` order."""
    rows = list(rows)
    if not rows:
        return columns, []
    if isinstance(rows[0], dict):
        if columns is None:
            columns = list(rows[0])
        columns = list(columns)
        wanted = set(columns)
        values = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or row.keys() != wanted:
                raise ValueError(f"row {i} does not have exactly the columns {columns}")
            values.append([row[c] for c in columns])
        return columns, values
    if columns is None:
        raise TypeError("columns are required when rows are sequences")
    return list(columns), rows


def _check_models(models) -> str:
    """The table name of ``models``, after checking they are all of one type."""
    model_type = type(models[0])
    for model in models:
        if type(model) is not model_type:
            raise TypeError(
                f"all models must be of one type: got {type(model).__name__} "
                f"among {model_type.__name__}")
    table = models[0].get_table()
    name = table if isinstance(table, str) else getattr(table, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"{model_type.__name__}.get_table() must give a table name or an "
                        f"object with a .name, got {type(table).__name__}")
    return name

