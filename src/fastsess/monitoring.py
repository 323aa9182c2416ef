"""Session statistics and leak warnings: ``get_session_stats``, ``reset_session_stats``.

Counters are always kept (each is one C-level increment on the paths it
counts, see ``fastsess.counters``).  Two things cost more and are off by
default, switched on with ``configure_session``:

- ``enable_monitoring=True``: commit and rollback latencies (the driver
  call, in ms; the last 10,000 of each) for the percentiles;
- ``track_leaks=True``: each session records where it was opened (a stack
  walk, tens of µs per session: for finding a leak, not for production
  all the time).  A session garbage-collected without ``close()`` is then
  reported as a WARNING on the ``fastsess.monitoring`` logger naming where
  it was opened; with ``leak_threshold=S`` too, so is a session held open
  longer than ``S`` seconds (once per session).  A background thread checks
  every ``min(S / 2, 5)`` seconds; ``check_sessions()`` checks now.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
import weakref
from collections import deque
from time import monotonic

from . import counters, registry
from . import session as _session_module

LOG = logging.getLogger("fastsess.monitoring")

LATENCY_SAMPLES = 10_000
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_baseline = dict.fromkeys(counters.NAMES, 0)
_lock = threading.Lock()


class _Opened:
    """A tracked session: a weak reference, when and where it was opened."""

    __slots__ = ("ref", "since", "stack", "warned")

    def __init__(self, ref, since, stack):
        self.ref = ref
        self.since = since
        self.stack = stack
        self.warned = False


class Monitor:
    """Receives the session layer's events while monitoring or leak tracking
    is on (installed as ``fastsess.session._monitor``)."""

    def __init__(self):
        self.timing = False
        self.tracking = False
        self.threshold = None
        self.commit_times = deque(maxlen=LATENCY_SAMPLES)
        self.rollback_times = deque(maxlen=LATENCY_SAMPLES)
        self._open = {}  # id(session) -> _Opened
        self._collected = deque()  # _Opened of sessions collected unclosed, to report
        self._prune_at = 1024
        self._stop = None
        self._check_lock = threading.Lock()  # never taken from __del__

    # -- events from Session (no locks: __del__ calls collected_open) --------

    def opened(self, session) -> None:
        if not self.tracking:
            return
        self._open[id(session)] = _Opened(weakref.ref(session), monotonic(), _where())
        if len(self._open) >= self._prune_at:
            self._prune()
            self._prune_at = max(1024, 2 * len(self._open))
        if self._collected:
            self._report_collected()

    def collected_open(self, session) -> None:
        entry = self._open.pop(id(session), None)
        if entry is not None:
            self._collected.append(entry)  # reported later: logging from __del__ is unsafe

    def commit_latency(self, seconds: float) -> None:
        if self.timing:
            self.commit_times.append(seconds)

    def rollback_latency(self, seconds: float) -> None:
        if self.timing:
            self.rollback_times.append(seconds)

    # -- checks ---------------------------------------------------------------

    def _prune(self) -> None:
        for key, entry in list(self._open.items()):
            session = entry.ref()
            if session is None or session._closed:
                if self._open.get(key) is entry:
                    self._open.pop(key, None)

    def _report_collected(self) -> int:
        n = 0
        while True:
            try:
                entry = self._collected.popleft()
            except IndexError:
                return n
            n += 1
            LOG.warning("a session was garbage-collected without close(); it was opened at:\n%s",
                        _format(entry.stack))

    def check(self) -> int:
        """Report sessions collected unclosed, and those open longer than
        the threshold (once each); returns how many warnings were logged."""
        n = self._report_collected()
        threshold = self.threshold
        now = monotonic()
        with self._check_lock:  # the watchdog and check_sessions() may meet here
            for key, entry in list(self._open.items()):
                session = entry.ref()
                if session is None or session._closed:
                    if self._open.get(key) is entry:
                        self._open.pop(key, None)
                    continue
                if threshold is None or entry.warned or now - entry.since <= threshold:
                    continue
                entry.warned = True
                n += 1
                LOG.warning("a session has been open for %.1f s (leak_threshold %g s); "
                            "it was opened at:\n%s", now - entry.since, threshold,
                            _format(entry.stack))
        return n

    def tracked(self) -> int:
        """Sessions tracked as open now."""
        return sum(1 for entry in list(self._open.values())
                   if (s := entry.ref()) is not None and not s._closed)

    # -- the watchdog ---------------------------------------------------------

    def start_watchdog(self) -> None:
        self.stop_watchdog()
        interval = 1.0 if self.threshold is None else min(max(self.threshold / 2, 0.05), 5.0)
        stop = self._stop = threading.Event()
        thread = threading.Thread(target=_watch, args=(weakref.ref(self), stop, interval),
                                  name="fastsess-leak-watchdog", daemon=True)
        thread.start()

    def stop_watchdog(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None


def _watch(monitor_ref, stop, interval) -> None:
    while not stop.wait(interval):
        monitor = monitor_ref()
        if monitor is None:
            return
        try:
            monitor.check()
        except Exception:  # a failing check must not kill the thread
            LOG.debug("leak check failed", exc_info=True)
        del monitor


def _where(limit: int = 8):
    """The caller's stack outside fastsess, innermost first (lines read lazily)."""
    frames = []
    for frame, lineno in traceback.walk_stack(sys._getframe(2)):
        if frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            continue
        frames.append((frame, lineno))
        if len(frames) >= limit:
            break
    return traceback.StackSummary.extract(iter(frames), lookup_lines=False)


def _format(stack) -> str:
    # Outermost call first, as tracebacks read.
    return "".join(traceback.format_list(list(reversed(stack)))).rstrip()


_MONITOR = Monitor()


def _apply(settings) -> None:
    """Install or remove the monitor after configure_session changed it."""
    m = _MONITOR
    m.timing = settings.enable_monitoring
    m.threshold = settings.leak_threshold
    if m.tracking and not settings.track_leaks:
        m._open.clear()
        m._collected.clear()
    m.tracking = settings.track_leaks
    if m.tracking:
        m.start_watchdog()
    else:
        m.stop_watchdog()
    _session_module._monitor = m if (m.timing or m.tracking) else None


def check_sessions() -> int:
    """Report leaks now (with ``track_leaks``): sessions collected without
    ``close()`` and sessions open longer than ``leak_threshold``.  Returns
    the number of warnings logged."""
    if not _MONITOR.tracking:
        return 0
    return _MONITOR.check()


def _percentiles(samples) -> dict:
    values = sorted(samples)
    n = len(values)
    if not n:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}

    def rank(p):
        return values[min(n - 1, max(0, -(-n * p // 100) - 1))] * 1000.0  # nearest rank, ms

    return {"count": n, "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": values[-1] * 1000.0}


def get_session_stats() -> dict:
    """Session health since the last ``reset_session_stats()``.

    - ``session_count``: sessions opened (a closed session used again counts again);
    - ``active_sessions``: sessions open now (opened, not yet closed or
      collected), whatever the reset;
    - ``total_transactions`` = ``committed_transactions`` + ``failed_transactions``:
      transactions with work in them that committed, or failed (a scope
      rolled back because its block raised, a COMMIT raised, or a commit was
      refused because the transaction was aborted).  A rollback asked for
      without an error (``rollback()``, closing with work pending) is neither;
      ``rollbacks`` counts every ``rollback()`` that ended work;
    - ``success_rate``: committed / total in percent (100.0 with no transactions);
    - ``retries``: units of work run again; ``savepoints`` and
      ``savepoint_rollbacks``: nested atomic blocks and those rolled back;
    - ``commit_latency_ms`` / ``rollback_latency_ms``: count, p50, p90, p99,
      max of the driver's commit/rollback calls, or None while
      ``enable_monitoring`` is off;
    - ``leak_tracking``: whether ``track_leaks`` is on, and ``tracked_open_sessions``;
    - ``engines``: each registered engine's ``pool_stats()``, by name;
      ``async_engines``: the same for the async engines made for those names.
    """
    now = counters.snapshot()
    with _lock:
        base = dict(_baseline)
    d = {name: now[name] - base[name] for name in counters.NAMES}
    total = d["commits"] + d["failures"]
    m = _MONITOR
    engines = {}
    factory = registry.engine_factory
    for name in factory.names():
        try:
            engines[name] = factory.get_engine(name).pool_stats()
        except Exception:  # destroyed meanwhile
            continue
    async_engines = {name: engine.pool_stats() for name, engine in list(factory._async.items())}
    return {
        "session_count": d["sessions_opened"],
        "active_sessions": now["sessions_opened"] - now["sessions_closed"],
        "total_transactions": total,
        "committed_transactions": d["commits"],
        "failed_transactions": d["failures"],
        "success_rate": 100.0 * d["commits"] / total if total else 100.0,
        "rollbacks": d["rollbacks"],
        "retries": d["retries"],
        "savepoints": d["savepoints"],
        "savepoint_rollbacks": d["savepoint_rollbacks"],
        "commit_latency_ms": _percentiles(list(m.commit_times)) if m.timing else None,
        "rollback_latency_ms": _percentiles(list(m.rollback_times)) if m.timing else None,
        "leak_tracking": m.tracking,
        "tracked_open_sessions": m.tracked() if m.tracking else None,
        "engines": engines,
        "async_engines": async_engines,
    }


def reset_session_stats() -> None:
    """Start the counts and latency samples afresh (``active_sessions`` is
    a gauge and is not reset)."""
    now = counters.snapshot()
    with _lock:
        _baseline.update(now)
    _MONITOR.commit_times.clear()
    _MONITOR.rollback_times.clear()
