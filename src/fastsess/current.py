"""The current session: which session a scope, an atomic block or
``session_manager`` reuses, per thread and per asyncio task.  One lookup,
``current(engine)``, answers for all of them.

Two places can hold a current session for an engine:

- **Frames**, pushed by the scopes (``session_scope``, ``with_session``,
  ``atomic``) on a contextvar while their block runs;
- **the engine's storage**, ``SessionThreadStorage`` (one session per
  thread, RESTAlchemy's API: ``store_session``/``get_session``/...), or its
  task-local twin ``SessionContextStorage``.

A frame wins over the storage.

Visibility rule — a current session belongs to the task or thread that made
it current, and only there is it found:

- **Nested scopes** in the same task or thread see it and reuse it.
- **A child asyncio task** sees none of its parent's sessions, although it
  starts with a copy of the parent's context: a session and its transaction
  must not be used by two tasks at once (their statements and savepoints
  would interleave).  Scopes in the child open a session (a connection and a
  transaction) of their own, which commits or rolls back on its own.
- **Another thread** sees none either, whether it started with an empty
  context (``threading.Thread``, ``ThreadPoolExecutor``) or with a copy of
  the caller's (``asyncio.to_thread``, ``contextvars.copy_context().run``).
- **To share on purpose**, hand the session over and make it current there:
  ``with session_scope(session=s): ...`` in the child (or pass it to a
  ``with_session`` function).  The caller then guarantees that the two
  never use it at the same time.
- A scope's session stops being current when the scope exits, also for
  tasks that copied the context earlier.

"Task" means an asyncio task; code the event loop runs outside any task
(``call_soon`` callbacks) and other schedulers' tasks (trio, gevent) count
as the thread they run on.  Each engine has its own storage, so a session
stored for one engine is never picked up by another (RESTAlchemy keeps one
slot shared by all engines; its drop-in mode provides that behaviour).
"""

from __future__ import annotations

import threading
from asyncio import _get_running_loop, current_task
from contextvars import ContextVar

from .errors import SessionConflict, SessionNotFound

_get_ident = threading.get_ident

#: The innermost frame of the running context, or None.
_CURRENT: ContextVar = ContextVar("fastsess_current_session", default=None)
#: Whether any frame is pushed in the running context (cheap test first).
any_frame = _CURRENT.get


def owner():
    """Who is running: the current asyncio task, else the thread's ident."""
    loop = _get_running_loop()
    if loop is not None:
        task = current_task(loop)
        if task is not None:
            return task
    return _get_ident()


# A frame is a list (cheaper to make than an object, and mutable):
# [engine, session, owner, parent frame, live].  A session of None hides
# the outer sessions of that engine (on_commit callbacks run so); ``live``
# turns False when the scope exits, for every context that copied it.
ENGINE, SESSION, OWNER, PARENT, LIVE = range(5)


def lookup(engine):
    """The innermost live frame for ``engine`` that the running task or
    thread made current (``frame[SESSION]`` is its session), or None."""
    frame = _CURRENT.get()
    if frame is None:
        return None
    me = owner()
    while frame is not None:
        if frame[0] is engine and frame[4] and frame[2] == me:
            return frame
        frame = frame[3]
    return None


def current(engine):
    """The session to reuse for ``engine`` here: the one a scope made current
    in this task or thread, else the one stored in the engine's storage,
    else None.  (A frame whose session is None hides the stored one: on_commit
    callbacks run so.)"""
    if _CURRENT.get() is not None:
        frame = lookup(engine)
        if frame is not None:
            return frame[SESSION]
    storage = engine._storage
    if storage._stored:  # skip the thread-local lookup while nothing is stored
        return storage.find_session()
    return None


def push(engine, session):
    """Make ``session`` current for ``engine`` here; returns what ``pop`` takes."""
    loop = _get_running_loop()
    me = (current_task(loop) if loop is not None else None) or _get_ident()
    frame = [engine, session, me, _CURRENT.get(), True]
    return frame, _CURRENT.set(frame)


def pop(pushed) -> None:
    frame, token = pushed
    frame[4] = False  # dead for every context that copied it, too
    try:
        _CURRENT.reset(token)
    except (ValueError, RuntimeError):
        # Exited in another context than it was entered in: the frame is
        # already invisible (not live); the other context drops it itself.
        pass


class SessionThreadStorage:
    """One session per thread: ``store_session``, ``get_session``,
    ``find_session``, ``remove_session``, ``pop_session``."""

    __slots__ = ("_local", "_stored", "_lock")

    def __init__(self):
        self._local = threading.local()
        # Sessions stored across all threads: lets current() skip the
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


class SessionContextStorage:
    """One session per asyncio task (or thread): the task-local twin of
    ``SessionThreadStorage`` with the same calls.

    A session stored here is seen by the task or thread that stored it, not
    by child tasks or threads (see the module docstring); each of them may
    store its own.
    """

    __slots__ = ("_var", "_stored")

    def __init__(self):
        self._var = ContextVar(f"fastsess_session_storage_{id(self):x}", default=None)
        self._stored = True  # current() always looks: cheap enough for a contextvar

    def find_session(self):
        """The stored session, or None."""
        entry = self._var.get()
        if entry is None or entry[1] != owner():
            return None
        return entry[0]

    def get_session(self):
        session = self.find_session()
        if session is None:
            raise SessionNotFound("no session is stored for this task")
        return session

    def store_session(self, session):
        current = self.find_session()
        if current is not None:
            raise SessionConflict(f"another session is already stored for this task: {current!r}")
        self._var.set((session, owner()))
        return session

    def remove_session(self) -> None:
        if self.find_session() is not None:
            self._var.set(None)

    def pop_session(self):
        session = self.get_session()
        self._var.set(None)
        return session
