"""Drop-in engines: RESTAlchemy's ``PgSQLEngine``/``MySQLEngine`` on fastsess.

Each class derives from ``fastsess.Engine`` (pool, sessions, driver adapter)
and from the stock RESTAlchemy class it replaces, so ``isinstance`` checks,
``dialect``, ``escape``, ``db_name``, ``db_host``, ... keep working, and takes
the stock constructor's arguments: ``(db_url, config=None, query_cache=False,
readonly=False)``.  ``config`` is what RESTAlchemy passes to psycopg_pool
(PostgreSQL) or to mysql-connector's pool (MySQL), translated here; a key
with no fastsess meaning that could change behaviour raises ``TypeError``.

Differences from the stock engines, by design:

- MySQL goes through mysqlclient, so ``get_connection()`` hands out a
  ``MySQLdb`` connection, not a mysql-connector one;
- connections handed out by ``get_connection()`` get their defaults back in
  ``close_connection()`` (autocommit off), so a caller that switched
  autocommit on does not leave it on for the next session;
- a MySQL engine opens no connection until one is needed (mysql-connector's
  pool opens ``pool_size`` at once); a PostgreSQL engine opens ``min_size``
  (psycopg_pool's default 4) at once, as psycopg_pool does;
- ``escape`` and the engine's dialect refuse table and column names that
  could break out of their quotes (``fastsess.restalchemy.identifiers``);
  other names are quoted exactly as stock.

Each engine class imports its own driver when an engine is made, not when
this module is imported (which ``install()`` does): a MySQL drop-in needs no
psycopg from fastsess, a PostgreSQL one no mysqlclient.  (RESTAlchemy 16's
own ``restalchemy.storage.sql.engines`` imports psycopg, psycopg_pool and
mysql-connector itself.)
"""

from __future__ import annotations

import weakref
from urllib import parse

from restalchemy.storage.sql import engines as ra_engines
from restalchemy.storage.sql import sessions as ra_sessions

from .. import errors as fs_errors
from ..engine import Engine
from ..pool import Pool
from . import identifiers, sessions

# Stock classes, as they were when this module was first imported (install()
# imports it before it touches RESTAlchemy's module).
StockPgSQLEngine = ra_engines.PgSQLEngine
StockMySQLEngine = ra_engines.MySQLEngine

# psycopg_pool.ConnectionPool arguments: the pool sizes and times fastsess's
# pool takes as they are, and the ones that only steer psycopg_pool's own
# machinery (worker threads, reconnect loop, health check on checkout).
_PG_POOL_OPTIONS = ("min_size", "max_size", "timeout", "max_waiting", "max_idle", "max_lifetime")
_PG_IGNORED = frozenset({"num_workers", "reconnect_timeout", "name", "check"})
_PG_HANDLED = frozenset({"open", "kwargs", "configure", "reset"})
# psycopg_pool's default pool size.
_PG_MIN_SIZE = 4

# mysql-connector pooling arguments.
_MYSQL_POOL_SIZE = 5  # mysql-connector's default pool_size
_MYSQL_POOL_OPTIONS = ("min_size", "max_size", "timeout", "max_waiting", "max_idle",
                       "max_lifetime")
_MYSQL_IGNORED = frozenset({"pool_name", "pool_reset_session"})
# mysql-connector connect argument -> mysqlclient connect argument.
_MYSQL_CONNECT = {
    "connection_timeout": "connect_timeout",
    "connect_timeout": "connect_timeout",
    "read_timeout": "read_timeout",
    "write_timeout": "write_timeout",
    "charset": "charset",
    "collation": "collation",
    "init_command": "init_command",
    "sql_mode": "sql_mode",
    "unix_socket": "unix_socket",
    "autocommit": "autocommit",
}
_MYSQL_SSL = {"ssl_ca": "ca", "ssl_cert": "cert", "ssl_key": "key"}
_MYSQL_HANDLED = frozenset({"pool_size", "kwargs", "configure"})


def _unknown(config: dict, known, dialect: str) -> None:
    if config:
        raise TypeError(
            f"unsupported {dialect} engine config key(s) {', '.join(map(repr, sorted(config)))}"
            f" for fastsess; supported: {', '.join(sorted(known))}")


def _check_callable(name, value):
    if value is not None and not callable(value):
        raise TypeError(f"config[{name!r}] must be callable, got {type(value).__name__}")
    return value


class DropInEngine(Engine):
    """What both drop-in engines share (see the module docstring)."""

    _session_class = None  # set by the subclasses
    # RESTAlchemy's session class the drop-in session stands in for.
    _stock_session = None
    # Whether the class overrides get_connection/close_connection (set per
    # subclass): its sessions then take their connections through them.
    _routes_connections = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._routes_connections = (cls.get_connection is not Engine.get_connection
                                   or cls.close_connection is not Engine.close_connection)

    def __init__(self, db_url, config=None, query_cache=False, readonly=False):
        if not isinstance(db_url, str):
            raise TypeError(f"db_url must be a str, got {type(db_url).__name__}")
        parsed = parse.urlparse(db_url)
        if parsed.scheme != self.URL_SCHEMA:
            # RESTAlchemy's own check and message.
            raise ValueError(
                f"Database url should be starts with {self.URL_SCHEMA}://. For example: "
                "mysql://<username>:[password]@<host>:[port]/<database_name>")
        # What RESTAlchemy's AbstractEngine keeps (its properties read them).
        self._db_url = parsed
        self._db_name = parsed.path[1:]
        self._config = dict(config or {})
        self._dialect = self._new_dialect()
        self._session_storage = sessions.SharedSessionStorage()
        options, connect_args, self._configure, self._on_reset = self._translate_config(
            dict(self._config))
        Engine.__init__(self, db_url, query_cache=query_cache, readonly=readonly,
                        connect_args=connect_args, name="restalchemy", **options)
        # fastsess.session_manager(engine) looks here: the shared slot too.
        self._storage = self._session_storage
        # Close the pool when the engine is collected (or at exit), as the
        # stock engines do; the finalizer holds the pool, not the engine.
        self._finalizer = weakref.finalize(self, self._pool.close)

    def _make_adapter(self, url, connect_args, readonly):
        # Each dialect's adapter module imports its own driver, here rather
        # than when install() imports this module.
        if url.dialect == "postgresql":
            from .adapters_pgsql import adapter_class
        else:
            from .adapters_mysql import adapter_class
        cls = adapter_class(self._on_reset is not None)
        return cls(url, connect_args, readonly, self._configure, self._on_reset)

    def __repr__(self) -> str:
        state = " closed" if self._pool.closed else ""
        return f"<fastsess.restalchemy.{type(self).__name__} {self.url.censored()}{state}>"

    def __del__(self):
        # Shadows the stock MySQLEngine.__del__ (it empties mysql-connector's
        # pool); the finalizer closes this engine's pool.
        pass

    # -- what RESTAlchemy reads off an engine -----------------------------------

    @property
    def dialect(self):
        return self._dialect

    @property
    def db_name(self):
        return self._db_name

    @property
    def readonly(self):
        return self._readonly

    @readonly.setter
    def readonly(self, value):
        # fastsess.Engine.__init__ sets it once; after that it is read-only,
        # as on the stock engines (the connections could not follow).
        if "_readonly" in self.__dict__:
            raise AttributeError("readonly is fixed when the engine is made")
        self._readonly = bool(value)

    @property
    def query_cache(self):
        return self._query_cache

    @query_cache.setter
    def query_cache(self, value):
        if "_query_cache" in self.__dict__:  # as readonly
            raise AttributeError("query_cache is fixed when the engine is made")
        self._query_cache = bool(value)

    def escape(self, value):
        """``value`` quoted as one identifier, exactly as the stock engine
        quotes it, but refused (``identifiers.InvalidIdentifier``, a
        ``ValueError``) when it could break out of the quotes or name another
        object.  RESTAlchemy writes every column name through here."""
        return identifiers.quote(self._dialect.DIALECT_NAME, value)

    def get_session_storage(self):
        return self._session_storage

    def _get_session_from_storage(self):
        """The session stored for this thread (by any engine), or None."""
        storage = self.get_session_storage()
        find = getattr(storage, "find_session", None)
        if find is not None:
            return find()
        try:
            return storage.get_session()
        except ra_sessions.SessionNotFound:
            return None

    def session_manager(self, session=None):
        """See ``fastsess.restalchemy.sessions.SessionManager``."""
        return sessions.SessionManager(self, session)

    def get_session(self):
        """A new drop-in session (it takes a connection on its first statement)."""
        replaced = getattr(ra_sessions, self._stock_session.__name__)
        if replaced is not self._stock_session:
            # RESTAlchemy's session class was replaced after install() (a
            # subclass, a mock): build it as the stock engine does.
            return replaced(engine=self)
        if self._pool._closed:
            raise fs_errors.EngineClosed(f"{self!r} is closed")
        session = self._session_class(self)
        if self._routes_connections or "get_connection" in self.__dict__ \
                or "close_connection" in self.__dict__:
            session._pool = sessions.EngineConnections(self)
        return session


class PgSQLEngine(DropInEngine, StockPgSQLEngine):
    """RESTAlchemy's ``PgSQLEngine`` on fastsess (psycopg)."""

    _session_class = sessions.PgSQLSession
    _stock_session = ra_sessions.PgSQLSession

    def _new_dialect(self):
        return identifiers.PgSQLDialect()

    def _translate_config(self, config):
        """(pool options, connect args, configure, reset) from psycopg_pool
        arguments."""
        connect_args = dict(config.pop("kwargs", None) or {})
        configure = _check_callable("configure", config.pop("configure", None))
        reset = _check_callable("reset", config.pop("reset", None))
        opened = config.pop("open", True)
        min_size = config.pop("min_size", _PG_MIN_SIZE)
        max_size = config.pop("max_size", None)
        # psycopg_pool: max_size defaults to min_size.
        options = {"min_size": min_size if opened else 0,
                   "max_size": max_size if max_size is not None else max(min_size, 1)}
        for key in _PG_POOL_OPTIONS:
            if key in config:
                options[key] = config.pop(key)
        for key in _PG_IGNORED:
            config.pop(key, None)
        _unknown(config, set(_PG_POOL_OPTIONS) | _PG_IGNORED | _PG_HANDLED, "PostgreSQL")
        return options, connect_args, configure, reset


class _MySQLPool(Pool):
    """RESTAlchemy code calls mysql-connector's pool method to close a MySQL
    engine's connections (its MySQLEngine.__del__ does): closing the pool
    is what it means here."""

    __slots__ = ()

    def _remove_connections(self) -> None:
        self.close()


class MySQLEngine(DropInEngine, StockMySQLEngine):
    """RESTAlchemy's ``MySQLEngine`` on fastsess (mysqlclient)."""

    _session_class = sessions.MySQLSession
    _stock_session = ra_sessions.MySQLSession

    _pool_class = _MySQLPool

    def _new_dialect(self):
        return identifiers.MySQLDialect()

    def _translate_config(self, config):
        """(pool options, connect args, configure, None) from
        mysql-connector pooling arguments."""
        connect_args = dict(config.pop("kwargs", None) or {})
        configure = _check_callable("configure", config.pop("configure", None))
        pool_size = config.pop("pool_size", None)
        options = {"min_size": 0,
                   "max_size": pool_size if pool_size is not None else _MYSQL_POOL_SIZE}
        for key in _MYSQL_POOL_OPTIONS:
            if key in config:
                options[key] = config.pop(key)
        for key, ours in _MYSQL_CONNECT.items():
            if key in config:
                connect_args[ours] = config.pop(key)
        ssl = {ours: config.pop(key) for key, ours in _MYSQL_SSL.items() if key in config}
        if ssl:
            connect_args["ssl"] = ssl
        for key in _MYSQL_IGNORED:
            config.pop(key, None)
        _unknown(config, set(_MYSQL_POOL_OPTIONS) | set(_MYSQL_CONNECT) | set(_MYSQL_SSL)
                 | _MYSQL_IGNORED | _MYSQL_HANDLED, "MySQL")
        from .adapters_mysql import FOUND_ROWS

        connect_args["client_flag"] = connect_args.get("client_flag", 0) | FOUND_ROWS
        return options, connect_args, configure, None
