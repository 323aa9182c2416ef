"""fastsess.web.ASGISessionMiddleware (and db, session_dependency) on both
databases: a FastAPI app through httpx's ASGI transport and through a real
uvicorn server on 127.0.0.1.

An outermost pure-ASGI ``Observer`` counts, through a connection of its own,
the committed rows at the moment each response starts: "committed before the
response starts" is checked there, not inferred from the end state.  Waits
for the server (a query showing up, uvicorn starting) are polls with a
deadline; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

import fastsess
from fastsess.errors import SessionNotFound
from fastsess.web import ASGISessionMiddleware, RequestSessionNotFound, db, session_dependency

from .conftest import kill_backend, raw_query
from .test_web_wsgi import INSERT, count, order, orders, stored  # noqa: F401 (orders: a fixture)

SLEEP = {"postgresql": "SELECT pg_sleep(10)", "mysql": "SELECT SLEEP(10)"}
RUNNING = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
                  "AND query LIKE 'SELECT pg_sleep%%'",
    "mysql": "SELECT count(*) FROM information_schema.processlist WHERE id = %s "
             "AND info LIKE 'SELECT SLEEP%%'",
}


async def insert(session, table, n, ref=None) -> None:
    row = order(n)
    await session.execute(INSERT.format(table), (row["id"], row["placed_at"], row["customer"],
                                                 row["details"], row["note"], ref or row["ref"]))


async def backend_id(session, dialect) -> int:
    sql = "SELECT pg_backend_pid() AS id" if dialect == "postgresql" \
        else "SELECT CONNECTION_ID() AS id"
    return int((await session.execute(sql)).fetchone()["id"])


def poll(condition, what, timeout=30.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


async def apoll(condition, what, timeout=30.0) -> None:
    """``poll`` for a coroutine: sleeps on the event loop between tries."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.01)


# -- the app -------------------------------------------------------------------------


class Observer:
    """Pure ASGI, outermost: (status, committed rows) when each response starts."""

    def __init__(self, app, raw, table):
        self.app, self.raw, self.table = app, raw, table
        self.starts = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def observed(message):
            if message["type"] == "http.response.start":
                self.starts.append((message["status"], count(self.raw, self.table)))
            await send(message)

        await self.app(scope, receive, observed)


def make_shop(engine, table, dialect, raw, middleware=True, **options):
    """The FastAPI app under test (routes for each case); returns (Observer, seen)."""
    app = FastAPI()
    seen = []

    async def create(n):
        """Order n, written through the scopes that must all join the request's session."""
        session = db.session
        async with fastsess.async_session_scope(using=engine) as scoped:
            assert scoped is session
            async with fastsess.async_atomic(using=engine) as nested:  # a SAVEPOINT
                assert nested is session
                await insert(nested, table, n)
        async with engine.session_manager() as managed:
            assert managed is session
        seen.append(("scopes", fastsess.current_session(engine) is session))
        return session

    async def break_commit(session, kind, n):
        """Make the coming COMMIT fail: a deferred unique check, or a dead connection."""
        if kind == "deferred":
            await insert(session, table, n + 1000, ref=order(n)["ref"])
        else:
            kill_backend(raw, dialect, await backend_id(session, dialect))

    @app.get("/health")
    async def health():
        return {"ok": True}

    @app.get("/whoami")
    async def whoami(request: Request):
        session = db.session
        fresh = not session.has_connection
        same = fastsess.current_session(engine) is session
        seen.append(("whoami", session, fresh, same, await backend_id(session, dialect),
                     request.client.port))
        return {}

    @app.post("/orders", status_code=201)
    async def created(n: int):
        await create(n)
        return {"id": str(order(n)["id"])}

    @app.post("/broken/{kind}", status_code=201)
    async def broken(kind: str, n: int):
        await break_commit(await create(n), kind, n)
        return {"id": str(order(n)["id"])}

    @app.post("/fail")
    async def fail(n: int):
        await create(n)
        raise RuntimeError("the app failed after writing")

    @app.post("/reject")
    async def reject(n: int):
        await create(n)
        raise HTTPException(409, "rejected")

    @app.post("/reject-returned")
    async def reject_returned(n: int):
        await create(n)
        return JSONResponse({"detail": "rejected"}, status_code=422)

    @app.get("/stream")
    async def stream(n: int, broken: str = ""):
        session = await create(n)

        async def body():  # uses the session taken above (may run in a child task)
            yield b"first,"
            seen.append(("after the first chunk", count(raw, table)))
            await insert(session, table, n + 1)
            if broken:
                await break_commit(session, broken, n)
            yield b"second"

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/slow")
    async def slow():
        session = db.session
        seen.append(("slow", await backend_id(session, dialect)))
        await session.execute(SLEEP[dialect])
        seen.append(("slow finished",))
        return {}

    @app.post("/later")
    async def later(n: int, tasks: BackgroundTasks):
        await create(n)

        async def after():  # runs after the response
            try:
                db.session  # noqa: B018
                seen.append(("after", "found"))
            except RequestSessionNotFound as e:
                seen.append(("after", str(e)))
            async with fastsess.async_session_scope(using=engine) as own:
                await insert(own, table, n + 1)

        tasks.add_task(after)
        return {}

    @app.get("/child")
    async def child():
        async def look():
            try:
                db.session  # noqa: B018
                return "found"
            except RequestSessionNotFound as e:
                return str(e)

        seen.append(("child", await asyncio.create_task(look())))
        return {}

    get_session = session_dependency(using=engine)

    @app.post("/dep", status_code=201)
    async def dep(n: int, session=Depends(get_session)):
        seen.append(("dep is db.session", not middleware or session is db.session))
        await insert(session, table, n)
        return {}

    @app.post("/dep-function/{kind}", status_code=201)
    async def dep_function(kind: str, n: int, session=Depends(get_session, scope="function")):
        await insert(session, table, n)
        if kind != "ok":
            await break_commit(session, kind, n)
        return {}

    if middleware:
        app.add_middleware(ASGISessionMiddleware, using=engine, **options)
    return Observer(app, raw, table), seen


# -- running it ------------------------------------------------------------------------


@contextlib.contextmanager
def uvicorn_serving(app):
    """``app`` on uvicorn at 127.0.0.1, port 0, in a thread (lifespan on); yields the port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        poll(lambda: server.started or not thread.is_alive(), "uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"


@contextlib.asynccontextmanager
async def http_client(app, via, raise_app_exceptions=False):
    """An httpx client to ``app``: through the ASGI transport, or over TCP to uvicorn."""
    if via == "transport":
        transport = httpx.ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            yield client
    else:
        with uvicorn_serving(app) as port:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         timeout=30) as client:
                yield client


@pytest.fixture(params=["transport", "uvicorn"])
def via(request):
    """How requests reach the app: httpx's ASGI transport, or a uvicorn server."""
    return request.param


@pytest.fixture
def aengine(url):
    """An async engine of the test's own (its pool serves the loop that first uses it)."""
    engine = fastsess.create_async_engine(url, max_size=2, timeout=10)
    yield engine
    if not engine.closed:
        asyncio.run(engine.close())


@pytest.fixture
def raw(raw_connect):
    """A plain autocommit connection of the test's own: what is committed, seen from outside."""
    return raw_connect()


def run(scenario, engine=None, via="transport"):
    """Run ``scenario()`` in a new event loop; through uvicorn, its lifespan
    shutdown must have closed ``engine``."""
    async def main():
        await scenario()
        if engine is not None and via == "uvicorn":
            assert engine.closed, "lifespan shutdown did not close the engine"

    asyncio.run(main())


# -- the cases --------------------------------------------------------------------


def test_commits_before_the_response_starts(dialect, orders, aengine, raw, via):
    app, seen = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            response = await client.post("/orders", params={"n": 1})
            assert (response.status_code, response.json()) == (201, {"id": str(order(1)["id"])})
            assert aengine.pool_stats()["in_use"] == 0

    run(scenario, aengine, via)
    assert app.starts == [(201, 1)]  # committed when the start went out
    assert ("scopes", True) in seen
    assert stored(raw, orders, dialect) == [order(1)]


@pytest.mark.parametrize("kind", ["deferred", "killed"])
def test_a_failed_commit_is_a_500_with_nothing_of_the_app(dialect, orders, aengine, raw, via,
                                                          kind, caplog):
    if kind == "deferred" and dialect == "mysql":
        pytest.skip("MariaDB has no deferred constraints (the 'killed' case fails its COMMIT)")
    app, _ = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            response = await client.post(f"/broken/{kind}", params={"n": 2})
            assert (response.status_code, response.content) == (500, b"Internal Server Error")
            stats = aengine.pool_stats()
            assert stats["in_use"] == 0
            if kind == "killed":
                assert (stats["connections_discarded"], stats["idle"]) == (1, 0)

    run(scenario, aengine, via)
    assert app.starts == [(500, 0)]  # the app's 201 never started
    assert count(raw, orders) == 0
    if via == "transport":  # (uvicorn's thread logs where caplog does not look)
        assert "the request's commit failed" in caplog.text


def test_an_exception_rolls_back(dialect, orders, aengine, raw, via):
    app, _ = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            response = await client.post("/fail", params={"n": 3})
            assert response.status_code == 500
            assert b"failed after writing" not in response.content
            stats = aengine.pool_stats()
            assert (stats["in_use"], stats["idle"], stats["connections_discarded"]) == (0, 1, 0)

    run(scenario, aengine, via)
    assert app.starts == [(500, 0)]
    assert count(raw, orders) == 0


@pytest.mark.parametrize("via, path, status, limit, expected", [
    ("transport", "/reject", 409, 400, 0),  # HTTPException
    ("transport", "/reject-returned", 422, 400, 0),  # a returned JSONResponse
    ("transport", "/reject", 409, None, 1),
    ("transport", "/reject-returned", 422, None, 1),
    ("uvicorn", "/reject", 409, 400, 0),
])
def test_a_4xx_rolls_back_unless_configured_otherwise(dialect, orders, aengine, raw, via, path,
                                                     status, limit, expected):
    app, _ = make_shop(aengine, orders, dialect, raw, rollback_on_status=limit)

    async def scenario():
        async with http_client(app, via) as client:
            response = await client.post(path, params={"n": 4})
            assert (response.status_code, response.json()) == (status, {"detail": "rejected"})
            assert aengine.pool_stats()["in_use"] == 0

    run(scenario, aengine, via)
    assert app.starts == [(status, expected)]
    assert count(raw, orders) == expected


def test_a_request_without_queries_takes_no_connection(dialect, orders, aengine, raw, via):
    app, _ = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            for _ in range(3):
                response = await client.get("/health")
                assert (response.status_code, response.json()) == (200, {"ok": True})
            stats = aengine.pool_stats()
            assert (stats["checkouts"], stats["size"], stats["in_use"]) == (0, 0, 0)

    run(scenario, aengine, via)


def test_sequential_keep_alive_requests_each_start_with_no_session(dialect, orders, aengine, raw,
                                                                  via):
    shop, seen = make_shop(aengine, orders, dialect, raw)
    leaked = []

    async def probe(scope, receive, send):
        # Outside the middleware, before it runs: nothing may be left over.
        if scope["type"] == "http":
            for lookup in (lambda: fastsess.current_session(aengine), lambda: db.session):
                try:
                    lookup()
                    leaked.append(scope["path"])
                except SessionNotFound:
                    pass
        await shop(scope, receive, send)

    async def scenario():
        in_use = []
        async with http_client(probe, via) as client:
            for _ in range(100):
                assert (await client.get("/whoami")).status_code == 200
                in_use.append(aengine.pool_stats()["in_use"])
            stats = aengine.pool_stats()
            assert (stats["size"], stats["connections_opened"], stats["checkouts"]) == (1, 1, 100)
        assert in_use == [0] * 100

    run(scenario, aengine, via)
    assert leaked == []
    calls = [s for s in seen if s[0] == "whoami"]
    assert len(calls) == 100 and len({id(c[1]) for c in calls}) == 100  # (all kept alive)
    assert all(fresh and same for _, _, fresh, same, _, _ in calls)
    assert len({c[4] for c in calls}) == 1  # one connection, back in the pool each time
    if via == "uvicorn":
        assert len({c[5] for c in calls}) == 1  # one client connection: keep-alive


def test_db_session_outside_a_request_raises():
    for where in ("sync", "task"):
        with pytest.raises(RequestSessionNotFound, match="only available inside a request") \
                as caught:
            if where == "sync":
                db.session  # noqa: B018
            else:
                async def look():
                    return db.session

                asyncio.run(look())
        assert isinstance(caught.value, SessionNotFound)
        assert "SessionMiddleware" in str(caught.value)


def test_a_child_task_does_not_see_the_request_session(dialect, orders, aengine, raw):
    app, seen = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, "transport") as client:
            assert (await client.get("/child")).status_code == 200
        await aengine.close()

    run(scenario)
    [(_, message)] = [s for s in seen if s[0] == "child"]
    assert "only in the request's own task or thread" in message


@pytest.mark.parametrize("added", ["first", "last"])
def test_base_http_middleware_must_sit_above_the_session_middleware(dialect, orders, aengine,
                                                                    raw, added):
    """Starlette's BaseHTTPMiddleware runs what is below it in a child task."""
    app = FastAPI()

    @app.get("/q")
    async def q():
        try:
            return (await db.session.execute("SELECT 1 AS one")).fetchall()
        except RequestSessionNotFound as e:
            return str(e)

    async def passing(request, call_next):
        return await call_next(request)

    if added == "first":  # add_middleware puts the last one added outermost
        app.add_middleware(ASGISessionMiddleware, using=aengine)
        app.middleware("http")(passing)
    else:
        app.middleware("http")(passing)
        app.add_middleware(ASGISessionMiddleware, using=aengine)

    async def scenario():
        async with http_client(app, "transport") as client:
            body = (await client.get("/q")).json()
        assert aengine.pool_stats()["in_use"] == 0
        await aengine.close()
        return body

    body = asyncio.run(scenario())
    if added == "first":
        assert body == [{"one": 1}]
    else:
        assert "only in the request's own task or thread" in body


@pytest.mark.parametrize("streaming, expected", [(True, 0), (False, 1)])
def test_a_streaming_response(dialect, orders, aengine, raw, via, streaming, expected):
    app, seen = make_shop(aengine, orders, dialect, raw, streaming=streaming)

    async def scenario():
        async with http_client(app, via) as client:
            response = await client.get("/stream", params={"n": 5})
            assert (response.status_code, response.content) == (200, b"first,second")
            assert aengine.pool_stats()["in_use"] == 0

    run(scenario, aengine, via)
    # streaming=True: the start went out first and the commit came at the end;
    # by default the commit came before the start, and what the body wrote
    # after it was rolled back when the session closed.
    assert app.starts == [(200, expected)]
    assert ("after the first chunk", expected) in seen
    assert stored(raw, orders, dialect) == ([order(5), order(6)] if streaming else [order(5)])


@pytest.mark.parametrize("kind", ["deferred", "killed"])
def test_a_stream_whose_final_commit_fails_is_cut(dialect, orders, aengine, raw, via, kind):
    if kind == "deferred" and dialect == "mysql":
        pytest.skip("MariaDB has no deferred constraints (the 'killed' case fails its COMMIT)")
    app, _ = make_shop(aengine, orders, dialect, raw, streaming=True)

    async def scenario():
        async with http_client(app, via, raise_app_exceptions=True) as client:
            # The client has the 200 and the first chunk; the transfer then breaks.
            broken = fastsess.errors.DatabaseError if via == "transport" \
                else httpx.RemoteProtocolError
            with pytest.raises(broken):
                await client.get("/stream", params={"n": 7, "broken": kind})
            assert aengine.pool_stats()["in_use"] == 0

    run(scenario, aengine, via)
    assert app.starts == [(200, 0)]
    assert count(raw, orders) == 0


def test_background_tasks_run_after_the_request_session_closed(dialect, orders, aengine, raw, via):
    app, seen = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            assert (await client.post("/later", params={"n": 8})).status_code == 200
            if via == "uvicorn":  # the background task may still run after the response
                await apoll(lambda: count(raw, orders) == 2 and aengine.pool_stats()["in_use"] == 0,
                            "the background task's commit and close")
            assert aengine.pool_stats()["in_use"] == 0

    run(scenario, aengine, via)
    [(_, message)] = [s for s in seen if s[0] == "after"]
    assert "no request session" in message
    # The request's own order, and the one the background task committed itself.
    assert stored(raw, orders, dialect) == [order(8), order(9)]


def test_a_client_that_gives_up_mid_query_discards_the_connection(dialect, orders, aengine, raw,
                                                                  via):
    app, seen = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            request = asyncio.create_task(client.get("/slow"))
            # (the transport runs the app in this task; uvicorn in its thread)
            await apoll(lambda: any(s[0] == "slow" for s in seen), "the slow request to start")
            bid = next(s[1] for s in seen if s[0] == "slow")
            await apoll(lambda: raw_query(raw, RUNNING[dialect], (bid,))[0][0] == 1,
                        "the sleep to run")
            request.cancel()  # the client gives up: cancelled task / closed connection
            with pytest.raises(asyncio.CancelledError):
                await request
            await apoll(lambda: aengine.pool_stats()["in_use"] == 0, "the session to close")
            stats = aengine.pool_stats()
            assert (stats["connections_discarded"], stats["idle"]) == (1, 0)
            # The next request gets another connection: the interrupted one is gone.
            assert (await client.get("/whoami")).status_code == 200
            assert aengine.pool_stats()["connections_opened"] == 2
            if dialect == "postgresql":  # psycopg cancels the query: the backend ends at once
                gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
                await apoll(lambda: raw_query(raw, gone, (bid,))[0][0] == 0, "the backend to end")
            # (MariaDB runs the SLEEP on until it notices the closed connection, within
            # seconds; the client side is what the middleware controls.)

    run(scenario, aengine, via)
    assert ("slow finished",) not in seen
    whoami = [s for s in seen if s[0] == "whoami"]
    assert len(whoami) == 1 and whoami[0][4] != next(s[1] for s in seen if s[0] == "slow")


def test_http_disconnect_cancels_the_request_and_discards_its_connection(dialect, orders, aengine,
                                                                        raw):
    """The middleware itself notices ``http.disconnect`` (no server involved)."""
    app, seen = make_shop(aengine, orders, dialect, raw)
    sent = []

    async def scenario():
        left = asyncio.Event()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/slow", "raw_path": b"/slow",
                 "query_string": b"", "root_path": "", "headers": [],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
        call = asyncio.create_task(app(scope, receive, send))
        await apoll(lambda: any(s[0] == "slow" for s in seen), "the slow request to start")
        bid = next(s[1] for s in seen if s[0] == "slow")
        await apoll(lambda: raw_query(raw, RUNNING[dialect], (bid,))[0][0] == 1, "the sleep to run")
        left.set()
        await asyncio.wait_for(call, 30)  # returns: the cancellation was the middleware's own
        assert not call.cancelled()
        stats = aengine.pool_stats()
        assert (stats["in_use"], stats["connections_discarded"], stats["idle"]) == (0, 1, 0)
        await aengine.close()

    run(scenario)
    assert sent == [] and ("slow finished",) not in seen


def test_lifespan_shutdown_closes_the_engines_it_used(dialect, url, orders, aengine, raw):
    async def ignores_lifespan(scope, receive, send):
        if scope["type"] == "http":
            await db.session.execute("SELECT 1")
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    fastapi_app, _ = make_shop(aengine, orders, dialect, raw)

    async def lifespan(app, engine):
        async with http_client(app, "transport") as client:  # uses the engine
            assert (await client.post("/orders" if app is fastapi_app else "/",
                                      params={"n": 10})).status_code in (201, 204)
        inbox = asyncio.Queue()
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": kind})
        sent = []

        async def send(message):
            sent.append((message["type"], engine.closed))

        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
        return sent

    expected = [("lifespan.startup.complete", False), ("lifespan.shutdown.complete", True)]
    assert asyncio.run(lifespan(fastapi_app, aengine)) == expected
    other = fastsess.create_async_engine(url, max_size=1)
    bare = ASGISessionMiddleware(ignores_lifespan, using=other)
    assert asyncio.run(lifespan(bare, other)) == expected


def test_websocket_scopes_pass_through_untouched():
    received = []

    async def app(scope, receive, send):
        received.append((scope, receive, send))

    async def receive():
        raise AssertionError("not called")

    send = receive
    scope = {"type": "websocket", "path": "/ws"}
    asyncio.run(ASGISessionMiddleware(app, using="no such engine")(scope, receive, send))
    assert received == [(scope, receive, send)] and received[0][0] is scope


# -- session_dependency and FastAPI's dependencies with yield -----------------------------


def test_fastapi_yield_dependency_teardown_timing():
    """Pins what fastsess.web.dependency documents for the installed FastAPI."""
    events = []

    async def dependency():
        try:
            yield "value"
        finally:
            events.append("teardown")

    app = FastAPI()

    @app.get("/request")
    async def request_scoped(value=Depends(dependency)):
        return {}

    @app.get("/function")
    async def function_scoped(value=Depends(dependency, scope="function")):
        return {}

    @app.get("/raises")
    async def raises(value=Depends(dependency)):
        raise HTTPException(409)

    async def outer(scope, receive, send):
        async def recorded(message):
            if message["type"] == "http.response.start":
                events.append("start")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                events.append("end")
            await send(message)

        await app(scope, receive, recorded)

    async def scenario():
        orders = []
        async with http_client(outer, "transport") as client:
            for path, status in (("/request", 200), ("/function", 200), ("/raises", 409)):
                events.clear()
                assert (await client.get(path)).status_code == status
                orders.append(list(events))
        return orders

    request_order, function_order, raised_order = asyncio.run(scenario())
    assert request_order == ["start", "end", "teardown"]  # after the whole response
    assert function_order == ["teardown", "start", "end"]  # before it starts
    assert raised_order == ["teardown", "start", "end"]  # an exception: before the error response


def test_session_dependency_yields_the_middlewares_session(dialect, orders, aengine, raw, via):
    app, seen = make_shop(aengine, orders, dialect, raw)

    async def scenario():
        async with http_client(app, via) as client:
            assert (await client.post("/dep", params={"n": 11})).status_code == 201
            assert aengine.pool_stats()["in_use"] == 0

    run(scenario, aengine, via)
    assert ("dep is db.session", True) in seen
    assert app.starts == [(201, 1)]
    assert stored(raw, orders, dialect) == [order(11)]


@pytest.mark.parametrize("kind", ["ok", "deferred", "killed"])
def test_session_dependency_alone_in_function_scope(dialect, orders, aengine, raw, kind):
    if kind == "deferred" and dialect == "mysql":
        pytest.skip("MariaDB has no deferred constraints (the 'killed' case fails its COMMIT)")
    app, _ = make_shop(aengine, orders, dialect, raw, middleware=False)

    async def scenario():
        async with http_client(app, "transport") as client:
            response = await client.post(f"/dep-function/{kind}", params={"n": 12})
            assert response.status_code == (201 if kind == "ok" else 500)
            assert aengine.pool_stats()["in_use"] == 0
        await aengine.close()

    run(scenario)
    expected = 1 if kind == "ok" else 0
    assert app.starts == [(201 if kind == "ok" else 500, expected)]  # committed before the start
    assert count(raw, orders) == expected


def test_session_dependency_alone_in_request_scope_commits_after_the_response(dialect, orders,
                                                                             aengine, raw):
    app, seen = make_shop(aengine, orders, dialect, raw, middleware=False)

    async def scenario():
        async with http_client(app, "transport") as client:
            assert (await client.post("/dep", params={"n": 13})).status_code == 201
        await aengine.close()

    run(scenario)
    assert app.starts == [(201, 0)]  # not committed yet when the response started
    assert stored(raw, orders, dialect) == [order(13)]  # committed after it
