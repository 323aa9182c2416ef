"""Running a unit of work again when its transaction failed in a retryable way.

A ``with`` block cannot run itself again, so retries come in three forms:

- ``@with_session(retry_attempts=N, retry_delay=S)`` and
  ``@atomic(retry_attempts=N, ...)`` run the decorated function again;
- ``configure_session(retry_attempts=N)`` makes that the default of every
  ``with_session``/``atomic`` decorated function (per-call values win);
- ``for attempt in fastsess.retrying(retry_attempts=N): with attempt as session: ...``
  for inline blocks (see ``Retrying``).

Retry safety — a unit is run again only when all of these hold:

1. the error is retryable: a ``fastsess.errors`` error whose ``retryable``
   is true — ``DeadlockDetected``, ``SerializationFailure`` (any
   ``TransactionRollback``), ``LockTimeout``, and ``ConnectionLost`` raised
   before COMMIT was sent (the next attempt takes a fresh connection).
   ``CommitOutcomeUnknown`` (the connection broke while COMMIT was in
   flight) is never retried: the transaction may have been committed.  Any
   other exception (integrity errors, the unit's own exceptions) is raised at
   once, and so is anything raised after the transaction committed (an
   ``on_commit`` callback, say);
2. the unit began the transaction: a retrying unit nested in another scope
   (a session was already current) runs once and lets the error reach the
   scope that began the transaction, which may retry the whole of it;
3. nothing was committed during the attempt (no ``session.commit()`` inside
   the unit succeeded).

Each attempt runs from scratch in a new transaction on a new session; its
``on_commit`` callbacks are dropped with its rollback and never run.  Work
the unit does outside its transaction (other sessions, files, messages) is
not undone: keep a retried unit free of it, or defer it with ``on_commit``.

Backoff: before retry ``n`` (1, 2, ...) the unit waits
``min(retry_max_delay, retry_delay * 2 ** (n - 1))`` seconds times a random
factor in [0.5, 1) (jitter, so that the two sides of a deadlock do not meet
again).  Each retry is counted (``get_session_stats()["retries"]``) and
logged at INFO on ``fastsess.retry``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextvars import ContextVar

from . import counters
from .config import check_seconds, settings
from .errors import FastsessError

LOG = logging.getLogger("fastsess.retry")

_sleep = time.sleep
_async_sleep = asyncio.sleep


def is_retryable(exc: BaseException) -> bool:
    """Whether running the failed transaction again from scratch may succeed."""
    return isinstance(exc, FastsessError) and exc.retryable is True


def backoff(retry: int, delay: float, max_delay: float, _random=random.random) -> float:
    """Seconds to wait before retry number ``retry`` (from 1)."""
    base = min(max_delay, delay * 2.0 ** min(retry - 1, 60))
    return base * (0.5 + 0.5 * _random())


class RetryPolicy:
    """How often and how patiently to retry; ``None`` fields take the
    ``configure_session`` default when the unit runs."""

    __slots__ = ("attempts", "delay", "max_delay")

    def __init__(self, retry_attempts=None, retry_delay=None, retry_max_delay=None):
        if retry_attempts is not None and (isinstance(retry_attempts, bool)
                                           or not isinstance(retry_attempts, int)
                                           or retry_attempts < 0):
            raise ValueError(f"retry_attempts must be an int >= 0, got {retry_attempts!r}")
        self.attempts = retry_attempts
        self.delay = None if retry_delay is None else check_seconds("retry_delay", retry_delay)
        self.max_delay = (None if retry_max_delay is None
                          else check_seconds("retry_max_delay", retry_max_delay))

    def resolve(self) -> tuple:
        """(retries, delay, max_delay) with the defaults filled in: the one
        place retry settings are read."""
        return (settings.retry_attempts if self.attempts is None else self.attempts,
                settings.retry_delay if self.delay is None else self.delay,
                settings.retry_max_delay if self.max_delay is None else self.max_delay)

    def run(self, attempt, what: str):
        """``attempt(record)`` once, or until it returns, retried as this
        policy says (``record`` is None when no retry is allowed: the unit
        then keeps no commit count)."""
        if not (settings.retry_attempts if self.attempts is None else self.attempts):
            return attempt(None)
        return call_with_retries(attempt, *self.resolve(), what)

    async def run_async(self, attempt, what: str):
        """``run`` for a coroutine function ``attempt``."""
        if not (settings.retry_attempts if self.attempts is None else self.attempts):
            return await attempt(None)
        return await call_with_retries_async(attempt, *self.resolve(), what)


class AttemptRecord:
    """What one attempt's scopes tell the retry loop: whether the attempt
    began a transaction, and the bookkeeping of each one it began (to see
    whether any committed)."""

    __slots__ = ("began", "txs")

    def __init__(self):
        self.began = False
        self.txs = []

    def began_transaction(self, tx) -> None:
        self.began = True
        self.txs.append(tx)

    def may_retry(self, exc: BaseException) -> bool:
        return self.began and not any(tx.commits for tx in self.txs) and is_retryable(exc)


#: The record of the ``with_retry``/``async_with_retry`` unit running in this
#: task or thread: scopes the unit opens report to it (``atomic.begin_scope``).
UNIT_RECORD: ContextVar = ContextVar("fastsess_retry_unit", default=None)


def _before_retry(retry: int, retries: int, delay: float, max_delay: float, exc, what) -> float:
    """Count and log retry number ``retry``; the seconds to wait before it."""
    wait = backoff(retry, delay, max_delay)
    _next_retry()
    LOG.info("retrying %s after %s: %s (retry %d of %d, in %.3f s)", what,
             type(exc).__name__, exc, retry, retries, wait)
    return wait


def _next_retry() -> None:
    next(counters.retries)


class RetryLoop:
    """The decisions of a retry loop, without its waiting: a sync or async
    shell runs ``attempt(loop.record())`` until it returns, and after a
    failure asks ``loop.failed(exc)`` for the seconds to wait (None: raise)."""

    __slots__ = ("retries", "delay", "max_delay", "what", "retry", "_record")

    def __init__(self, retries: int, delay: float, max_delay: float, what: str):
        self.retries, self.delay, self.max_delay, self.what = retries, delay, max_delay, what
        self.retry = 0
        self._record = None

    def record(self) -> AttemptRecord:
        """The record the next attempt opens its scope with."""
        self._record = AttemptRecord()
        return self._record

    def failed(self, exc):
        """The attempt raised ``exc`` (an ``Exception``: a cancellation is
        never retried): the wait before the next attempt, or None."""
        if self.retry >= self.retries or not self._record.may_retry(exc):
            return None
        self.retry += 1
        return _before_retry(self.retry, self.retries, self.delay, self.max_delay, exc, self.what)


def call_with_retries(attempt, retries: int, delay: float, max_delay: float, what: str):
    """``attempt(record)`` until it returns, at most ``1 + retries`` times;
    it must open its scope with ``record`` (see ``AttemptRecord``)."""
    loop = RetryLoop(retries, delay, max_delay, what)
    while True:
        try:
            return attempt(loop.record())
        except Exception as exc:
            wait = loop.failed(exc)
            if wait is None:
                raise
        if wait > 0:
            _sleep(wait)


async def call_with_retries_async(attempt, retries: int, delay: float, max_delay: float,
                                  what: str):
    """``call_with_retries`` for a coroutine function ``attempt``."""
    loop = RetryLoop(retries, delay, max_delay, what)
    while True:
        try:
            return await attempt(loop.record())
        except Exception as exc:
            wait = loop.failed(exc)
            if wait is None:
                raise
        await _async_sleep(wait)


class Retrying:
    """Attempts of an inline unit of work::

        for attempt in fastsess.retrying(retry_attempts=3):
            with attempt as session:
                ...

    Each ``attempt`` is a context manager that opens a scope (as
    ``session_scope`` does) for one run of the block.  When the block (or
    its commit) fails with an error that may be retried (see the module
    docstring), the attempt swallows the error, the loop waits (backoff) and
    yields the next attempt; when it succeeds, or fails otherwise, or the
    attempts are used up (the last error is then raised), the loop ends.
    Code after the ``with`` inside the loop also runs after a swallowed
    failure; ``attempt.number`` (from 1) and ``attempt.error`` (the error
    being retried, or None) tell which case it is.
    """

    def __init__(self, open_scope, policy: RetryPolicy, what="inline unit of work"):
        self._open_scope = open_scope  # (record) -> a context manager yielding the session
        self._policy = policy
        self._what = what

    def __iter__(self):
        retries, delay, max_delay = self._policy.resolve()
        number = 1
        while True:
            attempt = Attempt(self._open_scope, number, number <= retries)
            yield attempt
            if attempt.error is None:
                return
            wait = _before_retry(number, retries, delay, max_delay, attempt.error, self._what)
            if wait > 0:
                _sleep(wait)
            number += 1


class Attempt:
    """One run of a ``Retrying`` loop's block; ``with attempt as session:``."""

    __slots__ = ("number", "error", "_open_scope", "_may_retry", "_record", "_scope")

    def __init__(self, open_scope, number: int, may_retry: bool):
        self.number = number
        #: The retryable error this attempt failed with (then swallowed), or None.
        self.error = None
        self._open_scope = open_scope
        self._may_retry = may_retry
        self._record = None
        self._scope = None

    def __enter__(self):
        if self._scope is not None:
            raise RuntimeError("an attempt can be entered once")
        self._record = AttemptRecord()
        self._scope = self._open_scope(self._record)
        return self._scope.__enter__()

    def __exit__(self, exc_type, exc, tb):
        try:
            self._scope.__exit__(exc_type, exc, tb)
        except Exception as closing_error:  # the commit failed
            if self._may_retry and self._record.may_retry(closing_error):
                self.error = closing_error
                return True
            raise
        if exc is not None and self._may_retry and isinstance(exc, Exception) \
                and self._record.may_retry(exc):
            self.error = exc
            return True
        return False


def _unit_loop(fn, max_retries, retry_delay, retry_max_delay):
    policy = RetryPolicy(max_retries, retry_delay, retry_max_delay)
    retries, delay, max_delay = policy.resolve()
    return RetryLoop(retries, delay, max_delay, getattr(fn, "__qualname__", repr(fn)))


def with_retry(fn, *args, max_retries=None, retry_delay=None, retry_max_delay=None, **kwargs):
    """``fn(*args, **kwargs)``, run again from scratch when it fails with a
    retryable error (the rules of the module docstring): every scope ``fn``
    opens reports to this unit, so it is retried only when it began its
    transactions itself and none of them committed.  Defaults: the
    ``configure_session`` retry settings."""
    loop = _unit_loop(fn, max_retries, retry_delay, retry_max_delay)
    while True:
        token = UNIT_RECORD.set(loop.record())
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            wait = loop.failed(exc)
            if wait is None:
                raise
        finally:
            UNIT_RECORD.reset(token)
        if wait > 0:
            _sleep(wait)


async def async_with_retry(fn, *args, max_retries=None, retry_delay=None, retry_max_delay=None,
                           **kwargs):
    """``await fn(*args, **kwargs)`` with ``with_retry``'s rules; a
    cancellation is never retried."""
    loop = _unit_loop(fn, max_retries, retry_delay, retry_max_delay)
    while True:
        token = UNIT_RECORD.set(loop.record())
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            wait = loop.failed(exc)
            if wait is None:
                raise
        finally:
            UNIT_RECORD.reset(token)
        await _async_sleep(wait)
