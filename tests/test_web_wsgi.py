"""fastsess.web.WSGISessionMiddleware on both databases: a session per request,
current for the request's thread, committed before the first byte goes out.

Each case runs called directly (a recording ``start_response`` checks, through
a connection of its own, what is committed at the moment the status is passed
on) and through ``wsgiref.simple_server`` on 127.0.0.1 (a client that reads
until the server closes the connection, so the request is over when it
returns).  wsgiref speaks HTTP/1.0 and closes each connection: the "keep-alive"
sequence runs its requests one after the other on the server's one thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import io
import json
import socket
import threading
import uuid
import wsgiref.util
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

import fastsess
from fastsess.errors import SessionNotFound
from fastsess.web import RequestSessionNotFound, WSGISessionMiddleware, db

from .conftest import fresh_table, kill_backend, raw_query

NS = uuid.UUID("0b7f3c56-8a1e-4f0e-9d59-3c1f5b2a7e10")
BASE_TIME = datetime.datetime(2024, 3, 9, 17, 45, 12, 345678, tzinfo=datetime.timezone.utc)


def order(n: int) -> dict:
    """Order ``n``: the same row in the app and in the test's expectations."""
    return {
        "id": uuid.uuid5(NS, str(n)),
        "placed_at": BASE_TIME + datetime.timedelta(minutes=n, microseconds=n),
        "customer": f"Zoë Ångström-Łukasiewicz 日本 #{n}",
        "details": {"items": [{"sku": f"Ä-{n}", "qty": n % 5 + 1, "price": "12.50"}],
                    "gift": n % 2 == 0, "note": "façade ✓ 😀", "coupon": None},
        "note": None if n % 3 else f"leave at the door, n={n}",
        "ref": f"ref-{n}",
    }


INSERT = ("INSERT INTO {} (id, placed_at, customer, details, note, ref) "
          "VALUES (%s, %s, %s, %s, %s, %s)")


def insert(session, table, n, ref=None) -> None:
    row = order(n)
    session.execute(INSERT.format(table), (row["id"], row["placed_at"], row["customer"],
                                           row["details"], row["note"], ref or row["ref"]))


@pytest.fixture
def orders(dialect, raw_connect):
    """A fresh orders table; on PostgreSQL ``ref`` is a deferred unique constraint."""
    if dialect == "postgresql":
        columns = ("id uuid PRIMARY KEY, placed_at timestamptz NOT NULL, customer text NOT NULL, "
                   "details jsonb, note text, ref text UNIQUE DEFERRABLE INITIALLY DEFERRED")
    else:
        columns = ("id CHAR(36) PRIMARY KEY, placed_at DATETIME(6) NOT NULL, "
                   "customer VARCHAR(100) NOT NULL, details JSON, note TEXT, "
                   "ref VARCHAR(40) UNIQUE")
    yield from fresh_table(dialect, raw_connect, "web_orders", columns)


def stored(raw, table, dialect) -> list:
    """The committed orders, as ``order(n)`` dicts (MariaDB's naive UTC times made aware)."""
    rows = raw_query(raw, f"SELECT id, placed_at, customer, details, note, ref FROM {table} "
                          "ORDER BY placed_at")
    out = []
    for id_, placed_at, customer, details, note, ref in rows:
        if dialect == "mysql":
            id_, details = uuid.UUID(id_), json.loads(details)
            placed_at = placed_at.replace(tzinfo=datetime.timezone.utc)
        out.append({"id": id_, "placed_at": placed_at, "customer": customer, "details": details,
                    "note": note, "ref": ref})
    return out


def count(raw, table) -> int:
    return raw_query(raw, f"SELECT count(*) FROM {table}")[0][0]


def backend_id(session, dialect) -> int:
    sql = "SELECT pg_backend_pid() AS id" if dialect == "postgresql" \
        else "SELECT CONNECTION_ID() AS id"
    return int(session.execute(sql).fetchone()["id"])


# -- the app -------------------------------------------------------------------------


class Shop:
    """A plain WSGI app on ``engine``: one route per case; what it saw goes in ``seen``."""

    def __init__(self, engine, table, dialect, raw):
        self.engine, self.table, self.dialect, self.raw = engine, table, dialect, raw
        self.seen = []

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        n = int(parse_qs(environ.get("QUERY_STRING", "")).get("n", ["0"])[0])
        if path == "/health":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        if path == "/stream":
            return self.stream(n, start_response)
        session = db.session
        if path == "/whoami":
            fresh = not session.has_connection
            same = fastsess.current_session(self.engine) is session
            self.seen.append((session, fresh, same, backend_id(session, self.dialect)))
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"{}"]
        self.create(session, n)
        if path == "/created":
            start_response("201 Created", [("Content-Type", "text/plain")])
            return [b"created"]
        if path == "/fail":
            raise RuntimeError("the app failed after writing")
        if path == "/reject":
            start_response("409 Conflict", [("Content-Type", "text/plain")])
            return [b"rejected"]
        if path == "/deferred":  # PostgreSQL: the deferred unique check fails at COMMIT
            insert(session, self.table, n + 1000, ref=order(n)["ref"])
            start_response("201 Created", [("Content-Type", "text/plain")])
            return [b"created"]
        if path == "/killed":  # the connection dies between the last statement and COMMIT
            kill_backend(self.raw, self.dialect, backend_id(session, self.dialect))
            start_response("201 Created", [("Content-Type", "text/plain")])
            return [b"created"]
        if path in ("/write", "/write-killed"):  # the legacy write() callable
            if path == "/write-killed":
                kill_backend(self.raw, self.dialect, backend_id(session, self.dialect))
            write = start_response("201 Created", [("Content-Type", "text/plain")])
            write(b"written,")
            return [b"returned"]
        raise AssertionError(path)

    def create(self, session, n) -> None:
        """Order n, written through the scopes that must all join the request's session."""
        with fastsess.session_scope(using=self.engine) as s:
            assert s is session
            with fastsess.atomic(using=self.engine) as a:  # nested: a SAVEPOINT
                assert a is session
                insert(a, self.table, n)
        with self.engine.session_manager() as m:
            assert m is session
        self.seen.append(("scopes", fastsess.current_session(self.engine) is session))

    def stream(self, n, start_response):
        session = db.session
        insert(session, self.table, n)
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""  # an empty chunk: the status is still held
        yield b"first,"
        # Resumed after the first chunk went out: the insert is committed.
        self.seen.append(("committed before the first chunk", count(self.raw, self.table)))
        insert(session, self.table, n + 1)  # after the commit: rolled back at close
        yield b"second"


class Recorder:
    """A ``start_response`` that records each call and what was committed then."""

    def __init__(self, raw, table):
        self.raw, self.table = raw, table
        self.calls, self.written = [], []

    def __call__(self, status, headers, exc_info=None):
        self.calls.append((status, exc_info is not None, count(self.raw, self.table)))
        return self.written.append


def call(app, path, recorder):
    """Call ``app`` as a server would; returns the body (written and iterated)."""
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["PATH_INFO"], _, environ["QUERY_STRING"] = path.partition("?")
    result = app(environ, recorder)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return b"".join(recorder.written) + body


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(app):
    """``app`` on wsgiref's server at 127.0.0.1 (a free port), in a thread; yields the port."""
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        assert not thread.is_alive()


def fetch(port, path):
    """GET ``path``; reads until the server closes: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
def web_engine(url):
    """A small engine of the test's own for the middleware."""
    engine = fastsess.create_engine(url, max_size=2, timeout=10)
    yield engine
    engine.close()


@pytest.fixture
def shop(web_engine, orders, dialect, raw_connect):
    return Shop(web_engine, orders, dialect, raw_connect())


@pytest.fixture(params=["direct", "wsgiref"])
def via(request):
    """How a request reaches the app: called directly, or through wsgiref's server."""
    return request.param


@contextlib.contextmanager
def client(app, via, raw, table):
    """A function ``get(path) -> (status, body, Recorder or None)`` for ``via``."""
    if via == "direct":
        def get(path):
            recorder = Recorder(raw, table)
            body = call(app, path, recorder)
            return int(recorder.calls[-1][0][:3]), body, recorder
        yield get
    else:
        with serving(app) as port:
            yield lambda path: (*fetch(port, path), None)


# -- the cases --------------------------------------------------------------------


def test_commits_before_the_status_goes_out(dialect, shop, web_engine, via, raw_connect):
    raw = raw_connect()
    app = WSGISessionMiddleware(shop, using=web_engine)
    with client(app, via, raw, shop.table) as get:
        status, body, recorder = get("/created?n=1")
    assert (status, body) == (201, b"created")
    if recorder is not None:  # committed when start_response was called, not after
        assert recorder.calls == [("201 Created", False, 1)]
    assert stored(raw, shop.table, dialect) == [order(1)]
    assert ("scopes", True) in shop.seen
    assert web_engine.pool_stats()["in_use"] == 0


@pytest.mark.parametrize("kind", ["deferred", "killed"])
def test_a_failed_commit_is_a_500_with_nothing_of_the_app(dialect, shop, web_engine, via, kind,
                                                          raw_connect, caplog):
    if kind == "deferred" and dialect == "mysql":
        pytest.skip("MariaDB has no deferred constraints (the 'killed' case fails its COMMIT)")
    raw = raw_connect()
    app = WSGISessionMiddleware(shop, using=web_engine)
    with client(app, via, raw, shop.table) as get:
        status, body, recorder = get(f"/{kind}?n=2")
    assert (status, body) == (500, b"Internal Server Error")
    if recorder is not None:  # one call, the 500 with exc_info; never the app's 201
        assert recorder.calls == [("500 Internal Server Error", True, 0)]
    assert count(raw, shop.table) == 0
    assert "the request's commit failed" in caplog.text
    stats = web_engine.pool_stats()
    assert stats["in_use"] == 0
    if kind == "killed":
        assert stats["connections_discarded"] == 1 and stats["idle"] == 0


def test_an_exception_rolls_back(shop, web_engine, via, raw_connect):
    raw = raw_connect()
    app = WSGISessionMiddleware(shop, using=web_engine)
    with client(app, via, raw, shop.table) as get:
        if via == "direct":
            with pytest.raises(RuntimeError, match="failed after writing"):
                get("/fail?n=3")
        else:
            status, body, _ = get("/fail?n=3")
            assert status == 500 and b"failed after writing" not in body  # wsgiref's own page
    assert count(raw, shop.table) == 0
    assert web_engine.pool_stats()["in_use"] == 0
    # The connection was rolled back and kept: the next request uses it.
    assert web_engine.pool_stats()["idle"] == 1


@pytest.mark.parametrize("limit, expected", [(400, 0), (500, 1), (None, 1)])
def test_a_4xx_rolls_back_unless_configured_otherwise(shop, web_engine, via, raw_connect, limit,
                                                     expected):
    raw = raw_connect()
    app = WSGISessionMiddleware(shop, using=web_engine, rollback_on_status=limit)
    with client(app, via, raw, shop.table) as get:
        status, body, recorder = get("/reject?n=4")
    assert (status, body) == (409, b"rejected")
    if recorder is not None:
        assert recorder.calls == [("409 Conflict", False, expected)]
    assert count(raw, shop.table) == expected
    assert web_engine.pool_stats()["in_use"] == 0


def test_a_request_without_queries_takes_no_connection(shop, web_engine, via, raw_connect):
    app = WSGISessionMiddleware(shop, using=web_engine)
    before = web_engine.pool_stats()["checkouts"]
    with client(app, via, raw_connect(), shop.table) as get:
        for _ in range(3):
            assert get("/health")[:2] == (200, b"ok")
    stats = web_engine.pool_stats()
    assert (stats["checkouts"], stats["size"], stats["in_use"]) == (before, 0, 0)


def test_a_streamed_body_is_committed_before_its_first_chunk(dialect, shop, web_engine, via,
                                                            raw_connect):
    raw = raw_connect()
    app = WSGISessionMiddleware(shop, using=web_engine)
    with client(app, via, raw, shop.table) as get:
        status, body, recorder = get("/stream?n=5")
    assert (status, body) == (200, b"first,second")
    if recorder is not None:
        assert recorder.calls == [("200 OK", False, 1)]
    assert ("committed before the first chunk", 1) in shop.seen
    # What the app wrote after the commit, while streaming, was rolled back at close.
    assert stored(raw, shop.table, dialect) == [order(5)]
    assert web_engine.pool_stats()["in_use"] == 0


def test_the_legacy_write_callable_commits_first(dialect, shop, web_engine, raw_connect):
    raw = raw_connect()
    recorder = Recorder(raw, shop.table)
    body = call(WSGISessionMiddleware(shop, using=web_engine), "/write?n=6", recorder)
    assert body == b"written,returned"
    assert recorder.calls == [("201 Created", False, 1)]
    assert stored(raw, shop.table, dialect) == [order(6)]
    assert web_engine.pool_stats()["in_use"] == 0


def test_a_failed_commit_at_the_first_write_is_a_500(shop, web_engine, raw_connect):
    raw = raw_connect()
    recorder = Recorder(raw, shop.table)
    body = call(WSGISessionMiddleware(shop, using=web_engine), "/write-killed?n=6", recorder)
    assert body == b"Internal Server Error"  # once; neither the write nor the returned body
    assert recorder.calls == [("500 Internal Server Error", True, 0)]
    assert count(raw, shop.table) == 0
    assert web_engine.pool_stats()["in_use"] == 0


def test_sequential_requests_each_start_with_no_session(shop, web_engine, via, raw_connect):
    leaked = []

    def outer(environ, start_response):
        # Outside the middleware, before it runs: nothing may be left over.
        for lookup in (lambda: fastsess.current_session(web_engine), lambda: db.session):
            try:
                lookup()
                leaked.append(environ["PATH_INFO"])
            except SessionNotFound:
                pass
        return app(environ, start_response)

    app = WSGISessionMiddleware(shop, using=web_engine)
    in_use = []
    with client(outer, via, raw_connect(), shop.table) as get:
        for _ in range(100):
            assert get("/whoami")[0] == 200
            in_use.append(web_engine.pool_stats()["in_use"])
    assert leaked == [] and in_use == [0] * 100
    assert len(shop.seen) == 100 and len({id(s[0]) for s in shop.seen}) == 100  # (all kept alive)
    assert all(fresh and same for _, fresh, same, _ in shop.seen)
    # One connection served all of them: each went back before the next request.
    assert len({s[3] for s in shop.seen}) == 1
    stats = web_engine.pool_stats()
    assert (stats["size"], stats["connections_opened"], stats["checkouts"]) == (1, 1, 100)


def test_db_session_outside_a_request_raises():
    with pytest.raises(RequestSessionNotFound, match="only available inside a request") as caught:
        db.session  # noqa: B018
    assert isinstance(caught.value, SessionNotFound)
    assert "SessionMiddleware" in str(caught.value)


def test_stacked_middlewares_and_registry_names(url, shop, web_engine, raw_connect):
    name = f"web_{uuid.uuid4().hex[:8]}"
    outer_engine = fastsess.configure_factory(url, config={"max_size": 1}, name=name)
    seen = {}

    def app(environ, start_response):
        seen["innermost"] = db.session is fastsess.current_session(web_engine)
        seen["by engine"] = db.get_session(outer_engine) is fastsess.current_session(name)
        seen["by name"] = db.get_session(name) is db.get_session(outer_engine)
        seen["distinct"] = db.get_session(name) is not db.session
        start_response("204 No Content", [])
        return []

    try:
        stacked = WSGISessionMiddleware(WSGISessionMiddleware(app, using=web_engine), using=name)
        call(stacked, "/", Recorder(raw_connect(), shop.table))
    finally:
        fastsess.destroy_engine(name)
    assert seen == {"innermost": True, "by engine": True, "by name": True, "distinct": True}


def test_another_thread_does_not_see_the_request_session(shop, web_engine, raw_connect):
    seen = {}

    def app(environ, start_response):
        seen["mine"] = db.session

        def elsewhere():
            try:
                db.session  # noqa: B018
                seen["other"] = "found"
            except RequestSessionNotFound as e:
                seen["other"] = str(e)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(10)

        def copied():  # a thread that runs in a copy of the request's context
            try:
                db.session  # noqa: B018
                seen["copied"] = "found"
            except RequestSessionNotFound as e:
                seen["copied"] = str(e)

        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(copied,))
        thread.start()
        thread.join(10)
        start_response("200 OK", [])
        return [b""]

    call(WSGISessionMiddleware(app, using=web_engine), "/", Recorder(raw_connect(), shop.table))
    assert seen["mine"] is not None
    assert "no request session" in seen["other"]  # a thread starts with an empty context
    assert "only in the request's own task or thread" in seen["copied"]


# -- a RESTAlchemy API (its WSGI app, no Flask) on the drop-in -------------------------


def restalchemy_api(models):
    """RESTAlchemy's own WSGI app serving ``models.Item`` at /items/: what a
    RESTAlchemy service is, with its error middleware (409 on conflicts)."""
    from restalchemy.api import applications, controllers, resources, routes
    from restalchemy.api.middlewares import errors

    class ItemController(controllers.BaseResourceController):
        __resource__ = resources.ResourceByRAModel(models.Item)

        def create(self, **kwargs):
            item = super().create(**kwargs)
            if kwargs["name"].startswith("twice"):  # the unique name again: a 409
                self.model(name=kwargs["name"]).insert()
            return item

    class ItemRoute(routes.Route):
        __controller__ = ItemController
        __allow_methods__ = [routes.CREATE, routes.GET, routes.FILTER]  # noqa: RUF012

    class Root(routes.RootRoute):
        items = routes.route(ItemRoute)

    return errors.ErrorsHandlerMiddleware(applications.WSGIApp(Root))


def post_json(app, path, body, recorder):
    """POST ``body`` as JSON to ``app``, called directly; returns the response body."""
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    data = json.dumps(body).encode()
    environ.update(REQUEST_METHOD="POST", PATH_INFO=path, CONTENT_TYPE="application/json",
                   CONTENT_LENGTH=str(len(data)))
    environ["wsgi.input"] = io.BytesIO(data)
    result = app(environ, recorder)
    try:
        return b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()


@pytest.fixture
def ra_raw(ra_engine, dialect):
    """A plain autocommit connection to the drop-in's database (a database of its own)."""
    u = ra_engine.url
    if dialect == "postgresql":
        import psycopg

        conn = psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                               dbname=u.database, autocommit=True)
    else:
        import MySQLdb

        conn = MySQLdb.connect(host=u.host, port=u.port, user=u.username,
                               passwd=u.password or "", db=u.database, autocommit=True,
                               charset="utf8mb4")
    yield conn
    conn.close()


def test_a_restalchemy_api_commits_before_its_response(ra_engine, ra_models, ra_raw):
    table = ra_models.Item.__tablename__
    app = WSGISessionMiddleware(restalchemy_api(ra_models), using=ra_engine)
    before = ra_engine.pool_stats()["checkouts"]
    data = {"gift": True, "note": "façade ✓ 😀", "lines": [{"sku": "Ä-1", "qty": 2}],
            "coupon": None}
    created = Recorder(ra_raw, table)
    body = json.loads(post_json(app, "/items/", {"name": "Grüße 日本", "count": 3, "data": data},
                                created))
    assert created.calls == [("201 Created", False, 1)]  # committed before the status
    assert (body["name"], body["count"], body["data"]) == ("Grüße 日本", 3, data)
    assert uuid.UUID(body["uuid"])

    conflict = Recorder(ra_raw, table)
    post_json(app, "/items/", {"name": "twice"}, conflict)
    assert conflict.calls == [("409 Conflict", False, 1)]  # its first insert rolled back

    items = ra_models.Item.objects.get_all()
    assert [(i.name, i.count, i.data) for i in items] == [("Grüße 日本", 3, data)]
    assert items[0].created.tzinfo is not None
    stats = ra_engine.pool_stats()
    assert stats["in_use"] == 0 and stats["checkouts"] == before + 3
