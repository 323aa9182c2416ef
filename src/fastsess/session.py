"""Sessions: one connection, checked out lazily, one transaction at a time;
and ``session_manager``, the RESTAlchemy scope around one.

A session is used by one thread (or task) at a time.  It takes a connection
from its engine's pool on the first statement, not before, and gives it back
on ``close()``; a closed session may be used again in the thread that opened
it and then takes a fresh connection.

``BaseSession`` holds the state and every decision that needs no I/O (error
translation, whether a commit may go ahead, what a commit, rollback or close
leaves behind); ``Session`` is the synchronous shell that talks to the
driver.  An asynchronous shell shares ``BaseSession`` and the batch methods
(``fastsess.batch``), and runs the same step generators
(``Session._run_steps``: batches, atomic blocks).
"""

from __future__ import annotations

import logging
import threading
from time import perf_counter as _clock

from . import batch, counters
from .batch import BatchWrites
from . import config as _config
from .cache import SessionQueryCache
from .current import current
from .errors import (ConnectionLost, CommitOutcomeUnknown, EngineClosed, SessionClosed,
                     TransactionAborted)
from .result import Result

LOG = logging.getLogger("fastsess.session")
#: Every statement a session runs, at DEBUG (parameter values redacted
#: unless ``configure_session(log_parameters=True)``).
STATEMENT_LOG = logging.getLogger("fastsess.statements")

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
#: What _commit_state() says when an earlier, caught error aborted the transaction.
_ABORTED = object()


class _Reconnect(BaseException):
    """Raised inside a session's first statement on a connection that turned
    out dead: ``Session._first_statement`` runs the statement again."""


class BaseSession(BatchWrites):
    """A session's state and the decisions that need no I/O, shared by the
    synchronous ``Session`` and an asynchronous twin."""

    __slots__ = ("_engine", "_pool", "_adapter", "_driver_error", "_pc", "_raw", "_cursor",
                 "_last", "_dirty", "_closed", "_thread", "_cache", "_tx", "_error", "_fresh",
                 "_log", "__weakref__")

    def __init__(self, engine):
        self._engine = engine
        self._pool = engine._pool
        self._adapter = engine._adapter
        self._driver_error = engine._adapter.Error
        self._pc = None
        self._raw = None
        # The driver cursor execute() reuses on this connection (where the
        # adapter's ``reuse_cursor`` says a cursor costs more to make than a
        # result to detach), and the result last read through it (detached
        # before the next statement).
        self._cursor = None
        self._last = None
        # True once a statement ran since the last commit/rollback: the
        # connection then carries a transaction that close() must end.
        self._dirty = False
        self._closed = False
        self._thread = _get_ident()
        self._cache = None  # made on first use: most sessions never touch it
        # Atomic blocks' savepoints and on_commit callbacks
        # (fastsess.atomic.Transaction), or None.
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
        return f"<fastsess.{type(self).__name__} {state} on {self._engine.url.censored()}>"

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

    # -- decisions -------------------------------------------------------------

    def _reopen(self) -> None:
        """Before a closed session takes a connection again."""
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

    def _engine_closed(self) -> SessionClosed:
        return SessionClosed(f"the engine of this session ({self._engine.url.censored()}) "
                             "is closed")

    def _fail(self, exc, during_commit=False, params=None):
        """Translate a driver error; a connection that broke is marked for
        discarding.  ``params``: the failed statement's parameters, for a
        parameter error to name its parameter.  On the first statement of a
        connection that turned out dead: ``_Reconnect`` (see
        ``Session._first_statement``)."""
        if params is None:
            err = self._adapter.translate(exc)
        else:
            err = self._adapter.translate(exc, params=params)
        pc = self._pc
        if pc is not None and (isinstance(err, ConnectionLost) or not self._adapter.usable(pc.raw)):
            pc.broken = True
            if self._fresh:
                self._fresh = False
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

    def _drop_connection(self):
        """Forget the (dead) connection without ending anything else: the
        pooled connection, for the shell to give back."""
        pc = self._pc
        self._pc = self._raw = self._cursor = self._last = None
        self._dirty = False
        self._error = None
        return pc

    def _interrupted(self, exc) -> None:
        """A statement was interrupted by something other than an error of
        its own (KeyboardInterrupt, SystemExit, a timeout raised from a
        signal handler, a cancelled task): what the connection was in the
        middle of is unknown, so it is never handed to anyone again."""
        if not isinstance(exc, Exception) and self._pc is not None:
            self._pc.broken = True

    def _before_write(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._dirty = True

    def _before_copy(self, table, columns, values) -> None:
        """Before a COPY (a batch plan's step): as before any write, and logged."""
        self._before_write()
        if self._log:
            _log_statement(f"COPY {table} ({', '.join(columns)}) FROM STDIN", values, many=True)

    def _write_cursor(self, raw, statement, params, many):
        """The cursor a write runs on and the statement as it runs there: a
        built statement with parameters runs as the adapter says (see
        ``Session._write``)."""
        if params is not None and not many:
            return self._adapter.write_cursor(raw, statement)
        return raw.cursor(), statement

    def _commit_state(self):
        """Before COMMIT: the driver connection to commit (None: nothing to
        commit on the server), or ``_ABORTED`` when an earlier error, caught
        by the caller, aborted the transaction.  Raises inside an atomic
        block or in a transaction its blocks doomed."""
        tx = self._tx
        if tx is None and self._error is None:
            return self._raw  # the common case
        if tx is not None:
            tx.before_commit()
        raw = self._raw
        if raw is not None and self._error is not None and self._adapter.aborted(raw, self._error):
            return _ABORTED
        return raw

    def _aborted_error(self, cause) -> TransactionAborted:
        return TransactionAborted(
            f"the transaction cannot commit: an earlier error aborted it and was caught: "
            f"{type(cause).__name__}: {cause}; it has been rolled back", cause)

    def _rollback_target(self):
        """Before ROLLBACK: the driver connection to roll back, or None when
        there is nothing to send (no connection; or a broken one, whose
        transaction is gone with it: the error that broke it is the news)."""
        if self._cache is not None:
            self._cache.clear()
        raw = self._raw
        if raw is not None and self._pc.broken:
            self._ended(False, None)
            return None
        return raw

    def _rollback_error(self, exc):
        """ROLLBACK raised ``exc`` (a driver error): the error to raise."""
        err = self._fail(exc)
        if self._tx is not None:
            self._tx.on_rollback(self)
        return err

    def _commit_failed(self, exc):
        """COMMIT raised ``exc`` (a driver error): the error to raise."""
        if self._dirty:
            _next(_failures)
        err = self._fail(exc, during_commit=True)
        if self._tx is not None:
            self._tx.after_commit(self, False)
        return err

    def _ended(self, committed: bool, started) -> None:
        """COMMIT (``committed``) or ROLLBACK went through; ``started``: its
        clock reading when monitoring was on."""
        monitor = _monitor
        if started is not None and monitor is not None:
            latency = _clock() - started
            if committed:
                monitor.commit_latency(latency)
            else:
                monitor.rollback_latency(latency)
        self._error = None
        if self._dirty:
            _next(_commits if committed else _rollbacks)
            self._dirty = False

    def _release(self):
        """Close's bookkeeping: (the connection to give back, whether it may
        carry a transaction), or (None, False)."""
        pc = self._pc
        dirty = self._dirty
        if pc is not None:
            self._pc = self._raw = self._cursor = self._last = None
            self._dirty = False
            self._error = None
        if self._cache is not None:
            self._cache.clear()
        if self._tx is not None:
            self._tx.on_close(self)
        if not self._closed:
            self._closed = True
            _next(_closed)
        return pc, dirty

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


class Session(BaseSession):
    """A unit of work on one pooled connection (see the module docstring)."""

    __slots__ = ()

    # -- connection ----------------------------------------------------------

    def _checkout(self):
        if self._closed:
            self._reopen()
        try:
            pc = self._pool.checkout()
        except EngineClosed:
            raise self._engine_closed() from None
        self._pc = pc
        self._log = _statements_debug(_DEBUG)
        self._cursor = self._last = None
        raw = self._raw = pc.raw
        return raw

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
        self._pool.checkin(self._drop_connection(), False)  # broken: closed, not kept
        self._pool.count_reconnect()
        self._checkout()
        return run(self, *args)

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
        cursor = self._cursor
        if cursor is not None:
            last = self._last
            if last is not None:
                self._last = None
                last._detach()
        else:
            cursor = raw.cursor()
            if self._adapter.reuse_cursor:
                self._cursor = cursor
        try:
            cursor.execute(statement, params)
        except self._driver_error as e:
            raise self._fail(e, params=params) from e
        except BaseException as e:
            self._interrupted(e)
            raise
        result = Result(cursor, self._adapter)
        if cursor is self._cursor:  # the shared cursor: detach the result before its next use
            self._last = result
        return result

    def execute_many(self, statement, seq_of_params):
        """Run one statement once per parameter set (the driver's executemany)."""
        return self._write(statement, seq_of_params, many=True)

    def _write(self, statement, params, many=False):
        """Run a statement that writes (``execute_many``, the batch builders'
        statements): the query cache is emptied first.  A built statement
        (only ``%s`` placeholders, ``%%`` for a percent) runs as the adapter
        says (PostgreSQL: ``$n`` placeholders, so that psycopg does not
        parse it again)."""
        raw = self._raw
        if raw is None:
            return self._first_statement(_WRITE, statement, params, many)
        self._before_write()
        if self._log:
            _log_statement(statement, params, many=many)
        try:
            cursor, statement = self._write_cursor(raw, statement, params, many)
            if many:
                cursor.executemany(statement, params)
            else:
                cursor.execute(statement, params)
        except self._driver_error as e:
            raise self._fail(e, params=None if many else params) from e
        except BaseException as e:
            self._interrupted(e)
            raise
        return Result(cursor, self._adapter)

    def _copy(self, table, columns, values) -> int:
        """Insert with the adapter's COPY (a batch plan's step)."""
        self._before_copy(table, columns, values)
        try:
            return self._adapter.copy_insert(self._raw, table, columns, values)
        except self._adapter.CopyRefused:
            raise  # nothing was sent: the plan's statements take the rows
        except self._driver_error as e:
            raise self._fail(e) from e
        except BaseException as e:
            self._interrupted(e)
            raise

    def _run_batch(self, plan_for, table, columns, composite=False) -> int:
        """Run a batch write (``fastsess.batch.BatchWrites``)."""
        if plan_for is None:
            return 0
        max_params = batch.limits(self._adapter, table, columns, composite)
        max_bytes = self._adapter.max_statement_bytes(self)
        raw = self._raw
        if raw is None:
            return self._first_statement(_RUN_BATCH, plan_for, table, columns, composite)
        plan = plan_for(raw, max_params, max_bytes)
        return self._run_steps(batch.run_plan(self, plan))

    def _run_steps(self, steps):
        """Run a generator of steps, ``(method name, *args)`` on this
        session, sending each result back and throwing each error in (the
        I/O-free cores of batches and atomic blocks); returns its result."""
        send = steps.send
        result = error = None
        try:
            while True:
                if error is None:
                    step = send(result)
                else:
                    step, error = steps.throw(error), None
                try:
                    result = getattr(self, step[0])(*step[1:])
                except BaseException as e:
                    error = e
        except StopIteration as stop:
            return stop.value

    # -- transaction ---------------------------------------------------------

    def commit(self) -> None:
        raw = self._commit_state()
        if raw is _ABORTED:
            self._refuse_commit()  # raises (the drop-in's rolls back quietly instead)
            raw = self._raw
        if raw is not None:
            started = _clock() if _monitor is not None else None
            # Always ask the driver, even when nothing ran through execute():
            # work done on connection() is invisible to the session.
            try:
                raw.commit()
            except self._driver_error as e:
                raise self._commit_failed(e) from e
            except BaseException as e:
                self._interrupted(e)
                raise
            self._ended(True, started)
        if self._tx is not None:
            self._tx.after_commit(self, True)  # runs the on_commit callbacks

    def _refuse_commit(self):
        """An earlier error, caught by the caller, aborted the transaction: a
        COMMIT would not commit its work (PostgreSQL would even report
        success).  Roll back and raise TransactionAborted instead."""
        cause = self._error
        self.rollback()
        raise self._aborted_error(cause) from cause

    def rollback(self) -> None:
        raw = self._rollback_target()
        if raw is not None:
            started = _clock() if _monitor is not None else None
            try:
                raw.rollback()
            except self._driver_error as e:
                raise self._rollback_error(e) from e
            except BaseException as e:
                self._interrupted(e)
                raise
            self._ended(False, started)
        if self._tx is not None:
            self._tx.on_rollback(self)  # drops the on_commit callbacks

    def close(self) -> None:
        """Give the connection back (rolled back if a transaction is open).
        Idempotent."""
        pc, dirty = self._release()
        if pc is not None:
            self._pool.checkin(pc, dirty)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


# The statement methods as defined here, for _first_statement: a subclass's
# override (the drop-in's MySQL execute() rewrites the statement) or a
# wrapper set on the class must not run a second time for the same call.
# (Taken from the class's __dict__: compiled, Session.execute is a C method.)
_EXECUTE = Session.__dict__["execute"]
_WRITE = Session.__dict__["_write"]
_RUN_BATCH = Session.__dict__["_run_batch"]


# -- scopes around one session ------------------------------------------------


class session_manager:
    """``with session_manager(engine) as session: ...``

    Without a ``session`` and with none current for this engine in the
    running task or thread (made current by ``session_scope``,
    ``with_session`` or ``atomic``, or stored in the engine's storage; see
    ``fastsess.current``), opens a new session, yields it, commits when the
    block succeeds, rolls back (and re-raises) when it raises, and always
    closes it.  With a given or current session, yields that session
    untouched: its owner commits and closes it.  The session it opens is not
    made current (``session_scope`` does that).
    """

    __slots__ = ("_engine", "_session", "_owned")

    def __init__(self, engine, session=None):
        self._engine = engine
        self._session = session
        self._owned = False

    def __enter__(self):
        session = self._session
        if session is None:
            session = current(self._engine)
            if session is None:
                session = self._session = self._engine.get_session()
                self._owned = True
                return session
            self._session = session
        return session

    def __exit__(self, exc_type, exc, tb):
        if self._owned:
            finish(self._session, exc_type is not None)
        return False


def finish(session, failed, auto_commit=True, auto_rollback=True) -> None:
    """End a scope that owns ``session``: commit when it succeeded
    (``auto_commit``), roll back when it failed (``auto_rollback``), always
    close; whatever is left uncommitted is rolled back by ``close()``.  A
    COMMIT that fails is followed by a rollback; a rollback that fails as
    well is logged, so the caller sees the first error."""
    try:
        if not failed:
            if auto_commit:
                try:
                    session.commit()
                except BaseException:
                    _quiet_rollback(session)
                    raise
        else:
            if session._dirty:  # work was done: a failed transaction
                _next(_failures)
            if auto_rollback:
                _quiet_rollback(session)
    finally:
        session.close()


def _quiet_rollback(session) -> None:
    try:
        session.rollback()
    except Exception:
        _rollback_failed()


def _rollback_failed() -> None:
    # The error that brought us here is the one the caller must see; a
    # rollback that fails as well (lost connection) is logged, and close()
    # discards the connection.
    LOG.warning("rollback failed while handling an error", exc_info=True)


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
