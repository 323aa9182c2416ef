"""Nested transactions: ``atomic`` blocks with savepoints, and ``on_commit``.

``atomic(using=None, savepoint=True, durable=False)`` is a context manager
(``with atomic() as session:``) and a decorator (``@atomic``,
``@atomic(...)``):

- With no session current for the engine in this task or thread (see
  ``fastsess.current``), the block opens one and makes it current: it is the
  **outermost** block.  It commits when the block succeeds, rolls back when
  it raises (and re-raises), and closes the session.
- Inside a transaction scope — an enclosing ``atomic``, ``session_scope`` or
  ``with_session``, or a session stored in the engine's thread storage — the
  block is **nested**: it runs ``SAVEPOINT fastsess_sp_<n>`` (unique within
  the transaction), ``RELEASE``\\ s it when the block succeeds and rolls back
  to it when the block raises, then re-raises; the enclosing transaction
  stays usable, with only the inner block's writes undone.
- ``savepoint=False`` joins the enclosing transaction without a savepoint:
  cheaper, but when such a block raises the enclosing transaction can no
  longer commit — the innermost enclosing savepoint block (or the outermost
  block) rolls back; if the error was caught in between, that block raises
  ``TransactionAborted`` when it ends.
- ``durable=True`` raises ``TransactionManagementError`` when the block would
  be nested: a durable block's commit is the real, outermost one.

Inside an atomic block the session's ``commit()`` raises
``TransactionManagementError`` (leave the block to commit; raise to roll
back).  A ``rollback()`` or ``close()`` inside one ends the whole
transaction; the open blocks then raise ``TransactionAborted`` rather than
commit what follows.

When an error ends the transaction on the server — a deadlock or
serialization failure (MySQL rolls the whole transaction back, savepoints
included; PostgreSQL aborts it until ``ROLLBACK TO SAVEPOINT``), or a lost
connection — and the rollback to a nested block's savepoint fails, the
transaction is marked aborted: the error propagates, and should code catch
it and carry on, the outermost block refuses to commit and raises
``TransactionAborted`` (retryable when the error was), so retries re-run the
whole unit.

``on_commit(callback)`` runs ``callback()`` after the transaction of the
current session commits — the outermost commit, not a savepoint's release —
in registration order.  Callbacks registered inside a block that is rolled
back (to its savepoint, or with the whole transaction) are dropped, so a
failed retry attempt's callbacks never run.  They run with the session hidden:
scopes they open use a new session.  A callback that raises stops the
remaining ones and its error propagates from the commit (the transaction *is*
committed); ``robust=True`` logs the error and goes on.  With no current
session (no transaction to wait for) the callback runs at once.

The bookkeeping (``Transaction``) and the decisions of entering and leaving
a nested block are I/O-free: the nested paths are step generators a
session's shell runs (``Session._run_steps``), so a sync and an async
session share them.
"""

from __future__ import annotations

import functools
import inspect
import logging

from . import counters
from .current import current, pop, push
from .errors import (ConnectionLost, TransactionAborted,
                     TransactionManagementError, TransactionRollback)
from .registry import current_for, resolve_async_engine, resolve_engine
from .retry import UNIT_RECORD, RetryPolicy
from .session import finish
from .session_async import finish as finish_async

LOG = logging.getLogger("fastsess.atomic")

_next = next
_READ_ONLY_SQL = "SET TRANSACTION READ ONLY"
# Errors after which the server-side transaction is rolled back or aborted.
_ENDS_TRANSACTION = (TransactionRollback, ConnectionLost)
# Markers in Transaction.blocks; a savepoint block is (name, callbacks mark).
_OUTERMOST = "outermost"
_JOINED = "joined"


def _aborted(tx, what="the transaction") -> TransactionAborted:
    cause = tx.doomed
    if cause is None:
        text = "it was rolled back"
    elif type(cause) is TransactionManagementError:  # rollback()/close() inside a block
        text = str(cause)
    else:
        text = f"an error aborted it and was caught before {what} ended: {type(cause).__name__}: {cause}"
    err = TransactionAborted(f"{what} cannot commit: {text}", cause)
    err.__cause__ = cause
    return err


class Transaction:
    """Per-session bookkeeping of atomic blocks and on_commit callbacks
    (``Session._tx``).  ``pinned``: made by the scope that opened the session
    and kept for its whole life; otherwise dropped when the transaction ends.
    It keeps no reference to its session (the session passes itself to the
    hooks), so the two never form a cycle that only the collector frees."""

    __slots__ = ("engine", "pinned", "blocks", "callbacks", "doomed", "gone", "last_error",
                 "commits", "_seq")

    def __init__(self, engine, pinned=False, blocks=None):
        self.engine = engine
        self.pinned = pinned
        #: Open atomic blocks, innermost last: _OUTERMOST, _JOINED or (savepoint, mark).
        self.blocks = [] if blocks is None else blocks
        #: (callback, robust) to run after the commit.
        self.callbacks = []
        #: The error that keeps the transaction from committing, or None.
        self.doomed = None
        #: The server-side transaction (and its savepoints) no longer exists.
        self.gone = False
        #: The last error a statement raised (for messages).
        self.last_error = None
        #: Commits that succeeded while this bookkeeping was attached.
        self.commits = 0
        self._seq = 0

    @classmethod
    def of(cls, session) -> "Transaction":
        """The session's bookkeeping, made (unpinned) if it has none, or
        made real if it is the flat block's shared marker."""
        tx = session._tx
        if tx is None:
            tx = session._tx = cls(session._engine)
        elif tx is _FLAT:
            tx = session._tx = cls(session._engine, True, [_OUTERMOST])
        return tx

    def next_savepoint(self) -> str:
        self._seq += 1
        return f"fastsess_sp_{self._seq}"

    # -- called by Session ---------------------------------------------------

    def on_error(self, session, err) -> None:
        self.last_error = err
        if self.doomed is None and isinstance(err, _ENDS_TRANSACTION):
            self.doomed = err

    def before_commit(self) -> None:
        if self.blocks:
            raise TransactionManagementError(
                "commit() inside an atomic block: the outermost block commits when it ends; "
                "raise an exception to roll back")
        if self.doomed is not None or self.gone:
            _next(counters.failures)
            raise _aborted(self)

    def after_commit(self, session, committed: bool, run=True):
        """The COMMIT is over.  When it went through, runs the on_commit
        callbacks (``run``), or returns them for an async session to run
        (it awaits the coroutine ones in turn, see ``run_callbacks``)."""
        callbacks = self.callbacks
        if callbacks or self.doomed is not None or self.gone or self.last_error is not None \
                or not self.pinned:
            self._end(session)  # (else there is nothing to reset)
        # (blocks are empty: before_commit refused otherwise)
        if committed:
            self.commits += 1
            if callbacks:
                if not run:
                    return callbacks
                self._run(callbacks)
        return None

    def _end(self, session) -> None:
        """The server-side transaction of ``session`` is over: committed,
        rolled back, or its connection went back to the pool."""
        if self.callbacks:
            self.callbacks = []
        if self.blocks:
            # Ended under open atomic blocks (rollback() or close() inside
            # one): their savepoints are gone and what follows must not commit.
            self.gone = True
            if self.doomed is None:
                self.doomed = TransactionManagementError(
                    "the transaction was rolled back (or its session closed) inside an atomic block")
            return
        if self.doomed is not None or self.gone or self.last_error is not None:
            self.doomed = None
            self.gone = False
            self.last_error = None
        # (Savepoint names keep counting up: unique per session is enough.)
        if not self.pinned and session._tx is self:
            session._tx = None

    on_rollback = on_close = _end

    def _run(self, callbacks) -> None:
        # Hide the committed session: scopes the callbacks open take a new one
        # instead of starting a transaction nobody would commit.
        hidden = push(self.engine, None)
        try:
            for callback, robust in callbacks:
                result = _run_callback(callback, robust)
                if inspect.isawaitable(result):
                    getattr(result, "close", lambda: None)()  # (never awaited: no warning)
                    raise TypeError(f"on_commit callback {callback!r} returned an awaitable: "
                                    "coroutine callbacks need an async session")
        finally:
            pop(hidden)


class _FlatBlock:
    """``Session._tx`` of a session whose only open block is the outermost
    one, with nothing to remember: one shared, stateless marker instead of
    a Transaction per session (cheaper on the hot path).  It still refuses
    ``commit()`` inside the block; anything that needs state (a nested block,
    on_commit, an error, rollback() or close() inside the block) turns it
    into a real Transaction first (``Transaction.of``)."""

    __slots__ = ()
    blocks = (_OUTERMOST,)
    callbacks = ()
    doomed = None
    gone = False
    last_error = None
    pinned = True
    commits = 0

    def on_error(self, session, err) -> None:
        Transaction.of(session).on_error(session, err)

    def before_commit(self) -> None:
        Transaction.before_commit(self)  # blocks is not empty: refused

    def on_rollback(self, session) -> None:
        Transaction.of(session)._end(session)

    on_close = on_rollback


_FLAT = _FlatBlock()


# -- opening and finishing a scope's session (shared with fastsess.scopes) ---


def begin_scope(engine, record=None, bookkeeping=False):
    """A new session for a scope, made current: (session, pushed).

    The session carries a pinned ``Transaction`` when a retry ``record``
    needs its commit count; ``bookkeeping`` (an outermost atomic block)
    records the open block, in the shared ``_FLAT`` marker unless a
    Transaction is made anyway.  Other scopes leave it to nested blocks and
    on_commit to make one."""
    session = engine.get_session()
    if record is None:
        record = UNIT_RECORD.get()  # a with_retry unit's first scopes report to it
    if record is not None:
        tx = session._tx = Transaction(engine, True, [_OUTERMOST] if bookkeeping else None)
        record.began_transaction(tx)
    elif bookkeeping:
        session._tx = _FLAT
    return session, push(engine, session)


def end_scope(session, pushed) -> None:
    """After a scope's session was finished: it stops being current."""
    session._tx = None  # a closed session used again starts without bookkeeping
    pop(pushed)


def open_session(engine, readonly=False, record=None, bookkeeping=False):
    """``begin_scope``, and ``SET TRANSACTION READ ONLY`` for a read-only scope."""
    session, pushed = begin_scope(engine, record, bookkeeping)
    if readonly:
        try:
            session.execute(_READ_ONLY_SQL)
        except BaseException:
            finish_session(session, pushed, True, False, True)
            raise
    return session, pushed


def finish_session(session, pushed, failed, auto_commit, auto_rollback) -> None:
    """End a scope that opened ``session`` (``fastsess.session.finish``) and
    stop it being current."""
    try:
        finish(session, failed, auto_commit, auto_rollback)
    finally:
        end_scope(session, pushed)


async def open_session_async(engine, readonly=False, record=None, bookkeeping=False):
    """``open_session`` for an async engine."""
    session, pushed = begin_scope(engine, record, bookkeeping)
    if readonly:
        try:
            await session.execute(_READ_ONLY_SQL)
        except BaseException:
            await finish_session_async(session, pushed, True, False, True)
            raise
    return session, pushed


async def finish_session_async(session, pushed, failed, auto_commit, auto_rollback) -> None:
    """``finish_session`` for an async session."""
    try:
        await finish_async(session, failed, auto_commit, auto_rollback)
    finally:
        end_scope(session, pushed)


# -- atomic blocks ------------------------------------------------------------


def _check_plain_function(func, what: str) -> None:
    if not callable(func):
        raise TypeError(f"{what} decorates a function, got {type(func).__name__}")
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func) \
            or inspect.isgeneratorfunction(func):
        raise TypeError(f"{what} cannot decorate {func.__qualname__}: the scope would end before "
                        "its body runs (coroutine and generator functions are not supported yet)")


def enter_block(using, savepoint, durable, record=None):
    """Open an atomic block: (session, pushed or None, block)."""
    engine = resolve_engine(using)
    session = current(engine)
    if session is None:
        session, pushed = begin_scope(engine, record, True)
        return session, pushed, _OUTERMOST
    return session, None, session._run_steps(_enter_nested(session, engine, savepoint, durable))


def exit_block(session, pushed, block, exc) -> None:
    """Close an atomic block that ``exc`` (None: success) ended; raises
    what the block must raise besides ``exc``."""
    what = _leaving(session, pushed, block, exc)
    if what is _FINISH:
        finish_session(session, pushed, exc is not None, True, True)
    elif what is _ABANDON:
        finish_session(session, pushed, True, False, True)
        raise _out_of_order()
    else:
        session._run_steps(what)


async def enter_block_async(using, savepoint, durable, record=None):
    """``enter_block`` for async engines."""
    engine = resolve_async_engine(using)
    session = current(engine)
    if session is None:
        session, pushed = begin_scope(engine, record, True)
        return session, pushed, _OUTERMOST
    return session, None, await session._run_steps(
        _enter_nested(session, engine, savepoint, durable))


async def exit_block_async(session, pushed, block, exc) -> None:
    """``exit_block`` for async sessions."""
    what = _leaving(session, pushed, block, exc)
    if what is _FINISH:
        await finish_session_async(session, pushed, exc is not None, True, True)
    elif what is _ABANDON:
        await finish_session_async(session, pushed, True, False, True)
        raise _out_of_order()
    else:
        await session._run_steps(what)


_FINISH = "finish"  # _leaving(): end the scope's session
_ABANDON = "abandon"  # _leaving(): out of order; end the scope's session, raise


def _leaving(session, pushed, block, exc):
    """What leaving ``block`` takes: _FINISH, _ABANDON, the steps of a nested
    block's exit, or raises (out of order, no session of the block's own)."""
    tx = session._tx
    if tx is _FLAT and block is _OUTERMOST:  # nothing happened that needs bookkeeping
        session._tx = None
        return _FINISH
    if tx is None or not tx.blocks or tx.blocks[-1] is not block:
        if pushed is not None:
            return _ABANDON
        raise _out_of_order()
    if block is _OUTERMOST:
        tx.blocks.pop()
        return _FINISH
    return _exit_nested(session, tx, block, exc)


def _out_of_order() -> TransactionManagementError:
    return TransactionManagementError(
        "atomic blocks ended out of order (a session shared between tasks or threads?)")


def _enter_nested(session, engine, savepoint, durable):
    """Steps of entering a block inside an open transaction; returns the block."""
    if durable:
        raise TransactionManagementError(
            f"a durable atomic block cannot be nested: a transaction scope is already open "
            f"for engine {engine.name!r} in this task or thread")
    tx = Transaction.of(session)
    if tx.doomed is not None or tx.gone:
        raise _aborted(tx, "the enclosing transaction")
    if savepoint:
        name = tx.next_savepoint()
        yield ("execute", "SAVEPOINT " + name)
        _next(counters.savepoints)
        block = (name, len(tx.callbacks))
    else:
        block = _JOINED
    tx.blocks.append(block)
    return block


def _exit_nested(session, tx, block, exc):
    """Steps of leaving a nested block (its savepoint released, or rolled
    back to when ``exc``); raises what the block must raise besides ``exc``."""
    tx.blocks.pop()
    if block is _JOINED:
        if exc is not None and tx.doomed is None and not tx.gone:
            tx.doomed = exc  # the enclosing transaction must not commit
        return
    name, mark = block
    if exc is not None:
        if tx.gone:
            del tx.callbacks[mark:]
        else:
            yield from _rollback_to(tx, name, mark, exc)
        return
    if tx.gone:
        raise _aborted(tx, "the block")
    if tx.doomed is not None:  # an error in a joined block, caught inside this one
        err = _aborted(tx, "the block")
        yield from _rollback_to(tx, name, mark, tx.doomed)
        raise err
    earlier = tx.last_error
    try:
        yield ("execute", "RELEASE SAVEPOINT " + name)
    except ConnectionLost:
        # The connection died inside the block and this is the first
        # statement to find out: the whole transaction is gone, and the loss
        # is the news (nothing was caught).
        tx.gone = True
        raise
    except Exception as release_error:
        # PostgreSQL: an error caught inside the block left the
        # transaction aborted.  Undo the block and say so.
        yield from _rollback_to(tx, name, mark, release_error)
        cause = earlier if earlier is not None else release_error
        raise TransactionAborted(
            f"the block cannot commit: releasing its savepoint failed ({release_error}); "
            f"the last error inside it was caught: {type(cause).__name__}: {cause}",
            cause) from release_error


def _rollback_to(tx, name, mark, cause):
    """Steps undoing a savepoint block: drop its callbacks, roll back to and
    release its savepoint; returns False when that failed (the transaction
    is then gone)."""
    del tx.callbacks[mark:]
    try:
        yield ("execute", "ROLLBACK TO SAVEPOINT " + name)
        yield ("execute", "RELEASE SAVEPOINT " + name)
    except BaseException as e:
        # MySQL after a deadlock: "SAVEPOINT ... does not exist" (the server
        # rolled everything back); or the connection is gone.
        tx.gone = True
        if tx.doomed is None:
            tx.doomed = cause if cause is not None else e
        if not isinstance(e, Exception):
            raise
        LOG.debug("rollback to savepoint %s failed: %s", name, e)
        return False
    _next(counters.savepoint_rollbacks)
    tx.doomed = None
    tx.last_error = None
    return True


def _run_atomic(using, savepoint, durable, record, func, args, kwargs):
    session, pushed, block = enter_block(using, savepoint, durable, record)
    try:
        result = func(*args, **kwargs)
    except BaseException as e:
        exit_block(session, pushed, block, e)
        raise
    exit_block(session, pushed, block, None)
    return result


class Atomic:
    """What ``atomic(...)`` returns: a context manager and a decorator.

    An ``Atomic`` object may be entered again once exited, and nested in
    itself, but not from two threads or tasks at once (its entries are kept
    on a stack); the decorator opens a block per call.
    """

    __slots__ = ("using", "savepoint", "durable", "_policy", "_stack")

    def __init__(self, using=None, savepoint=True, durable=False, policy=None):
        self.using = using
        self.savepoint = bool(savepoint)
        self.durable = bool(durable)
        self._policy = policy
        self._stack = []

    def __enter__(self):
        if self._policy is not None:  # only kept when retry options were given
            raise TypeError("a with block cannot run itself again: use retry options on "
                            "@atomic(...) decorating a function, or fastsess.retrying()")
        entry = enter_block(self.using, self.savepoint, self.durable)
        self._stack.append(entry)
        return entry[0]

    def __exit__(self, exc_type, exc, tb):
        session, pushed, block = self._stack.pop()
        exit_block(session, pushed, block, exc if exc_type is not None else None)
        return False

    def __call__(self, func):
        """Decorate ``func``: each call runs in its own atomic block (retried
        per the retry options and defaults when it began the transaction)."""
        _check_plain_function(func, "atomic")
        using, savepoint, durable = self.using, self.savepoint, self.durable
        policy = self._policy if self._policy is not None else RetryPolicy()
        what = getattr(func, "__qualname__", repr(func))

        @functools.wraps(func)
        def atomic_call(*args, **kwargs):
            return policy.run(
                lambda record: _run_atomic(using, savepoint, durable, record, func, args, kwargs),
                what)

        return atomic_call


async def _run_atomic_async(using, savepoint, durable, record, func, args, kwargs):
    session, pushed, block = await enter_block_async(using, savepoint, durable, record)
    try:
        result = await func(*args, **kwargs)
    except BaseException as e:
        await exit_block_async(session, pushed, block, e)
        raise
    await exit_block_async(session, pushed, block, None)
    return result


class AsyncAtomic(Atomic):
    """What ``async_atomic(...)`` returns: an async context manager and a
    decorator of coroutine functions, with ``Atomic``'s rules."""

    __slots__ = ()

    def __enter__(self):
        raise TypeError("async_atomic() is entered with 'async with'")

    async def __aenter__(self):
        if self._policy is not None:
            raise TypeError("an async with block cannot run itself again: use retry options on "
                            "@async_atomic(...) decorating a coroutine function")
        entry = await enter_block_async(self.using, self.savepoint, self.durable)
        self._stack.append(entry)
        return entry[0]

    async def __aexit__(self, exc_type, exc, tb):
        session, pushed, block = self._stack.pop()
        await exit_block_async(session, pushed, block, exc if exc_type is not None else None)
        return False

    def __call__(self, func):
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"async_atomic decorates a coroutine function, got {func!r}")
        using, savepoint, durable = self.using, self.savepoint, self.durable
        policy = self._policy if self._policy is not None else RetryPolicy()
        what = getattr(func, "__qualname__", repr(func))

        @functools.wraps(func)
        async def atomic_call(*args, **kwargs):
            return await policy.run_async(
                lambda record: _run_atomic_async(using, savepoint, durable, record, func, args,
                                                 kwargs), what)

        return atomic_call


def _atomic(cls, using, savepoint, durable, retry_attempts, retry_delay, retry_max_delay):
    if callable(using):  # bare @atomic (an engine name or an Engine is not callable)
        return cls()(using)
    policy = None
    if retry_attempts is not None or retry_delay is not None or retry_max_delay is not None:
        policy = RetryPolicy(retry_attempts, retry_delay, retry_max_delay)
    return cls(using, savepoint, durable, policy)


def async_atomic(using=None, savepoint=True, durable=False, *, retry_attempts=None,
                 retry_delay=None, retry_max_delay=None):
    """``atomic`` for async engines: ``async with async_atomic() as session:``,
    ``@async_atomic``, ``@async_atomic(using=..., retry_attempts=3)`` on a
    coroutine function.  ``on_commit`` callbacks may be coroutine functions."""
    return _atomic(AsyncAtomic, using, savepoint, durable, retry_attempts, retry_delay,
                   retry_max_delay)


def atomic(using=None, savepoint=True, durable=False, *, retry_attempts=None, retry_delay=None,
           retry_max_delay=None):
    """A transaction block: see the module docstring.  ``with atomic() as
    session:``, ``@atomic``, ``@atomic(using="replica", savepoint=False)``.

    ``using``: an engine name in the registry (default ``"default"``) or an
    Engine.  The retry options apply to the decorator form only (a ``with``
    block cannot run itself again; see ``fastsess.retry``): a decorated
    function that began the transaction is run again after a retryable
    failure, up to ``retry_attempts`` more times (default: the
    ``configure_session`` value, 0).
    """
    return _atomic(Atomic, using, savepoint, durable, retry_attempts, retry_delay,
                   retry_max_delay)


def on_commit(callback, using=None, *, session=None, robust=False):
    """Run ``callback()`` after the current transaction commits (see the
    module docstring).  ``using`` picks the engine whose current session is
    meant; ``session`` names a session directly (any session, also one a
    ``session_manager`` opened: the callback runs after its next commit)."""
    if not callable(callback):
        raise TypeError(f"on_commit needs a callable, got {type(callback).__name__}")
    if session is None:
        session = current_for(using)
    if session is None:
        return _run_callback(callback, robust)  # (an async caller awaits a coroutine's)
    Transaction.of(session).callbacks.append((callback, bool(robust)))
    return None


def in_atomic_block(using=None) -> bool:
    """Whether an atomic block is open on the current session of ``using``."""
    session = current_for(using)
    return session is not None and session._tx is not None and bool(session._tx.blocks)


__all__ = ["atomic", "Atomic", "on_commit", "in_atomic_block", "TransactionManagementError",
           "TransactionAborted"]


def _run_callback(callback, robust):
    """Run an on_commit callback (its result: an awaitable for a coroutine
    function); a robust one's error is logged, not raised."""
    if not robust:
        return callback()
    try:
        return callback()
    except Exception:
        LOG.exception("on_commit callback %r failed", callback)
        return None

