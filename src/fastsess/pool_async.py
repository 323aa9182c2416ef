"""The asyncio connection pool: ``PoolState`` (the bookkeeping of
``fastsess.pool``) on one event loop, with the sync pool's guarantees.

A size limit; a caller waits up to ``timeout`` for a free connection, then
gets ``PoolTimeout`` (``max_waiting`` bounds the queue); idle and over-age
connections are closed by a reaper task; nothing is sent on checkout (the
same socket peek finds a connection the server closed) or on a clean
checkin.  What comes back is kept when idle, rolled back when inside a
transaction, and closed — never reused — when it is busy, broken or was
interrupted (a cancelled task) in the middle of something.  A waiter that is
cancelled while it waits takes no slot with it.

The state needs no lock: it is only touched from the event loop's thread,
between awaits.  A pool serves the event loop that first used it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from time import monotonic

from .errors import EngineClosed
from .pool import PooledConnection, PoolState


class AsyncPool(PoolState):
    """``PoolState`` driven by coroutines (see the module docstring)."""

    def __init__(self, driver, **options):
        super().__init__(driver, **options)
        self._waiters: deque = deque()  # futures of callers waiting for a free connection
        self._loop = None
        self._reaper = None  # an asyncio task, made with the first connection
        # Sessions collected without close() leave their connection here.
        self._orphans: deque = deque()

    def _bind(self, loop):
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"the async pool of {self.name} serves the event loop that "
                               "first used it; make one engine per event loop")
        return loop

    # -- checkout / checkin -------------------------------------------------

    def checkout_now(self) -> PooledConnection | None:
        """``checkout()``'s fast path, with nothing to await: a fresh idle
        connection that is alive, or None (then await ``checkout()``).
        Saves the hot path a coroutine."""
        if self._loop is not _running_loop() or self._orphans:
            return None
        while True:
            pc = self._take_fresh()
            if pc is None or self._alive(pc):
                return pc
            self._drop_dead(pc)

    async def checkout(self) -> PooledConnection:
        loop = _running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if self._orphans:
            await self._adopt_orphans()
        while True:
            pc = self._take_fresh()
            if pc is None:
                return await self._checkout_slow(loop)
            if self._alive(pc):
                return pc
            self._drop_dead(pc)

    async def _checkout_slow(self, loop) -> PooledConnection:
        deadline = None
        while True:
            to_close = []
            try:
                pc = self._take(to_close)
            finally:
                for expired in to_close:
                    self._close_raw(expired, discarded=expired.broken)
            if pc is True:
                return await self._open()
            if pc is not None:
                if self._alive(pc):
                    return pc
                self._drop_dead(pc)
                continue
            if deadline is None:
                self._may_wait()
                deadline = loop.time() + self.timeout
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._timed_out()
            await self._wait(loop, remaining)

    async def _wait(self, loop, remaining) -> None:
        """Wait until a connection or a slot may be free (or the time is up).
        (Not asyncio.wait_for: before Python 3.12 it can swallow a
        cancellation that arrives as the waiter is woken.)"""
        waiter = loop.create_future()
        timer = loop.call_later(remaining, _wake_one, waiter)
        self._waiters.append(waiter)
        self._waiting += 1
        try:
            await waiter
        except BaseException:
            # Cancelled: a wake-up meant for this caller goes to the next one.
            if waiter.done() and not waiter.cancelled():
                self._wake()
            raise
        finally:
            timer.cancel()
            self._waiting -= 1
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            if _wake_one(waiters.popleft()):
                return

    def _drop_dead(self, pc: PooledConnection) -> None:
        self._dead(pc)
        if self._waiting:
            self._wake()
        self._close_raw(pc, discarded=True)

    async def _open(self) -> PooledConnection:
        """Open a connection into the slot the caller reserved."""
        driver = self._driver
        try:
            raw = await driver.connect()
            try:
                fd = driver.socket_fd(raw)
            except BaseException:
                driver.close(raw)
                raise
        except BaseException:  # cancelled too: the slot is given back
            self._open_failed()
            self._wake()
            raise
        pc = self._opened(raw, fd)
        if self._closed:
            await self.checkin(pc)
            raise EngineClosed(f"the pool of {self.name} is closed")
        if self._reaper is None:
            self._start_reaper()
        return pc

    def count_reconnect(self) -> None:
        """A session ran its first statement again on another connection."""
        self._counters["reconnects"] += 1

    def checkin_now(self, pc: PooledConnection, in_transaction: bool | None = None) -> bool:
        """``checkin()`` when it has nothing to await: True when ``pc`` is
        back (kept or closed); False when it needs a rollback first (then
        await ``checkin()``), with nothing changed."""
        if not pc.checked_out:
            raise RuntimeError("connection returned to the pool twice")
        if pc.inherited:
            pc.checked_out = False
            return True
        if pc.broken:
            state = False
        else:
            try:
                state = self._driver.reset_state(pc.raw, in_transaction)
            except Exception:
                state = False
            if state is None:
                return False
        pc.checked_out = False
        self._back(pc, state, False)
        return True

    async def checkin(self, pc: PooledConnection, in_transaction: bool | None = None) -> None:
        """Give ``pc`` back (see ``Pool.checkin``).  A rollback interrupted by
        a cancellation leaves the connection in an unknown state: it is
        closed, and the cancellation goes on."""
        if self.checkin_now(pc, in_transaction):
            return
        pc.checked_out = False
        interrupted = None
        try:
            state = await self._driver.reset(pc.raw, in_transaction)
        except Exception:
            state = False
        except BaseException as e:
            state, interrupted = False, e
        self._back(pc, state is not False, state is None)
        if interrupted is not None:
            raise interrupted

    def _back(self, pc: PooledConnection, ok: bool, rolled_back: bool) -> None:
        kept = self._returned(pc, ok, rolled_back, monotonic())
        if self._waiting:
            self._wake()
        if not kept:
            self._close_raw(pc, discarded=pc.broken or not ok)

    def release_orphan(self, pc: PooledConnection, in_transaction: bool | None) -> None:
        """Called from a session's ``__del__``: defer the checkin."""
        self._orphans.append((pc, in_transaction))

    async def _adopt_orphans(self) -> None:
        while self._orphans:
            pc, in_tx = self._orphans.popleft()
            if pc.checked_out:
                await self.checkin(pc, in_tx)

    # -- maintenance --------------------------------------------------------

    def _close_raw(self, pc: PooledConnection, discarded: bool = False) -> None:
        self._gone(pc, discarded)
        try:
            self._driver.close(pc.raw)  # the async adapters close without waiting
        except Exception:
            pass

    def reap(self) -> int:
        """Close idle connections past ``max_idle`` or ``max_lifetime``; return how many."""
        to_close = self._expired(monotonic())
        for pc in to_close:
            self._close_raw(pc)
        return len(to_close)

    def _start_reaper(self) -> None:
        if self._closed:
            return
        interval = self._reap_interval()
        self._reaper = self._loop.create_task(_reap_loop(weakref.ref(self), interval),
                                              name=f"fastsess-reaper {self.name}")

    async def prefill(self) -> None:
        """Open connections up to ``min_size`` now."""
        loop = _running_loop()
        if loop is not self._loop:
            self._bind(loop)
        opened = []
        try:
            while self._size < self.min_size and not self._closed:
                self._size += 1
                opened.append(await self._open())
        finally:
            for pc in opened:
                await self.checkin(pc, False)

    def close_now(self) -> None:
        """Close the pool without waiting: idle connections now, in-use ones
        when returned.  Idempotent.  Waiting callers get ``EngineClosed``."""
        idle = self._shut()
        if idle is None:
            return
        while self._waiters:
            self._wake()
        if self._reaper is not None:
            self._reaper.cancel()
        for pc in idle:
            self._close_raw(pc)

    async def close(self) -> None:
        """``close_now()``, awaitable (``await engine.close()``)."""
        self.close_now()

    def stats(self) -> dict:
        return self._stats()

    def _forget_inherited(self) -> list:
        """In a forked child (see ``PoolState._forget_inherited``): the
        parent's event loop, waiters and reaper are not the child's."""
        self._waiters = deque()
        self._orphans = deque()
        self._loop = self._reaper = None
        idle = super()._forget_inherited()
        for pc in idle:
            try:
                self._driver.close(pc.raw)  # writes to /dev/null now
            except Exception:
                pass
        return idle


_running_loop = asyncio.get_running_loop


def _wake_one(waiter) -> bool:
    """Wake ``waiter`` unless it is done (cancelled, woken already)."""
    if waiter.done():
        return False
    waiter.set_result(None)
    return True


async def _reap_loop(pool_ref, interval: float) -> None:
    # Holds only a weak reference so an abandoned pool can still be collected.
    while True:
        await asyncio.sleep(interval)
        pool = pool_ref()
        if pool is None or pool.closed:
            return
        try:
            pool.reap()
        except Exception:
            pass
        del pool
