"""``session_manager``: commit on success, roll back on error, always close."""

from __future__ import annotations

import logging

from . import context as _context
from .counters import failures as _failures

LOG = logging.getLogger("fastsess.scope")
_next = next
_current_frame = _context._CURRENT.get
_lookup = _context.lookup


class session_manager:
    """``with session_manager(engine) as session: ...``

    Without a ``session`` and with none current for this engine in the
    running task or thread (made current by ``session_scope``,
    ``with_session`` or ``atomic``, see ``fastsess.context``) or stored for
    this thread, opens a new session, yields it, commits when the block
    succeeds, rolls back (and re-raises) when it raises, and always closes
    it.  With a given, current or stored session, yields that session
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
            frame = None
            if _current_frame() is not None:  # a scope made a session current somewhere up
                frame = _lookup(self._engine)
            if frame is not None:
                session = frame[_context.SESSION]  # None: hidden (on_commit callbacks run so)
            else:
                storage = self._engine._storage
                if storage._stored:  # skip the thread-local lookup while nothing is stored
                    session = storage.find_session()
            if session is None:
                session = self._session = self._engine.get_session()
                self._owned = True
                return session
            self._session = session
        return session

    def __exit__(self, exc_type, exc, tb):
        if not self._owned:
            return False
        session = self._session
        try:
            if exc_type is None:
                try:
                    session.commit()
                except BaseException:
                    _quiet_rollback(session)
                    raise
            else:
                if session._dirty:  # work was done: a failed transaction
                    _next(_failures)
                _quiet_rollback(session)
        finally:
            session.close()
        return False


def _quiet_rollback(session) -> None:
    # The error that brought us here is the one the caller must see; a
    # rollback that fails as well (lost connection) is logged, and close()
    # discards the connection.
    try:
        session.rollback()
    except Exception:
        LOG.warning("rollback failed while handling an error", exc_info=True)
