"""``ASGISessionMiddleware``: a session per ASGI request that commits before
the response starts.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which runs
the app in another task).  For each ``http`` request it takes a new
``AsyncSession`` from its engine (no connection until the app's first
statement: a request that never queries takes none) and makes it current for
the request's task, so async scopes, ``atomic`` blocks and
``current_session`` in the app use it, and ``fastsess.web.db.session``
returns it.

Commit before the response starts: the app's ``http.response.start`` message
is held.  At the app's first body message the transaction is settled —
committed, or rolled back when the status is at least ``rollback_on_status``
— and only then are the start and the body passed on.  A COMMIT that fails
is logged and becomes a ``500 Internal Server Error`` of the middleware's
own: nothing of the app's response is sent, and the ``send`` the app called
raises, so that what the app would do after sending (background tasks) does
not run.  An exception (or a cancellation) in the app rolls back and goes on
up: nothing was sent, so the server or an outer error middleware answers 500.
The session is closed, and stops being current, just before the last body
message goes out — so a client that has the whole response finds the
connection back in the pool — or, when the app fails, in a ``finally``.
Code that runs after the response (Starlette's background tasks) sees no
request session and opens scopes of its own.

Streaming responses (``more_body=True`` in the first body message):

- by default the commit happens before the start, as above, and the body
  streams after it; what the app does on the session while producing the
  later chunks is not committed (it is rolled back when the session closes);
- with ``streaming=True`` the start and the chunks go out as they come and
  the commit happens at the end, before the last body message.  The client
  already has the status then: if that COMMIT fails the last message is not
  sent and the error goes on up, so the server aborts the response (the
  client sees a broken transfer, not a complete 200).

Client disconnects: with ``cancel_on_disconnect`` (the default) the
middleware reads the server's ``receive`` for the app (the app's ``receive``
still gets every message), and when the client leaves before the response
is complete it cancels the request's task.  A statement that the
cancellation interrupts leaves its connection in an unknown state, so the
session discards that connection; nothing is committed after a cancellation
or an exception.  The cost is one small task per request; without it a
request whose client left runs to its end (and commits).

``lifespan``: when the app completes its shutdown, the engines the middleware
served requests with are closed (``await engine.close()``).  ``websocket``
and other scopes pass through untouched.

In a streaming body iterator, use the session the endpoint took
(``s = db.session``) rather than looking it up again: Starlette and FastAPI
may run the iterator in a child task, where the request's session is not
current (``fastsess.current``'s rule).  For the same reason the middleware
must sit below (closer to the app than) any ``BaseHTTPMiddleware``: with
Starlette's ``add_middleware``, add it first.
"""

from __future__ import annotations

import asyncio
import logging

from .. import registry
from .context import RequestScope

LOG = logging.getLogger("fastsess.web")

ERROR_BODY = b"Internal Server Error"
ERROR_START = {"type": "http.response.start", "status": 500,
               "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                           (b"content-length", str(len(ERROR_BODY)).encode())]}
ERROR_END = {"type": "http.response.body", "body": ERROR_BODY, "more_body": False}

# _Exchange.state
_HOLDING = 0    # nothing sent yet (the app's start, if any, is held)
_STREAMING = 1  # start and chunks sent, the transaction still open (streaming=True)
_SENT = 2       # settled, start sent, more body to come
_DONE = 3       # the last body message went out (the session closed just before)
_FAILED = 4     # the commit failed before the start: our 500 went out instead
_CUT = 5        # the commit failed at the end of a stream: its last message is held back


class _CommitFailed(Exception):
    """Raised into the app from ``send`` when the request's COMMIT failed
    (``__cause__``: the error); the middleware catches it."""


class ASGISessionMiddleware:
    """``app = ASGISessionMiddleware(app, using="default", rollback_on_status=400,
    streaming=False, cancel_on_disconnect=True)`` (see the module docstring).

    ``using``: an engine name in the registry or an async engine, resolved
    on each request.  ``rollback_on_status``: responses with this status or
    a higher one roll back (None: only exceptions and cancellations do).
    """

    def __init__(self, app, using="default", *, rollback_on_status=400, streaming=False,
                 cancel_on_disconnect=True):
        self.app = app
        self.using = using
        self.rollback_on_status = rollback_on_status
        self.streaming = bool(streaming)
        self.cancel_on_disconnect = bool(cancel_on_disconnect)
        self._engines = {}  # id -> engine the requests used: closed at lifespan shutdown

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope, receive, send):
        engine = registry.resolve_async_engine(self.using)
        self._engines[id(engine)] = engine
        exchange = _Exchange(self, send, RequestScope(engine, engine.get_session()))
        watcher = None
        try:
            if self.cancel_on_disconnect:
                watcher = exchange.watcher = _Watcher(receive, exchange)
                receive = watcher.receive
            try:
                await self.app(scope, receive, exchange.send)
            finally:
                if watcher is not None:
                    watcher.stop()
            if exchange.state == _HOLDING and exchange.start is not None:
                # The app returned without a body: an incomplete response,
                # which the server reports; it must not commit.
                await exchange.end(failed=True)
                await send(exchange.start)
            else:
                await exchange.end(failed=exchange.state != _DONE)
        except BaseException as e:
            await exchange.end(failed=True)
            if exchange.error is not None and _caused_by(e, exchange.marker):
                if exchange.state == _FAILED:
                    return  # the client has our 500 (the error was logged)
                error = exchange.error  # the server cuts the stream short
                raise error from error.__cause__
            if isinstance(e, asyncio.CancelledError) and watcher is not None \
                    and watcher.cancelled and _uncancel(watcher.task):
                return  # our own cancellation: the client left
            raise
        finally:
            exchange.scope.end()  # (a no-op unless send ended it in another context)

    async def _lifespan(self, scope, receive, send):
        received = shutdown = False

        async def lifespan_receive():
            nonlocal received, shutdown
            received = True
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                shutdown = True
            return message

        async def lifespan_send(message):
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.close_engines()
            await send(message)

        try:
            await self.app(scope, lifespan_receive, lifespan_send)
        finally:
            if shutdown:
                await self.close_engines()
        if not received:  # the app ignores lifespan: serve it, to close at shutdown
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.close_engines()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def close_engines(self) -> None:
        """Close the engines requests were served with (lifespan shutdown)."""
        engines = list(self._engines.values())
        self._engines.clear()
        for engine in engines:
            try:
                await engine.close()
            except Exception:
                LOG.warning("closing %r at shutdown failed", engine, exc_info=True)


class _Exchange:
    """One request's response on its way out: the held start message, and
    the request's transaction, settled once before the start goes out (or
    at the end, streaming)."""

    __slots__ = ("rollback_on_status", "streaming", "server_send", "scope", "start", "status",
                 "state", "watcher", "error", "marker", "ended")

    def __init__(self, middleware, server_send, scope):
        self.rollback_on_status = middleware.rollback_on_status
        self.streaming = middleware.streaming
        self.server_send = server_send
        self.scope = scope
        self.start = None
        self.status = None  # of the response, once its start went out (streaming=True)
        self.state = _HOLDING
        self.watcher = None
        self.error = None   # the COMMIT's error
        self.marker = None  # the _CommitFailed raised into the app for it
        self.ended = False

    @property
    def finished(self) -> bool:
        """Whether the client's response is decided (complete, or cut)."""
        return self.state >= _DONE

    async def send(self, message):
        """The ``send`` the app calls."""
        state = self.state
        last = message["type"] != "http.response.body" or not message.get("more_body", False)
        if state == _SENT or state == _DONE:
            if last and state == _SENT:
                self.state = _DONE
                await self.end(failed=False)  # before the client has it all
            await self.server_send(message)
            return
        if state >= _FAILED:
            return  # the app went on after its commit failed: drop what it sends
        if state == _HOLDING:
            if self.start is None:
                if message["type"] == "http.response.start":
                    self.start = message
                    return
                await self.server_send(message)  # not a response message we judge
                return
            start, self.start = self.start, None
            if self.streaming and not last:
                self.state = _STREAMING
                self.status = start["status"]
                await self.server_send(start)
                await self.server_send(message)
                return
            error = await self.settle(start["status"])
            if error is not None:
                self.state = _FAILED
                self.error, self.marker = error, _CommitFailed()
                await self.end(failed=False)  # (rolled back by settle)
                await self.server_send(ERROR_START)
                await self.server_send(ERROR_END)
                raise self.marker from error
            self.state = _DONE if last else _SENT
            if last:
                await self.end(failed=False)
            await self.server_send(start)
            await self.server_send(message)
            return
        # _STREAMING
        if last:
            error = await self.settle(self.status)
            if error is not None:
                self.state = _CUT
                self.error, self.marker = error, _CommitFailed()
                await self.end(failed=False)
                raise self.marker from error
            self.state = _DONE
            await self.end(failed=False)
        await self.server_send(message)

    async def settle(self, status):
        """Commit, or roll back when the response or a disconnect says so;
        the commit's error (logged), or None."""
        session = self.scope.session
        limit = self.rollback_on_status
        if (limit is not None and status >= limit) or \
                (self.watcher is not None and self.watcher.cancelled):
            await _quiet_rollback(session)
            return None
        try:
            await session.commit()
        except Exception as e:
            LOG.exception("the request's commit failed")
            await _quiet_rollback(session)
            return e
        return None

    async def end(self, failed) -> None:
        """Stop the session being current, roll back what is left if
        ``failed``, close it.  Idempotent."""
        if self.ended:
            return
        self.ended = True
        self.scope.end()  # first: whatever happens below, it is no longer current
        session = self.scope.session
        try:
            if failed:
                await _quiet_rollback(session)
        finally:
            await session.close()


class _Watcher:
    """Reads the server's ``receive`` for the app, and cancels the request's
    task when the client leaves before its response is decided."""

    __slots__ = ("server_receive", "exchange", "task", "queue", "reader", "gone", "cancelled",
                 "error")

    def __init__(self, server_receive, exchange):
        self.server_receive = server_receive
        self.exchange = exchange
        self.task = asyncio.current_task()
        # One message of look-ahead: the request body is not read faster
        # than the app takes it.
        self.queue = asyncio.Queue(1)
        self.gone = self.cancelled = False
        self.error = None
        self.reader = asyncio.get_running_loop().create_task(self.read())

    async def read(self) -> None:
        queue = self.queue
        try:
            while True:
                message = await self.server_receive()
                if message["type"] == "http.disconnect":
                    break
                await queue.put(message)
        except asyncio.CancelledError:
            return  # stop(): the request is over
        except Exception as e:
            self.error = e  # the app's receive raises it
            message = None
        self.gone = True
        if not queue.full():
            queue.put_nowait(message)  # wakes an app waiting in receive()
        if not self.exchange.finished:
            self.cancelled = True
            self.task.cancel()

    async def receive(self):
        """The ``receive`` the app calls."""
        if self.gone and self.queue.empty():
            message = None
        else:
            message = await self.queue.get()
        if message is None:
            if self.error is not None:
                raise self.error
            return {"type": "http.disconnect"}
        return message

    def stop(self) -> None:
        self.reader.cancel()


def _caused_by(error, marker) -> bool:
    """Whether ``marker`` is ``error`` or in its causes, contexts or groups."""
    seen = set()
    todo = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if e is marker:
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
    return False


def _uncancel(task) -> bool:
    """Withdraw one cancellation request of ``task``; whether none is left
    (Python 3.10 cannot tell: it assumes so)."""
    uncancel = getattr(task, "uncancel", None)
    return uncancel is None or uncancel() == 0


async def _quiet_rollback(session) -> None:
    # The error that brought us here is the news; a rollback that fails as
    # well (a lost connection) is logged, and close() discards the connection.
    try:
        await session.rollback()
    except Exception:
        LOG.warning("rollback failed while ending a request", exc_info=True)
