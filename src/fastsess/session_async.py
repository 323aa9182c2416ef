"""Async sessions: ``AsyncSession``, the asyncio shell around ``BaseSession``.

Everything but the waiting is shared with ``fastsess.session``: the state,
error translation, the commit and close bookkeeping (``BaseSession``), the
batch methods (``fastsess.batch``) and the step generators of batches and
atomic blocks.  Statements return buffered results: the rows are fetched
with the statement, so ``fetchall()`` and friends need no ``await``.

A statement interrupted by a cancellation (or anything that is not an
``Exception``) leaves its connection in an unknown state — a reply half
read, a query still running — so that connection is closed when the
session gives it back, never handed to anyone again.
"""

from __future__ import annotations

import inspect
import logging
from time import perf_counter as _clock

from . import _impl, batch
from . import session as _session_module
from .cache import SessionQueryCache
from .current import current, pop, push
from .errors import EngineClosed, ProgrammingError, SessionClosed
from .result import BufferedRows, Result
from .session import _ABORTED, BaseSession, _log_statement, _Reconnect, _rollback_failed

_MISS = object()
#: Where a robust on_commit callback's failure is logged (as for sync sessions).
_CALLBACK_LOG = logging.getLogger("fastsess.atomic")
_statement_kind = _impl.statement_kind
_cache_get = _impl.cache_get


class AsyncSession(BaseSession):
    """A unit of work on one pooled connection, driven by coroutines: the
    API of ``fastsess.Session`` with ``await``."""

    __slots__ = ()

    @property
    def cache(self) -> "AsyncSessionQueryCache":
        """The per-session query cache (``await session.cache.fetchall(...)``)."""
        cache = self._cache
        if cache is None:
            cache = self._cache = AsyncSessionQueryCache(self)
        return cache

    # -- connection ----------------------------------------------------------

    def _reopen(self) -> None:
        # Unlike a thread's sync session, a closed async session is not taken
        # up again: the scope that closed it may have been another task's,
        # and a late use from a child task must not start a transaction that
        # nobody commits.
        raise SessionClosed("this async session was closed (its scope ended); open another")

    async def _checkout(self):
        if self._closed:
            self._reopen()
        pc = self._pool.checkout_now()  # the fast path, without the pool's coroutine
        if pc is None:
            try:
                pc = await self._pool.checkout()
            except EngineClosed:
                raise self._engine_closed() from None
        self._pc = pc
        self._log = _session_module._statements_debug(_session_module._DEBUG)
        self._cursor = None
        raw = self._raw = pc.raw
        return raw

    async def _first_statement(self, run, *args):
        """See ``Session._first_statement``."""
        await self._checkout()
        self._fresh = True
        try:
            return await run(self, *args)
        except _Reconnect:
            pass
        finally:
            self._fresh = False
        await self._pool.checkin(self._drop_connection(), False)  # broken: closed, not kept
        self._pool.count_reconnect()
        await self._checkout()
        return await run(self, *args)

    async def connection(self):
        """The driver connection this session uses (checked out if needed).
        Whatever runs on it counts as this session's transaction."""
        self._dirty = True
        return self._raw if self._raw is not None else await self._checkout()

    # -- statements ----------------------------------------------------------

    async def execute(self, statement, params=None) -> Result:
        """Run one statement; its rows come back buffered (see ``Session.execute``)."""
        raw = self._raw
        if raw is None:
            return await self._first_statement(_EXECUTE, statement, params)
        cache = self._cache
        if cache is not None and cache._entries:
            cache._on_statement(statement)
        self._dirty = True
        if self._log:
            _log_statement(statement, params)
        # One reused cursor: every result is fetched with its statement
        # (BufferedRows), so nothing reads the cursor after the next one.
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = raw.cursor()
        try:
            await cursor.execute(statement, params)
            # (self._buffered, inlined: one coroutine less per statement)
            names = self._adapter.column_names(cursor)
            rows = await cursor.fetchall() if names is not None else None
        except self._driver_error as e:
            raise self._fail(e, params=params) from e
        except BaseException as e:
            self._statement_interrupted(e)
            raise
        return BufferedResult(names, rows, cursor, self._adapter)

    def _statement_interrupted(self, exc) -> None:
        """``_interrupted`` for a statement: the server may still run it."""
        self._interrupted(exc)
        if not isinstance(exc, Exception) and self._pc is not None:
            self._adapter.statement_interrupted(self._pc.raw)

    async def _buffered(self, cursor) -> Result:
        names = self._adapter.column_names(cursor)
        rows = await cursor.fetchall() if names is not None else None
        return BufferedResult(names, rows, cursor, self._adapter)

    async def execute_many(self, statement, seq_of_params) -> Result:
        """Run one statement once per parameter set (the driver's executemany)."""
        return await self._write(statement, seq_of_params, many=True)

    async def _write(self, statement, params, many=False) -> Result:
        """See ``Session._write``."""
        raw = self._raw
        if raw is None:
            return await self._first_statement(_WRITE, statement, params, many)
        self._before_write()
        if self._log:
            _log_statement(statement, params, many=many)
        try:
            cursor, statement = self._write_cursor(raw, statement, params, many)
            if many:
                await cursor.executemany(statement, params)
            else:
                await cursor.execute(statement, params)
            return await self._buffered(cursor)
        except self._driver_error as e:
            raise self._fail(e, params=None if many else params) from e
        except BaseException as e:
            self._statement_interrupted(e)
            raise

    async def _copy(self, table, columns, values) -> int:
        """``Session._copy``: insert with the adapter's COPY (a batch plan's step)."""
        self._before_copy(table, columns, values)
        try:
            return await self._adapter.copy_insert(self._raw, table, columns, values)
        except self._adapter.CopyRefused:
            raise  # nothing was sent: the plan's statements take the rows
        except self._driver_error as e:
            raise self._fail(e) from e
        except BaseException as e:
            self._statement_interrupted(e)
            raise

    async def _run_batch(self, plan_for, table, columns, composite=False) -> int:
        """Run a batch write (``fastsess.batch.BatchWrites``)."""
        if plan_for is None:
            return 0
        max_params = batch.limits(self._adapter, table, columns, composite)
        max_bytes = await self._adapter.max_statement_bytes(self)
        raw = self._raw
        if raw is None:
            return await self._first_statement(_RUN_BATCH, plan_for, table, columns, composite)
        plan = plan_for(raw, max_params, max_bytes)
        return await self._run_steps(batch.run_plan(self, plan))

    async def _run_steps(self, steps):
        """``Session._run_steps``, each step awaited."""
        send = steps.send
        result = error = None
        try:
            while True:
                if error is None:
                    step = send(result)
                else:
                    step, error = steps.throw(error), None
                try:
                    result = await getattr(self, step[0])(*step[1:])
                except BaseException as e:
                    error = e
        except StopIteration as stop:
            return stop.value

    # -- transaction ---------------------------------------------------------

    async def commit(self) -> None:
        raw = self._commit_state()
        if raw is _ABORTED:
            await self._refuse_commit()
            raw = self._raw
        if raw is not None:
            started = _clock() if _session_module._monitor is not None else None
            try:
                await raw.commit()
            except self._driver_error as e:
                raise self._commit_failed(e) from e
            except BaseException as e:
                self._interrupted(e)
                raise
            self._ended(True, started)
        if self._tx is not None:
            callbacks = self._tx.after_commit(self, True, run=False)
            if callbacks:
                await _run_callbacks(self, callbacks)

    async def _refuse_commit(self):
        cause = self._error
        await self.rollback()
        raise self._aborted_error(cause) from cause

    async def rollback(self) -> None:
        raw = self._rollback_target()
        if raw is not None:
            started = _clock() if _session_module._monitor is not None else None
            try:
                await raw.rollback()
            except self._driver_error as e:
                raise self._rollback_error(e) from e
            except BaseException as e:
                self._interrupted(e)
                raise
            self._ended(False, started)
        if self._tx is not None:
            self._tx.on_rollback(self)

    async def close(self) -> None:
        """Give the connection back (rolled back if a transaction is open;
        closed if it was interrupted).  Idempotent."""
        pc, dirty = self._release()
        if pc is not None and not self._pool.checkin_now(pc, dirty):
            await self._pool.checkin(pc, dirty)

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        await self.close()
        return False


_EXECUTE = AsyncSession.execute
_WRITE = AsyncSession._write
_RUN_BATCH = AsyncSession._run_batch


async def _run_callbacks(session, callbacks) -> None:
    """Run on_commit callbacks in order, awaiting what a coroutine function
    returns before the next, with the committed session hidden (as
    ``Transaction._run`` does); a robust one's error is logged, not raised."""
    hidden = push(session._engine, None)
    try:
        for callback, robust in callbacks:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                if not robust:
                    raise
                _CALLBACK_LOG.exception("on_commit callback %r failed", callback)
    finally:
        pop(hidden)


class BufferedResult(Result):
    """A statement's result whose rows were fetched with it (async sessions)."""

    __slots__ = ()

    def __init__(self, names, rows, cursor, adapter):
        super().__init__(BufferedRows(rows, cursor, adapter), None)
        self._names = names

    def _column_names(self):
        names = self._names
        if names is None:
            raise ProgrammingError("the statement returned no rows to fetch")
        return names


class AsyncSessionQueryCache(SessionQueryCache):
    """The query cache of an async session: ``await cache.fetchall(...)``."""

    __slots__ = ()

    async def fetchall(self, statement, params=None):
        """``(await session.execute(statement, params)).fetchall()``, served
        from the cache when the same read already ran in this session."""
        found, slot = self._lookup(statement, params)
        if found is not _MISS:
            return found
        result = (await self._session.execute(statement, params)).fetchall()
        if slot is not None:
            self._store(slot, result, None)
        return result

    def _lookup(self, statement, params):
        """(the cached rows or _MISS, the slot to store a miss in or None)."""
        if not _statement_kind(statement)[1]:
            return _MISS, None
        key = ("sql", statement, params)
        found = _cache_get(self._entries, key, _MISS)
        if found is not _MISS:
            self.hits += 1
            return found, None
        return _MISS, self._miss(key)


# -- scopes around one async session ------------------------------------------


class async_session_manager:
    """``async with engine.session_manager() as session:`` — the async twin
    of ``fastsess.session_manager``: a given or current session passes
    through untouched; otherwise a new one is opened, committed when the
    block succeeds, rolled back when it raises, and always closed."""

    __slots__ = ("_engine", "_session", "_owned")

    def __init__(self, engine, session=None):
        self._engine = engine
        self._session = session
        self._owned = False

    async def __aenter__(self):
        session = self._session
        if session is None:
            session = current(self._engine)
            if session is None:
                session = self._session = self._engine.get_session()
                self._owned = True
                return session
            self._session = session
        return session

    async def __aexit__(self, exc_type, exc, tb):
        if self._owned:
            await finish(self._session, exc_type is not None)
        return False


async def finish(session, failed, auto_commit=True, auto_rollback=True) -> None:
    """``fastsess.session.finish`` for an async session (same rules)."""
    try:
        if not failed:
            if auto_commit:
                try:
                    await session.commit()
                except BaseException:
                    await _quiet_rollback(session)
                    raise
        else:
            if session._dirty:
                _session_module._next(_session_module._failures)
            if auto_rollback:
                await _quiet_rollback(session)
    finally:
        await session.close()


async def _quiet_rollback(session) -> None:
    try:
        await session.rollback()
    except Exception:
        _rollback_failed()

