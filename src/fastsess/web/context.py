"""The running request's session: the record the middlewares keep of it, and
``db``, the proxy application code reads it through.

A middleware opens one session per request and makes it current for the
request's task (ASGI) or thread (WSGI) with ``fastsess.current.push``, so
scopes, ``atomic`` blocks and ``current_session`` inside the request reuse
it.  It also records the session here, because ``db.session`` has no engine
to ask ``fastsess.current`` about: the innermost request being served in
this task or thread is the answer.  The record is the core's own frame, so
it follows the same visibility rule (``fastsess.current``): only the task
or thread that made it current sees it, and it is dead once the request's
scope ended.
"""

from __future__ import annotations

from contextvars import ContextVar

from ..current import ENGINE, LIVE, OWNER, SESSION, owner, pop, push
from ..errors import SessionNotFound

# (frame, outer record) for the innermost request scope of this context, or
# None.  More than one when middlewares for several engines are stacked.
_REQUEST: ContextVar = ContextVar("fastsess_web_request", default=None)

_INSIDE = ("use it inside a request served by fastsess.web.ASGISessionMiddleware or "
           "WSGISessionMiddleware")


class RequestSessionNotFound(SessionNotFound):
    """No request session here: outside a request, in a request that no
    fastsess middleware serves, or in another task or thread than the
    request's own."""


class RequestScope:
    """One request's session, current for the running task or thread from
    its creation until ``end``.

    ``end`` may run in another context than the one that made the scope
    (an ASGI ``send`` called from a child task): the session then stops
    being current everywhere at once, but the variables of the opening
    context are only reset when ``end`` runs again there, which the
    middlewares do last."""

    __slots__ = ("engine", "session", "_pushed", "_token")

    def __init__(self, engine, session):
        self.engine = engine
        self.session = session
        self._pushed = push(engine, session)
        self._token = _REQUEST.set((self._pushed[0], _REQUEST.get()))

    def end(self) -> None:
        """Stop the session being current (it is not closed here)."""
        if self._token is None:
            return  # done, in the opening context
        pop(self._pushed)  # the frame is dead everywhere; reset here if this is its context
        try:
            _REQUEST.reset(self._token)
        except ValueError:  # another context: the next end() in the opening one resets
            return
        self._token = None


def find(using=None, *, strict=True):
    """The request's session in this task or thread; ``using`` (an engine,
    or an engine's name) picks a middleware's when several are stacked.
    None when there is none and not ``strict``."""
    entry = _REQUEST.get()
    me = owner()
    stale = other = False
    while entry is not None:
        frame, entry = entry
        engine = frame[ENGINE]
        if using is not None and engine is not using and getattr(engine, "name", None) != using:
            continue
        if frame[OWNER] != me:
            other = True
        elif not frame[LIVE]:
            stale = True
        else:
            return frame[SESSION]
    if not strict:
        return None
    if other:
        raise RequestSessionNotFound(
            "the request's session is current only in the request's own task or thread, and "
            "this code runs in another one (a child task: a task group, a streaming body run "
            "in a task, Starlette's BaseHTTPMiddleware between the session middleware and the "
            "app): take db.session in the endpoint and pass it on, or make it current there "
            "with async_session_scope(session=...)")
    if stale:
        raise RequestSessionNotFound(
            "the request's session was closed when its response was sent; code that runs "
            "after the response (background tasks) opens a scope of its own")
    which = "" if using is None else f" for {using!r}"
    raise RequestSessionNotFound(f"no request session{which} in this task or thread: "
                                 f"db.session is only available inside a request; {_INSIDE}")


class RequestDB:
    """``db.session``: the session of the request being served in this task
    or thread (``RequestSessionNotFound`` elsewhere, a ``SessionNotFound``);
    ``db.get_session(using)`` picks one of several stacked middlewares."""

    __slots__ = ()

    @property
    def session(self):
        return find()

    def get_session(self, using=None):
        return find(using)

    def __repr__(self) -> str:
        return "<fastsess.web.db>"


db = RequestDB()
