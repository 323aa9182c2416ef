"""fastsess.web: the web request scope — one session per request, current
for the request's task or thread, committed before the response starts.

- ``ASGISessionMiddleware`` (``fastsess.web.asgi``): pure ASGI, async sessions;
- ``WSGISessionMiddleware`` (``fastsess.web.wsgi``): WSGI, sync sessions;
- ``db`` (``fastsess.web.context``): ``db.session`` is the running request's
  session;
- ``session_dependency`` (``fastsess.web.dependency``): the request's
  session as a FastAPI dependency.

A leaf: the core never imports it.  It imports no web framework.
"""

from __future__ import annotations

from .asgi import ASGISessionMiddleware
from .context import RequestSessionNotFound, db
from .dependency import session_dependency
from .wsgi import WSGISessionMiddleware

__all__ = ["ASGISessionMiddleware", "WSGISessionMiddleware", "db", "session_dependency",
           "RequestSessionNotFound"]
