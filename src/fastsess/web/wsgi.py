"""``WSGISessionMiddleware``: a session per WSGI request that commits before
the first byte of the response goes out.

For each request the middleware takes a new session from its engine (no
connection until the app's first statement: a request that never queries
takes none) and makes it current for the request's thread, so
``session_scope``, ``with_session``, ``atomic``, ``session_manager`` and
``current_session`` in the app use it, and ``fastsess.web.db.session``
returns it.

Commit before the response: the status and headers the app passes to
``start_response`` are held, and so is the body until its first non-empty
chunk (or its end).  Then the transaction is settled — committed, or rolled
back when an exception was raised, ``start_response`` got ``exc_info``, or
the status is at least ``rollback_on_status`` — and only then does the
server get the status, headers and chunk.  A COMMIT that fails is logged
and becomes a ``500 Internal Server Error`` (``start_response`` is called
with the error's ``exc_info``); nothing of the app's response is sent and
its iterable is closed.

A body given as a list or tuple (or the server's ``wsgi.file_wrapper``) is
complete when the app returns: the request is settled and its session closed
right there, and the body goes to the server unwrapped.  Any other iterable
is wrapped; its ``close()`` (which servers call, PEP 3333) closes the app's
iterable, then the session.  The app's code that runs while the body is
iterated (a generator) still sees the session as current; servers iterate in
the thread that called the app.

Streaming: when the app yields many chunks, the commit happens before the
first one.  What the app does on the session while producing the later
chunks is not committed: it is rolled back when the session closes.
"""

from __future__ import annotations

import logging

from ..registry import resolve_engine
from .context import RequestScope

LOG = logging.getLogger("fastsess.web")

ERROR_STATUS = "500 Internal Server Error"
ERROR_BODY = b"Internal Server Error"
ERROR_HEADERS = [("Content-Type", "text/plain; charset=utf-8"),
                 ("Content-Length", str(len(ERROR_BODY)))]


class WSGISessionMiddleware:
    """``app = WSGISessionMiddleware(app, using="default", rollback_on_status=400)``
    (see the module docstring).

    ``using``: an engine name in the registry or an Engine, resolved on each
    request.  ``rollback_on_status``: responses with this status or a higher
    one roll back (None: only exceptions roll back).
    """

    def __init__(self, app, using="default", *, rollback_on_status=400):
        self.app = app
        self.using = using
        self.rollback_on_status = rollback_on_status

    def __call__(self, environ, start_response):
        engine = resolve_engine(self.using)
        exchange = _Exchange(self.rollback_on_status, start_response,
                             RequestScope(engine, engine.get_session()))
        try:
            result = self.app(environ, exchange.start_response)
        except BaseException:
            exchange.end(failed=True)
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if type(result) in (list, tuple) or \
                (isinstance(wrapper, type) and isinstance(result, wrapper)):
            return exchange.complete(result)  # the whole body is known already
        return _Body(exchange, result)


class _Exchange:
    """One request's response on its way out: the held status and headers,
    and the request's transaction, settled once before the first byte."""

    __slots__ = ("rollback_on_status", "server_start_response", "scope", "status", "headers",
                 "error", "server_write", "sent", "failed", "ended")

    def __init__(self, rollback_on_status, server_start_response, scope):
        self.rollback_on_status = rollback_on_status
        self.server_start_response = server_start_response
        self.scope = scope
        self.status = self.headers = self.server_write = None
        self.error = False    # the app reported an error (exc_info)
        self.sent = False     # the server has the app's status and headers
        self.failed = False   # the commit failed: the server has our 500 instead
        self.ended = False    # the session is closed and no longer current

    def start_response(self, status, headers, exc_info=None):
        """The ``start_response`` the app calls: holds what it is given."""
        if exc_info is not None:
            if self.sent:  # too late to change them: the server raises exc_info
                return self.server_start_response(status, headers, exc_info)
            self.error = True
        elif self.status is not None and not self.sent:
            raise AssertionError("start_response() called again without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def write(self, data) -> None:
        """The legacy ``write()`` callable the app got from ``start_response``."""
        if not self.sent and not self.failed and not self.flush():
            self.server_write(ERROR_BODY)
        if self.sent and data:
            self.server_write(data)

    def flush(self) -> bool:
        """Settle the transaction and hand the status and headers to the
        server; False when the commit failed: the server then has our 500's
        status and headers, and the caller sends ``ERROR_BODY``."""
        if self.status is None:
            raise AssertionError("the application sent its body before calling start_response()")
        error = self.settle()
        if error is None:
            self.server_write = self.server_start_response(self.status, self.headers)
            self.sent = True
            return True
        self.failed = True
        self.end(failed=False)  # (rolled back by settle) before the client has the 500
        self.server_write = self.server_start_response(
            ERROR_STATUS, list(ERROR_HEADERS), (type(error), error, error.__traceback__))
        return False

    def settle(self):
        """Commit, or roll back when the response says so; the commit's
        error (logged), or None."""
        session = self.scope.session
        limit = self.rollback_on_status
        if self.error or (limit is not None and int(self.status[:3]) >= limit):
            _quiet_rollback(session)
            return None
        try:
            session.commit()
        except Exception as e:
            LOG.exception("the request's commit failed; responding 500 instead")
            _quiet_rollback(session)
            return e
        return None

    def complete(self, body):
        """The app returned its whole body: settle, end, and pass it on."""
        failing = False  # whether this call's commit failed (write() may have failed before)
        try:
            if not self.sent and not self.failed and self.status is not None:
                failing = not self.flush()
        except BaseException:
            self.end(failed=True)
            raise
        # (no start_response at all: a broken app, which the server reports)
        self.end(failed=not self.sent)
        if not self.failed:
            return body
        _close(body)  # nothing of it goes out
        return [ERROR_BODY] if failing else []

    def end(self, failed) -> None:
        """Roll back what is left if ``failed``, close the session, stop it
        being current.  Idempotent."""
        if self.ended:
            return
        self.ended = True
        session = self.scope.session
        try:
            if failed:
                _quiet_rollback(session)
        finally:
            try:
                session.close()
            finally:
                self.scope.end()


class _Body:
    """The app's body iterable, held until its first non-empty chunk."""

    __slots__ = ("exchange", "result", "closed")

    def __init__(self, exchange, result):
        self.exchange = exchange
        self.result = result
        self.closed = False

    def __iter__(self):
        exchange = self.exchange
        try:
            for chunk in self.result:
                if exchange.sent:
                    yield chunk
                elif exchange.failed:  # (through the app's write())
                    return
                elif chunk:
                    if not exchange.flush():
                        yield ERROR_BODY  # and nothing of the app's body
                        return
                    yield chunk
            if not exchange.sent and not exchange.failed and exchange.status is not None:
                if not exchange.flush():
                    yield ERROR_BODY
        except BaseException:
            if not exchange.sent:
                exchange.end(failed=True)  # rolled back before the server's error page
            raise

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            _close(self.result)
        finally:
            self.exchange.end(failed=not self.exchange.sent)


def _close(result) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _quiet_rollback(session) -> None:
    # The error that brought us here is the news; a rollback that fails as
    # well (a lost connection) is logged, and close() discards the connection.
    try:
        session.rollback()
    except Exception:
        LOG.warning("rollback failed while ending a request", exc_info=True)
