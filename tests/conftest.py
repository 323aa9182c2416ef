"""Shared fixtures: the real PostgreSQL and MySQL servers, and engines on them.

Server URLs come from ``FASTSESS_TEST_PG_URL`` / ``FASTSESS_TEST_MYSQL_URL``
(defaults: the local servers).  Database tests carry the ``db`` marker and
fail, with instructions, when a server is unreachable; deselect them
explicitly with ``-m "not db"``.
"""

from __future__ import annotations

import importlib
import os
import time
import uuid

import pytest

import fastsess
import fastsess._speedups_py as twin

# The RESTAlchemy drop-in's fixtures (ra_engine, ra_models, drop_in, ...).
pytest_plugins = ["tests.restalchemy_models"]

PG_URL = os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}

_HOW_TO_START = {
    "postgresql": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
                  "(or run scripts/test.sh, which starts it)",
    "mysql": "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd "
             "(or run scripts/test.sh, which starts it)",
}
_reachable: dict = {}


def pytest_sessionstart(session):
    # A module of the session core compiled before its source was last
    # edited would test the old code: rebuild first.
    from fastsess import _impl

    stale = []
    for name in _impl.compiled_modules():
        built = importlib.import_module(f"fastsess.{name}").__file__
        source = os.path.join(os.path.dirname(built), f"{name}.py")
        if os.path.getmtime(source) > os.path.getmtime(built):
            stale.append(name)
    if stale:
        pytest.exit(f"fastsess.{', '.join(stale)}: the compiled build is older than the source; "
                    "rebuild with: bash scripts/bootstrap.sh", returncode=4)


def _flag(name: str) -> bool:
    """An env switch read as fastsess._impl reads it ("", "0", "false", "no": unset)."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _load_native():
    """The compiled module and None, or None and why it is not tested."""
    if _flag("FASTSESS_PURE_PYTHON"):
        return None, "FASTSESS_PURE_PYTHON is set"
    try:
        return importlib.import_module("fastsess._speedups"), None
    except ImportError as e:
        if _flag("FASTSESS_REQUIRE_EXTENSION"):
            raise
        return None, f"fastsess._speedups is not importable: {e}"


native, native_missing = _load_native()


@pytest.fixture(
    params=[
        pytest.param(
            "cython",
            marks=[
                pytest.mark.native,
                pytest.mark.skipif(native is None, reason=str(native_missing)),
            ],
        ),
        "python",
    ]
)
def kernels(request):
    """The kernel module under test: fastsess._speedups or its twin."""
    return native if request.param == "cython" else twin



def pytest_report_header(config):
    import psycopg

    return [f"fastsess implementation: {fastsess.__impl__}",
            f"psycopg implementation: {psycopg.pq.__impl__}",
            f"servers: {fastsess.DatabaseURL.parse(PG_URL)} {fastsess.DatabaseURL.parse(MYSQL_URL)}"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "dialect" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def _require_server(dialect: str) -> None:
    """Fail (not skip) with instructions when the server is unreachable."""
    if dialect not in _reachable:
        engine = fastsess.create_engine(URLS[dialect], max_size=1, timeout=5)
        try:
            with engine.session_manager() as s:
                s.execute("SELECT 1")
            _reachable[dialect] = None
        except fastsess.errors.FastsessError as e:
            _reachable[dialect] = f"{dialect} server unreachable at {engine.url}: {e}\n{_HOW_TO_START[dialect]}"
        finally:
            engine.close()
    if _reachable[dialect]:
        pytest.fail(_reachable[dialect], pytrace=False)


@pytest.fixture(params=["postgresql", "mysql"])
def dialect(request):
    """Each database test runs on PostgreSQL and on MySQL/MariaDB."""
    _require_server(request.param)
    return request.param


@pytest.fixture
def url(dialect):
    return URLS[dialect]


@pytest.fixture
def engine(url):
    """A fresh engine (small pool, short timeout), closed after the test."""
    eng = fastsess.create_engine(url, max_size=4, timeout=5)
    yield eng
    eng.close()


@pytest.fixture
def raw_connect(dialect):
    """Opens a plain driver connection (autocommit) outside fastsess."""
    opened = []

    def connect():
        u = fastsess.DatabaseURL.parse(URLS[dialect])
        if dialect == "postgresql":
            import psycopg

            conn = psycopg.connect(host=u.host, port=u.port, user=u.username,
                                   password=u.password, dbname=u.database, autocommit=True)
        else:
            import MySQLdb

            kwargs = dict(host=u.host, port=u.port, user=u.username, db=u.database,
                          autocommit=True, charset="utf8mb4")
            if u.password:
                kwargs["passwd"] = u.password
            conn = MySQLdb.connect(**kwargs)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def raw_query(conn, sql, params=None):
    """Rows (tuples) of ``sql`` on a plain driver connection."""
    cur = conn.cursor()
    cur.execute(sql, params)
    rows = cur.fetchall() if cur.description else []
    cur.close()
    return [tuple(r) for r in rows]


def fresh_table(dialect, raw_connect, prefix, columns_sql):
    """Create a uniquely named table; a generator for fixtures (dropped after)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = raw_connect()
    engine_clause = " ENGINE=InnoDB" if dialect == "mysql" else ""
    raw_query(conn, f"CREATE TABLE {name} ({columns_sql}){engine_clause}")
    yield name
    # A test that died holding a transaction on the table would make the DROP
    # wait for ever: bound the wait so it fails instead of hanging the suite.
    raw_query(conn, "SET lock_timeout = '30s'" if dialect == "postgresql"
              else "SET SESSION lock_wait_timeout = 30")
    raw_query(conn, f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def table(dialect, raw_connect):
    """A fresh table ``(id int primary key, name varchar(100), n int)``; dropped after."""
    yield from fresh_table(dialect, raw_connect, "t", "id INT PRIMARY KEY, name VARCHAR(100), n INT")


@pytest.fixture
def table2(dialect, raw_connect):
    """A fresh table with a composite primary key ``(a, b)`` and a ``v`` column."""
    yield from fresh_table(dialect, raw_connect, "t2",
                           "a INT NOT NULL, b VARCHAR(20) NOT NULL, v INT, PRIMARY KEY (a, b)")


def kill_backend(raw, dialect, bid) -> None:
    """Kill server connection ``bid`` from plain connection ``raw``; wait until it is gone."""
    if dialect == "postgresql":
        assert raw_query(raw, "SELECT pg_terminate_backend(%s)", (bid,)) == [(True,)]
        probe = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
    else:
        raw_query(raw, f"KILL {int(bid)}")
        probe = "SELECT count(*) FROM information_schema.processlist WHERE id = %s"
    deadline = time.monotonic() + 10
    while raw_query(raw, probe, (bid,))[0][0]:
        assert time.monotonic() < deadline, f"backend {bid} still alive after being killed"
        time.sleep(0.02)


def server_connection_count(raw_conn, dialect) -> int:
    """Client connections the server itself counts, other than ``raw_conn``'s own."""
    if dialect == "postgresql":
        rows = raw_query(raw_conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                   "'client backend' AND pid <> pg_backend_pid() AND datname = current_database()")
    else:
        rows = raw_query(raw_conn, "SELECT count(*) FROM information_schema.processlist "
                                   "WHERE id <> CONNECTION_ID() AND db = DATABASE()")
    return int(rows[0][0])


# -- async tests (issue 12), without pytest-asyncio --------------------------------------

#: No async test runs longer than this: a hang fails the test instead of the suite.
ASYNC_TEST_TIMEOUT = 60.0


def run_async(test):
    """Decorator: run the coroutine function ``test`` (an async test with the
    usual fixtures as arguments) on a fresh event loop with ``asyncio.run``,
    bounded by ``ASYNC_TEST_TIMEOUT``.  Async engines are made inside it (an
    async pool serves the loop that first used it)."""
    import asyncio
    import functools

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), ASYNC_TEST_TIMEOUT))

    return run


class async_engine:
    """``async with async_engine(url, **options) as engine:`` — an AsyncEngine
    made on the running loop (small pool, short timeout unless given),
    closed when the block ends."""

    def __init__(self, url, **options):
        options.setdefault("max_size", 4)
        options.setdefault("timeout", 5)
        self._url, self._options, self._engine = url, options, None

    async def __aenter__(self):
        self._engine = fastsess.create_async_engine(self._url, **self._options)
        return self._engine

    async def __aexit__(self, *exc):
        await self._engine.close()
        return False


async def async_backend_id(session) -> int:
    """The server-side id of the connection async ``session`` uses (checks one out)."""
    sql = ("SELECT pg_backend_pid() AS bid" if session.engine.dialect_name == "postgresql"
           else "SELECT CONNECTION_ID() AS bid")
    return int((await session.execute(sql)).fetchone()["bid"])


class Model:
    """A RESTAlchemy-style model over a table whose primary key is ``id``
    (what the batch methods read of one)."""

    primary_key = ("id",)

    def __init__(self, table, **values):
        self._table = table
        self._values = values

    def get_table(self):
        return self._table

    def get_storable_snapshot(self):
        return dict(self._values)

    def get_id_properties(self):
        # The values are property objects in RESTAlchemy; only the names matter.
        return {name: object() for name in self.primary_key}


class KeylessModel(Model):
    primary_key = ()
