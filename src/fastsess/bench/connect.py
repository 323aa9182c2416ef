"""Database URLs, raw driver connections and what the bench says when a server is down."""

from __future__ import annotations

import os
from urllib.parse import quote

from ..url import DatabaseURL

DEFAULT_URLS = {
    "postgresql": os.environ.get("FASTSESS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("FASTSESS_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
HOW_TO_START = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mysql": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}
# What the floor is written against, per database.
FLOOR_DRIVER = {"postgresql": "psycopg", "mysql": "mysqlclient"}


def raw_connect(url, autocommit=False):
    """A plain driver connection (psycopg or mysqlclient) outside fastsess."""
    u = DatabaseURL.parse(url)
    if u.dialect == "postgresql":
        import psycopg

        kwargs = dict(u.query)
        return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                               dbname=u.database, connect_timeout=10, autocommit=autocommit, **kwargs)
    import MySQLdb

    kwargs = dict(host=u.host or "localhost", port=u.port or 3306, user=u.username,
                  db=u.database, charset="utf8mb4", autocommit=autocommit, connect_timeout=10)
    if u.password:
        kwargs["passwd"] = u.password
    return MySQLdb.connect(**{k: v for k, v in kwargs.items() if v is not None})


async def raw_connect_async(url):
    """A plain async driver connection outside fastsess: psycopg's
    ``AsyncConnection`` on PostgreSQL, asyncmy on MySQL (the async floors)."""
    u = DatabaseURL.parse(url)
    if u.dialect == "postgresql":
        import psycopg

        return await psycopg.AsyncConnection.connect(
            host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
            connect_timeout=10, **dict(u.query))
    import asyncmy

    return await asyncmy.connect(host=u.host or "localhost", port=u.port or 3306,
                                 user=u.username, password=u.password or "", database=u.database,
                                 charset="utf8mb4", autocommit=False, connect_timeout=10)


def is_floor_connection(dialect, conn, asynchronous=False) -> bool:
    """Whether ``conn`` is a connection of the floor's driver (the async
    floor's with ``asynchronous``), so the floor can run on it."""
    if dialect == "postgresql":
        import psycopg

        return isinstance(conn, psycopg.AsyncConnection if asynchronous else psycopg.Connection)
    if asynchronous:
        import asyncmy

        return isinstance(conn, asyncmy.Connection)
    import MySQLdb.connections

    return isinstance(conn, MySQLdb.connections.Connection)


def connection_id(dialect, conn):
    """The server's id of the connection (backend pid / thread id), read client-side
    (psycopg's sync and async connections; mysqlclient and asyncmy both have thread_id())."""
    if dialect == "postgresql":
        return conn.info.backend_pid
    return conn.thread_id()


def server_version(dialect, conn) -> str:
    """'PostgreSQL 15.20', 'MariaDB 10.11.19', 'MySQL 8.0.36'."""
    cur = conn.cursor()
    cur.execute("SHOW server_version" if dialect == "postgresql" else "SELECT version()")
    version = str(cur.fetchone()[0])
    cur.close()
    if dialect == "postgresql":
        return "PostgreSQL " + version.split()[0]
    return ("MariaDB " if "mariadb" in version.lower() else "MySQL ") + version.split("-")[0]


def unreachable_message(dialect, url, error) -> str:
    shown = DatabaseURL.parse(url)
    detail = shown.scrub(str(error)).strip().replace("\n", " ")
    return (f"{dialect}: cannot reach {shown} ({detail}); start it with: {HOW_TO_START[dialect]} "
            f"(or run scripts/bench.sh, which starts it)")


def _auth(u: DatabaseURL) -> str:
    if u.username is None:
        return ""
    auth = quote(u.username, safe="")
    if u.password is not None:
        auth += ":" + quote(u.password, safe="")
    return auth + "@"


def restalchemy_url(url) -> str:
    """The URL in the form RESTAlchemy's engine factory accepts (scheme
    ``postgresql://`` or ``mysql://``, default port spelled out)."""
    u = DatabaseURL.parse(url)
    port = u.port or (5432 if u.dialect == "postgresql" else 3306)
    text = f"{u.dialect}://{_auth(u)}{u.host or 'localhost'}:{port}/{u.database}"
    if u.dialect == "postgresql" and u.query:
        # RESTAlchemy hands the URL to libpq, which reads these itself.
        text += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in u.query.items())
    return text


def sqlalchemy_url(url, asynchronous=False):
    """The URL for SQLAlchemy on the same drivers: postgresql+psycopg, mysql+mysqldb
    (with ``asynchronous``: postgresql+psycopg, whose async dialect runs psycopg's
    AsyncConnection, and mysql+asyncmy)."""
    from sqlalchemy.engine import URL

    u = DatabaseURL.parse(url)
    query = dict(u.query)
    if u.dialect == "mysql":
        query.setdefault("charset", "utf8mb4")
    mysql = "mysql+asyncmy" if asynchronous else "mysql+mysqldb"
    return URL.create("postgresql+psycopg" if u.dialect == "postgresql" else mysql,
                      username=u.username, password=u.password, host=u.host, port=u.port,
                      database=u.database, query=query)
