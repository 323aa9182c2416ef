"""``session_dependency``: the request's session as a FastAPI dependency.

What was found in FastAPI 0.165 (``fastapi/routing.py``,
``request_response``; ``fastapi/dependencies/utils.py``): a dependency
with ``yield`` is entered on one of two exit stacks of the request.

- ``scope="request"``, the default for generator dependencies: its code
  after ``yield`` runs when the request's stack unwinds, which is after
  ``await response(scope, receive, send)`` — after the whole response was
  sent.  An exception in the endpoint is thrown in at the ``yield`` before
  the error response is made, but a successful request's code after
  ``yield`` runs too late for a failed COMMIT to change the response.
- ``Depends(..., scope="function")``: its code after ``yield`` runs when the
  endpoint returned and FastAPI built (and validated) the response object,
  before that response is sent.  An exception raised there becomes the 500.
"""

from __future__ import annotations

from .. import registry
from .asgi import _quiet_rollback
from .context import RequestScope, find


def session_dependency(using=None):
    """A FastAPI dependency (an async generator function) that yields the
    request's ``AsyncSession``::

        get_session = session_dependency()

        @app.post("/orders")
        async def create(session=Depends(get_session)): ...

    Under ``ASGISessionMiddleware`` it yields the middleware's session and
    does nothing after the ``yield``: the middleware commits before the
    response starts, rolls back on error statuses, and turns a failed COMMIT
    into a 500.  ``using`` picks one of several stacked middlewares (an
    engine or its name; None: the innermost).

    Without the middleware it opens a session itself (from ``using``'s
    engine, None: ``"default"``), makes it current for the request's task,
    rolls back when an exception reaches the ``yield``, commits otherwise,
    and closes it.  When that commit runs depends on the dependency's scope
    (FastAPI 0.165, see the module docstring):

    - ``Depends(get_session, scope="function")``: before the response is
      sent, so a failed COMMIT becomes a 500 and nothing of the response
      goes out.  The dependency does not see the status of a response the
      endpoint returns (``JSONResponse(status_code=404)`` commits); raise
      ``HTTPException`` to roll back;
    - ``Depends(get_session)`` (``scope="request"``): after the response was
      sent; the client may have a 200 for work whose COMMIT then failed.

    The commit-before-response guarantee, with the status rule, needs the
    middleware; the dependency alone gives it only in function scope.
    """

    async def request_session():
        session = find(using, strict=False)
        if session is not None:
            yield session  # the middleware's: it commits and closes
            return
        engine = registry.resolve_async_engine(using)
        scope = RequestScope(engine, engine.get_session())
        session = scope.session
        try:
            try:
                yield session
            except BaseException:
                await _quiet_rollback(session)
                raise
            await session.commit()
        finally:
            scope.end()
            await session.close()

    return request_session
