"""The "current session" of each asyncio task and thread, kept in a contextvar.

``session_scope``, ``with_session`` and ``atomic`` open a session only when
none is current for their engine in the running task or thread; otherwise
they reuse it (and ``engine.session_manager()`` joins it too).  Which
session is current is kept here.

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
as the thread they run on.
"""

from __future__ import annotations

import threading
from asyncio import _get_running_loop, current_task
from contextvars import ContextVar

from .storage import SessionConflict, SessionNotFound

_get_ident = threading.get_ident

#: The innermost frame of the running context, or None.
_CURRENT: ContextVar = ContextVar("fastsess_current_session", default=None)


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


def find_session(engine):
    """The current session for ``engine`` in this task or thread, or None."""
    frame = lookup(engine)
    return None if frame is None else frame[1]


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


class SessionContextStorage:
    """One session per asyncio task (or thread): the task-local twin of
    ``SessionThreadStorage`` with the same calls, ``store_session``,
    ``get_session``, ``find_session``, ``remove_session``, ``pop_session``.

    A session stored here is seen by the task or thread that stored it, not
    by child tasks or threads (see the module docstring); each of them may
    store its own.
    """

    __slots__ = ("_var",)

    def __init__(self):
        self._var = ContextVar(f"fastsess_session_storage_{id(self):x}", default=None)

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
