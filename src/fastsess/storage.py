"""Where the "current session" of a thread is kept.

Each engine has its own ``SessionThreadStorage``, so a session stored for one
engine is never picked up by another.  (RESTAlchemy keeps one slot shared by
all engines; the RESTAlchemy drop-in mode provides that behaviour.)
"""

from __future__ import annotations

import threading


class SessionConflict(Exception):
    """A session is already stored for this thread."""


class SessionNotFound(Exception):
    """No session is stored for this thread."""


class SessionThreadStorage:
    """One session per thread: ``store_session``, ``get_session``,
    ``remove_session``, ``pop_session``."""

    __slots__ = ("_local", "_stored", "_lock")

    def __init__(self):
        self._local = threading.local()
        # Sessions stored across all threads: lets session_manager skip the
        # thread-local lookup in the common case where nothing is stored.
        self._stored = 0
        self._lock = threading.Lock()

    def get_session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            raise SessionNotFound("no session is stored for this thread")
        return session

    def find_session(self):
        """The stored session, or None."""
        return getattr(self._local, "session", None)

    def store_session(self, session):
        current = getattr(self._local, "session", None)
        if current is not None:
            raise SessionConflict(f"another session is already stored for this thread: {current!r}")
        with self._lock:
            self._local.session = session
            self._stored += 1
        return session

    def remove_session(self) -> None:
        with self._lock:
            if getattr(self._local, "session", None) is not None:
                self._stored -= 1
            self._local.session = None

    def pop_session(self):
        session = self.get_session()
        self.remove_session()
        return session
