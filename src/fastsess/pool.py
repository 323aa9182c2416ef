"""Connection pools for any driver adapter.

Checkout and checkin send nothing to the server when nothing needs saying:
a connection is rolled back on checkin only when it is inside a
transaction, and checked on checkout without a round trip: an idle
connection's socket has nothing to read unless the server closed it or is
closing it (EOF, a termination notice), which one non-blocking peek at the
socket shows (``fastsess._impl.socket_state``; the adapter judges what it
finds).  Such a connection, and any marked broken, is discarded and never
handed out again.  Idle and over-age connections are closed by a reaper
thread and on the way through checkout.

``PoolState`` is the bookkeeping, with no I/O and no locking of its own:
which connections are idle, how many exist and are in use, what a checkout
may take and a checkin may keep, the counters.  ``Pool`` is the threaded
shell around it: a lock and a condition to wait on, the driver calls
(connect, reset, close) and the reaper.  An asynchronous shell keeps the
same state on its event loop.

A forked child never uses a connection its parent opened: after
``os.fork()`` every pool forgets the inherited connections, pointing their
descriptors at /dev/null first so that nothing the child does (closing
them, collecting them) reaches the parent's server sessions.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from time import monotonic

from . import _impl
from .errors import EngineClosed, PoolTimeout, PoolTooManyWaiting

_socket_state = _impl.socket_state


class PooledConnection:
    """A driver connection with the bookkeeping the pool needs.

    ``fd`` is its socket's descriptor (-1: unknown, never peeked at);
    ``inherited`` marks a connection a forked child got from its parent.
    """

    __slots__ = ("raw", "created", "returned", "broken", "checked_out", "fd", "inherited")

    def __init__(self, raw, now, fd=-1):
        self.raw = raw
        self.created = now
        self.returned = now
        self.broken = False
        self.checked_out = False
        self.fd = fd
        self.inherited = False


class PoolState:
    """Up to ``max_size`` connections: the bookkeeping (see the module
    docstring).  Every method is called with the shell's lock held (or on
    its event loop) and returns at once.

    ``timeout``: seconds a caller waits for a free connection before
    ``PoolTimeout``.  ``max_waiting``: callers allowed to wait at once
    (0: no limit).  ``max_idle``: seconds an idle connection is kept (beyond
    ``min_size``).  ``max_lifetime``: seconds after which a connection is
    closed when it is next idle.
    """

    def __init__(self, driver, *, max_size=10, min_size=0, timeout=30.0, max_waiting=0,
                 max_idle=300.0, max_lifetime=3600.0, name=""):
        # Checked and converted here so that the compiled build (C int and
        # double fields) and the pure one take and keep the same values.
        for option, value in (("max_size", max_size), ("min_size", min_size),
                              ("max_waiting", max_waiting)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{option} must be an int, got {type(value).__name__}")
        for option, value in (("timeout", timeout), ("max_idle", max_idle),
                              ("max_lifetime", max_lifetime)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{option} must be a number of seconds, got {type(value).__name__}")
        timeout, max_idle, max_lifetime = float(timeout), float(max_idle), float(max_lifetime)
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if not 0 <= min_size <= max_size:
            raise ValueError(f"min_size must be between 0 and max_size ({max_size}), got {min_size}")
        if timeout < 0 or max_idle <= 0 or max_lifetime <= 0 or max_waiting < 0:
            raise ValueError("timeout, max_idle, max_lifetime and max_waiting must be positive")
        self._driver = driver
        self.name = name
        self.max_size = max_size
        self.min_size = min_size
        self.timeout = timeout
        self.max_waiting = max_waiting
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self._idle: deque[PooledConnection] = deque()  # oldest-returned on the left
        self._size = 0  # open connections, in use or idle, plus ones being opened
        self._in_use = 0
        self._waiting = 0
        self._closed = False
        self._checkouts = 0  # apart from _counters: bumped on every checkout
        # dead_on_checkout: idle connections the server had closed, found at
        # checkout and discarded with nothing sent; reconnects: first
        # statements a session ran again on another connection after that
        # (see Session); inherited_dropped: connections a forked child let go.
        self._counters = dict.fromkeys(
            ("timeouts", "connections_opened", "connections_closed",
             "connections_discarded", "rollbacks_on_checkin", "dead_on_checkout",
             "reconnects", "inherited_dropped"), 0)
        self._conns: set[PooledConnection] = set()  # every open connection, for fork
        _POOLS.add(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- checkout ---------------------------------------------------------------

    def _take_fresh(self):
        """The most recently returned connection when it is still fresh
        (the fast path), else None."""
        idle = self._idle
        if not idle or self._closed:
            return None
        pc = idle[-1]
        now = monotonic()
        if now - pc.returned > self.max_idle or now - pc.created > self.max_lifetime:
            return None
        idle.pop()
        pc.checked_out = True
        self._in_use += 1
        self._checkouts += 1
        return pc

    def _take(self, to_close):
        """An idle connection, or True when a slot was reserved for a new one,
        or None when the caller must wait.  Expired idle connections go to
        ``to_close`` (for the shell to close outside its lock)."""
        if self._closed:
            raise EngineClosed(f"the pool of {self.name} is closed")
        idle = self._idle
        while idle:
            pc = idle.pop()
            now = monotonic()
            if (now - pc.returned > self.max_idle and self._size > self.min_size) \
                    or now - pc.created > self.max_lifetime:
                self._size -= 1
                to_close.append(pc)
                continue
            pc.checked_out = True
            self._in_use += 1
            self._checkouts += 1
            return pc
        if self._size < self.max_size:
            self._size += 1  # reserved; the shell connects outside its lock
            return True
        return None

    def _may_wait(self) -> None:
        """Before a caller starts waiting for a free connection."""
        if self.max_waiting and self._waiting >= self.max_waiting:
            raise PoolTooManyWaiting(
                f"{self._waiting} callers already wait for a connection of "
                f"{self.name} (max_waiting={self.max_waiting})")

    def _timed_out(self) -> PoolTimeout:
        self._counters["timeouts"] += 1
        return PoolTimeout(f"no connection of {self.name} became free within {self.timeout:g} s "
                           f"(max_size={self.max_size}, all in use)")

    def _alive(self, pc) -> bool:
        """Whether idle ``pc`` may be handed out: its socket is quiet, or what
        waits there is harmless (the adapter reads it without sending)."""
        state = _socket_state(pc.fd)
        return not state or self._driver.idle_alive(pc.raw, state)

    def _dead(self, pc) -> None:
        """Undo the checkout of ``pc``, found closed by the server (the shell
        closes it)."""
        pc.checked_out = False
        pc.broken = True
        self._in_use -= 1
        self._size -= 1
        self._checkouts -= 1
        self._counters["dead_on_checkout"] += 1

    def _opened(self, raw, fd) -> PooledConnection:
        """A connection opened into a reserved slot, checked out."""
        pc = PooledConnection(raw, monotonic(), fd)
        pc.checked_out = True
        self._conns.add(pc)
        self._in_use += 1
        self._checkouts += 1
        self._counters["connections_opened"] += 1
        return pc

    def _open_failed(self) -> None:
        self._size -= 1

    # -- checkin and closing ------------------------------------------------

    def _returned(self, pc, ok: bool, rolled_back: bool, now: float) -> bool:
        """``pc`` came back (``ok``: still usable): whether it stays idle; if
        not, the shell closes it."""
        self._in_use -= 1
        if rolled_back:
            self._counters["rollbacks_on_checkin"] += 1
        if ok and not self._closed and now - pc.created <= self.max_lifetime:
            pc.returned = now
            self._idle.append(pc)
            return True
        self._size -= 1
        return False

    def _gone(self, pc, discarded: bool) -> None:
        """``pc`` is being closed."""
        self._conns.discard(pc)
        self._counters["connections_closed"] += 1
        if discarded:
            self._counters["connections_discarded"] += 1

    def _expired(self, now: float) -> list:
        """Take the idle connections past ``max_idle`` (beyond ``min_size``)
        or ``max_lifetime`` out of the pool, for the shell to close."""
        to_close = []
        keep = deque()
        # Oldest-returned first, so the min_size freshest ones survive.
        while self._idle:
            pc = self._idle.popleft()
            too_idle = now - pc.returned > self.max_idle and self._size > self.min_size
            if too_idle or now - pc.created > self.max_lifetime:
                self._size -= 1
                to_close.append(pc)
            else:
                keep.append(pc)
        self._idle = keep
        return to_close

    def _reap_interval(self) -> float:
        """Seconds between the reaper's rounds: a quarter of the shorter of
        ``max_idle`` and ``max_lifetime``, within 0.05 s and 60 s."""
        return min(max(min(self.max_idle, self.max_lifetime) / 4, 0.05), 60.0)

    def _shut(self) -> list:
        """Close the pool: the idle connections, for the shell to close (or
        None when it was closed already)."""
        if self._closed:
            return None
        self._closed = True
        idle = list(self._idle)
        self._idle.clear()
        self._size -= len(idle)
        return idle

    def _forget_inherited(self) -> list:
        """In a forked child: let go of every connection the parent opened;
        returns the idle ones, which nobody holds (the shell may close them).

        Their descriptors are pointed at /dev/null first, so that neither
        closing them nor a session of the parent's that the child still
        holds can send anything to the parent's server sessions (a psycopg
        or mysqlclient close sends a goodbye message that would end them)."""
        inherited, self._conns = self._conns, set()
        idle = [pc for pc in self._idle if not pc.checked_out]
        self._idle = deque()
        self._size = self._in_use = self._waiting = 0
        self._counters["inherited_dropped"] += len(inherited)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            for pc in inherited:
                pc.inherited = pc.broken = True
                try:
                    # Only while the descriptor is still this connection's:
                    # a number a closed connection gave up may be reused.
                    if pc.fd >= 0 and self._driver.socket_fd(pc.raw) == pc.fd:
                        os.dup2(devnull, pc.fd)
                except Exception:
                    pass
        finally:
            os.close(devnull)
        return idle

    def _stats(self) -> dict:
        out = {
            "max_size": self.max_size,
            "size": self._size,
            "idle": len(self._idle),
            "in_use": self._in_use,
            "waiting": self._waiting,
        }
        out["checkouts"] = self._checkouts
        out.update(self._counters)
        return out


class Pool(PoolState):
    """The thread-safe pool: ``PoolState`` under a lock, with the driver
    calls, waiting, the reaper thread and fork handling."""

    def __init__(self, driver, **options):
        super().__init__(driver, **options)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Sessions collected without close() leave their connection here
        # (deque.append is atomic, so no lock is taken inside __del__).
        self._orphans: deque = deque()
        self._reaper: threading.Thread | None = None
        self._stop_reaper = threading.Event()

    # -- checkout / checkin -------------------------------------------------

    def checkout(self) -> PooledConnection:
        if self._orphans:
            self._adopt_orphans()
        while True:
            # acquire/release, not ``with``: half the cost on this hot path.
            lock = self._lock
            lock.acquire()
            try:
                pc = self._take_fresh()
            finally:
                lock.release()
            if pc is None:
                return self._checkout_slow()
            state = _socket_state(pc.fd)  # (self._alive(pc), inlined on the fast path)
            if not state or self._driver.idle_alive(pc.raw, state):
                return pc
            self._drop_dead(pc)

    def _checkout_slow(self) -> PooledConnection:
        """Checkout when the fast path could not serve: expired idle
        connections, a new connection to open, or a wait for a free one."""
        deadline = None
        while True:
            to_close = []
            try:
                with self._lock:
                    while True:
                        pc = self._take(to_close)
                        if pc is not None:
                            break
                        if deadline is None:
                            self._may_wait()
                            deadline = monotonic() + self.timeout
                        remaining = deadline - monotonic()
                        if remaining <= 0:
                            raise self._timed_out()
                        self._waiting += 1
                        try:
                            self._cond.wait(remaining)
                        finally:
                            self._waiting -= 1
            finally:
                for expired in to_close:
                    self._close_raw(expired, discarded=expired.broken)
            if pc is True:
                return self._open()
            if self._alive(pc):
                return pc
            self._drop_dead(pc)

    def _drop_dead(self, pc: PooledConnection) -> None:
        with self._lock:
            self._dead(pc)
            if self._waiting:
                self._cond.notify()
        self._close_raw(pc, discarded=True)

    def _open(self) -> PooledConnection:
        """Open a connection into a slot the caller reserved."""
        driver = self._driver
        try:
            raw = driver.connect()
            try:
                fd = driver.socket_fd(raw)
            except BaseException:
                driver.close(raw)
                raise
        except BaseException:
            with self._lock:
                self._open_failed()
                self._cond.notify()
            raise
        with self._lock:
            pc = self._opened(raw, fd)
            closed = self._closed
        if closed:
            self.checkin(pc)
            raise EngineClosed(f"the pool of {self.name} is closed")
        if self._reaper is None:
            self._start_reaper()
        return pc

    def count_reconnect(self) -> None:
        """A session ran its first statement again on another connection."""
        with self._lock:
            self._counters["reconnects"] += 1

    def checkin(self, pc: PooledConnection, in_transaction: bool | None = None) -> None:
        """Give ``pc`` back.  ``in_transaction`` is the caller's knowledge of
        whether the connection carries an open transaction (None: unknown);
        the driver rolls it back when needed before anyone else gets it."""
        if not pc.checked_out:
            raise RuntimeError("connection returned to the pool twice")
        pc.checked_out = False
        if pc.inherited:
            return  # the parent's: forgotten at fork, counted and closed then
        ok = not pc.broken
        rolled_back = False
        if ok:
            try:
                state = self._driver.reset(pc.raw, in_transaction)
            except Exception:
                state = False
            rolled_back = state is None  # reset() rolled back; the connection is fine
            ok = state is not False
        lock = self._lock
        lock.acquire()
        try:
            kept = self._returned(pc, ok, rolled_back, monotonic())
            if self._waiting:
                self._cond.notify()
        finally:
            lock.release()
        if not kept:
            self._close_raw(pc, discarded=pc.broken or not ok)

    def release_orphan(self, pc: PooledConnection, in_transaction: bool | None) -> None:
        """Called from a session's ``__del__``: defer the checkin to a safe moment."""
        self._orphans.append((pc, in_transaction))

    def _adopt_orphans(self) -> None:
        while True:
            try:
                pc, in_tx = self._orphans.popleft()
            except IndexError:
                return
            if pc.checked_out:
                self.checkin(pc, in_tx)

    # -- maintenance --------------------------------------------------------

    def _close_raw(self, pc: PooledConnection, discarded: bool = False) -> None:
        with self._lock:
            self._gone(pc, discarded)
        try:
            self._driver.close(pc.raw)
        except Exception:
            pass  # a connection that fails to close is gone all the same

    def reap(self) -> int:
        """Close idle connections past ``max_idle`` or ``max_lifetime``; return how many."""
        if self._orphans:
            self._adopt_orphans()
        with self._lock:
            to_close = self._expired(monotonic())
        for pc in to_close:
            self._close_raw(pc)
        return len(to_close)

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None or self._closed:
                return
            interval = self._reap_interval()
            self._reaper = threading.Thread(
                target=_reap_loop, args=(weakref.ref(self), self._stop_reaper, interval),
                name=f"fastsess-reaper {self.name}", daemon=True)
        self._reaper.start()

    def prefill(self) -> None:
        """Open connections up to ``min_size`` now (fails fast on bad settings)."""
        opened = []
        try:
            while True:
                with self._lock:
                    if self._size >= self.min_size or self._closed:
                        break
                    self._size += 1
                opened.append(self._open())
        finally:
            for pc in opened:
                self.checkin(pc, False)

    def close(self) -> None:
        """Close idle connections now; in-use ones are closed when returned.
        Idempotent.  Waiting callers get ``EngineClosed``."""
        with self._lock:
            idle = self._shut()
            if idle is None:
                return
            self._cond.notify_all()
        self._stop_reaper.set()
        for pc in idle:
            self._close_raw(pc)

    def stats(self) -> dict:
        with self._lock:
            return self._stats()

    # -- fork ---------------------------------------------------------------

    def _forget_inherited(self) -> list:
        """``PoolState._forget_inherited``, then the idle connections closed
        (they write to /dev/null now).  The locks may have been held by a
        thread that does not exist in the child, so they are made anew, and
        so is the reaper."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._reaper = None
        self._stop_reaper = threading.Event()
        self._orphans = deque()
        idle = super()._forget_inherited()
        for pc in idle:
            try:
                self._driver.close(pc.raw)
            except Exception:
                pass
        return idle


#: Every pool of this process, told of a fork in the child.
_POOLS: weakref.WeakSet = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reap_loop(pool_ref, stop: threading.Event, interval: float) -> None:
    # Holds only a weak reference so an abandoned pool can still be collected.
    while not stop.wait(interval):
        pool = pool_ref()
        if pool is None:
            return
        try:
            pool.reap()
        except Exception:
            pass
        del pool
