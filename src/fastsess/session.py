"""Sessions: one connection, checked out lazily, one transaction at a time.

A session is used by one thread (or task) at a time.  It takes a connection
from its engine's pool on the first statement, not before, and gives it back
on ``close()``; a closed session may be used again in the thread that opened
it and then takes a fresh connection.
"""

from __future__ import annotations

import logging
import threading
from time import perf_counter as _clock

from . import _impl, counters
from . import config as _config
from .cache import SessionQueryCache
from .errors import (ConnectionLost, CommitOutcomeUnknown, EngineClosed, SessionClosed,
                     TransactionAborted)
from .result import Result

LOG = logging.getLogger("fastsess.session")
#: Every statement a session runs, at DEBUG (parameter values redacted
#: unless ``configure_session(log_parameters=True)``).
STATEMENT_LOG = logging.getLogger("fastsess.statements")

_build_insert = _impl.build_insert
_build_delete = _impl.build_delete
_dollar_params = _impl.dollar_params
_get_ident = threading.get_ident
_statements_debug = STATEMENT_LOG.isEnabledFor
_DEBUG = logging.DEBUG
_next = next
_opened = counters.sessions_opened
_closed = counters.sessions_closed
_commits = counters.commits
_rollbacks = counters.rollbacks
_failures = counters.failures
#: Set by fastsess.monitoring while monitoring or leak tracking is on: gets
#: told of sessions opened and collected unclosed, and of commit/rollback times.
_monitor = None


class _Reconnect(BaseException):
    """Raised inside a session's first statement on a connection that turned
    out dead: ``Session._first_statement`` runs the statement again."""


class Session:
    """A unit of work on one pooled connection (see the module docstring)."""

    __slots__ = ("_engine", "_pool", "_adapter", "_driver_error", "_pc", "_raw", "_dirty",
                 "_closed", "_thread", "_cache", "_tx", "_error", "_fresh", "_log",
                 "__weakref__")

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
        # Atomic blocks' savepoints and on_commit callbacks
        # (fastsess.transaction.Transaction), or None.
        self._tx = None
        # The last driver error since the transaction began: commit() asks
        # the adapter whether it aborted the transaction.
        self._error = None
        # True while the first statement on a new connection runs: if the
        # connection turns out dead, nothing of this session reached the
        # server and the statement may run again on another.
        self._fresh = False
        # Whether statements are logged: STATEMENT_LOG's DEBUG, read at each
        # checkout so a disabled log costs one attribute test per statement.
        # Assigned last: __del__ takes its presence for "__init__ finished".
        self._log = False
        _next(_opened)
        if _monitor is not None:
            _monitor.opened(self)

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
            _next(_opened)
            if _monitor is not None:
                _monitor.opened(self)
        try:
            pc = self._pool.checkout()
        except EngineClosed:
            raise SessionClosed(f"the engine of this session ({self._engine.url.censored()}) "
                                "is closed") from None
        self._pc = pc
        self._raw = pc.raw
        self._log = _statements_debug(_DEBUG)
        return pc.raw

    def _first_statement(self, run, *args):
        """``run(self, *args)`` (a statement method) on a connection checked
        out for it.

        The pool hands out no connection whose socket shows the server closed
        it, but one can still die between the checkout and the first
        statement (killed in that instant, a proxy or firewall that dropped
        it without a word).  Then nothing of this session's work has reached
        the server, so the statement runs once more on another connection.
        Only the first statement on a connection: after one succeeded, the
        transaction (or session state, such as a lock or a SET) it began
        would be lost, so a later loss is the caller's ``ConnectionLost``.
        """
        self._checkout()
        self._fresh = True
        try:
            return run(self, *args)
        except _Reconnect:
            pass
        finally:
            self._fresh = False
        self._checkout()
        return run(self, *args)

    def _fail(self, exc, during_commit=False, params=None):
        """Translate a driver error; a connection that broke is discarded.
        ``params``: the failed statement's parameters, for a parameter error
        to name its parameter."""
        if params is None:
            err = self._adapter.translate(exc)
        else:
            err = self._adapter.translate(exc, params=params)
        pc = self._pc
        if pc is not None and (isinstance(err, ConnectionLost) or not self._adapter.usable(pc.raw)):
            pc.broken = True
            if self._fresh:  # see _first_statement
                self._fresh = False
                self._pc = self._raw = None
                self._dirty = False
                self._error = None
                self._pool.checkin(pc, False)  # broken: closed, not kept
                self._pool.count_reconnect()
                LOG.info("connection found dead at its first statement (%s); running it "
                         "again on another", err)
                return _Reconnect()
            if during_commit:
                err = CommitOutcomeUnknown(
                    f"the connection was lost during COMMIT; the transaction may or may not "
                    f"have been committed: {err}", orig=exc, sqlstate=err.sqlstate, errno=err.errno)
            elif not isinstance(err, ConnectionLost):
                err = ConnectionLost(str(err), orig=exc, sqlstate=err.sqlstate, errno=err.errno)
        if self._tx is not None:
            self._tx.on_error(self, err)  # an error that ended the transaction dooms its atomic blocks
        self._error = err
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
            return self._first_statement(_EXECUTE, statement, params)
        cache = self._cache
        if cache is not None and cache._entries:
            cache._on_statement(statement)
        self._dirty = True
        if self._log:
            _log_statement(statement, params)
        try:
            cursor = raw.cursor()
            cursor.execute(statement, params)
        except self._driver_error as e:
            raise self._fail(e, params=params) from e
        except BaseException as e:
            _interrupted(self, e)
            raise
        return Result(cursor, self._adapter)

    def execute_many(self, statement, seq_of_params):
        """Run one statement once per parameter set (the driver's executemany)."""
        return self._write(statement, seq_of_params, many=True)

    def _write(self, statement, params, many=False):
        """Run a statement that writes (``execute_many``, the batch builders'
        statements): the query cache is emptied first.  A built statement
        (only ``%s`` placeholders, ``%%`` for a percent) runs with the
        database's own placeholders where the adapter has a cursor for them,
        so that the driver does not parse it again."""
        raw = self._raw
        if raw is None:
            return self._first_statement(_WRITE, statement, params, many)
        if self._cache is not None:
            self._cache.clear()
        self._dirty = True
        if self._log:
            _log_statement(statement, params, many=many)
        positional = self._adapter.positional_cursor
        try:
            if many:
                cursor = raw.cursor()
                cursor.executemany(statement, params)
            elif positional is not None and params is not None:
                cursor = positional(raw)
                cursor.execute(_dollar_params(statement), params)
            else:
                cursor = raw.cursor()
                cursor.execute(statement, params)
        except self._driver_error as e:
            raise self._fail(e, params=None if many else params) from e
        except BaseException as e:
            _interrupted(self, e)
            raise
        return Result(cursor, self._adapter)

    def commit(self) -> None:
        tx = self._tx
        if tx is not None:
            tx.before_commit()  # refuses inside an atomic block, or an aborted transaction
        raw = self._raw
        if raw is not None:
            if self._error is not None and self._adapter.aborted(raw, self._error):
                self._refuse_commit()
            monitor = _monitor
            if monitor is not None:
                started = _clock()
            # Always ask the driver, even when nothing ran through execute():
            # work done on connection() is invisible to the session.
            try:
                raw.commit()
            except self._driver_error as e:
                if self._dirty:
                    _next(_failures)
                err = self._fail(e, during_commit=True)
                if tx is not None:
                    tx.after_commit(self, False)
                raise err from e
            if monitor is not None:
                monitor.commit_latency(_clock() - started)
            self._error = None
            if self._dirty:
                _next(_commits)
                self._dirty = False
        if tx is not None:
            tx.after_commit(self, True)  # runs the on_commit callbacks

    def _refuse_commit(self):
        """An earlier error, caught by the caller, aborted the transaction: a
        COMMIT would not commit its work (PostgreSQL would even report
        success).  Roll back and raise TransactionAborted instead."""
        cause = self._error
        self.rollback()
        raise TransactionAborted(
            f"the transaction cannot commit: an earlier error aborted it and was caught: "
            f"{type(cause).__name__}: {cause}; it has been rolled back", cause) from cause

    def rollback(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        raw = self._raw
        if raw is not None and self._pc.broken:
            # The connection is gone and its transaction with it: there is
            # nothing to roll back, and the error that broke it is the news.
            self._error = None
            self._dirty = False
        elif raw is not None:
            monitor = _monitor
            if monitor is not None:
                started = _clock()
            try:
                raw.rollback()
            except self._driver_error as e:
                err = self._fail(e)
                if self._tx is not None:
                    self._tx.on_rollback(self)
                raise err from e
            if monitor is not None:
                monitor.rollback_latency(_clock() - started)
            self._error = None
            if self._dirty:
                _next(_rollbacks)
                self._dirty = False
        if self._tx is not None:
            self._tx.on_rollback(self)  # drops the on_commit callbacks

    def close(self) -> None:
        """Give the connection back (rolled back if a transaction is open).
        Idempotent."""
        pc = self._pc
        if pc is not None:
            self._pc = self._raw = None
            dirty = self._dirty
            self._dirty = False
            self._error = None
            self._pool.checkin(pc, dirty)
        if self._cache is not None:
            self._cache.clear()
        if self._tx is not None:
            self._tx.on_close(self)
        if not self._closed:
            self._closed = True
            _next(_closed)

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
            self._log  # noqa: B018 - assigned last in __init__
        except AttributeError:  # __init__ did not finish
            return
        if not self._closed:  # its lifetime ends here, without close()
            _next(_closed)
            if _monitor is not None:
                _monitor.collected_open(self)
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
            return self._write(statement, params).rowcount
        self.execute("SAVEPOINT fastsess_batch")
        total = 0
        try:
            for statement, params in chunks:
                total += self._write(statement, params).rowcount
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
        raw = self._raw
        if raw is None:
            return self._first_statement(_INSERT_VALUES, table, columns, values)
        adapter = self._adapter
        if adapter.copy_min_rows and len(values) >= adapter.copy_min_rows:
            if self._cache is not None:
                self._cache.clear()
            self._dirty = True
            if self._log:
                _log_statement(f"COPY {table} ({', '.join(columns)}) FROM STDIN", values, many=True)
            try:
                return adapter.copy_insert(raw, table, columns, values)
            except adapter.CopyRefused:
                pass  # a value COPY would store differently: INSERT it instead
            except self._driver_error as e:
                raise self._fail(e) from e
            except BaseException as e:
                _interrupted(self, e)
                raise
        if adapter.builds_literals:
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


def _interrupted(session, exc) -> None:
    """A statement was interrupted by something other than an error of its
    own (KeyboardInterrupt, SystemExit, a timeout raised from a signal
    handler): what the connection was in the middle of is unknown, so it is
    never handed to anyone again."""
    if not isinstance(exc, Exception) and session._pc is not None:
        session._pc.broken = True


# The statement methods as defined here, for _first_statement: a subclass's
# override (the drop-in's MySQL execute() rewrites the statement) or a
# wrapper set on the class must not run a second time for the same call.
_EXECUTE = Session.execute
_WRITE = Session._write
_INSERT_VALUES = Session._insert_values


def _log_statement(statement, params, many=False) -> None:
    """Log one statement on STATEMENT_LOG (its DEBUG is known to be on).

    Parameter values are shown only with ``configure_session(log_parameters=True)``;
    otherwise only their number.  Statements that carry their values as
    literals (bytes: the MySQL batch INSERTs built client-side) are cut
    after ``VALUES`` for the same reason.
    """
    show = _config.settings.log_parameters
    if type(statement) is not str:
        text = bytes(statement).decode("utf-8", "replace")
        if not show:
            at = text.upper().find(" VALUES")
            if at >= 0:
                text = f"{text[:at + 7]} <{len(text) - at - 7} characters of values redacted>"
        statement = text
    if params is None:
        STATEMENT_LOG.debug("%s", statement)
    elif show:
        STATEMENT_LOG.debug("%s  -- parameters: %r", statement, params)
    else:
        try:
            n = len(params)
        except TypeError:  # an iterator (execute_many accepts one)
            n = "?"
        what = ("rows" if n != 1 else "row") if many else ("values" if n != 1 else "value")
        STATEMENT_LOG.debug("%s  -- parameters redacted: %s %s", statement, n, what)


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

