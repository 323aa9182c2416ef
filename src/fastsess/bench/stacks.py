"""The stacks the bench compares, each writing every scenario the way its users would.

``fastsess`` runs on the engine (one connection) the raw-driver floor
borrows.  The others -- the pure twin, RESTAlchemy stock and on fastsess,
SQLAlchemy -- own their engines, each built with a pool of exactly one
connection, and ``borrow()`` lends that connection so the floor can be run on
it too (see ``fastsess.bench`` for why).
"""

from __future__ import annotations

import contextlib

from .aio import open_async_stack
from .base import STACKS, Stack, Unavailable, session_impl, version_of
from .connect import sqlalchemy_url
from .scenarios import ROW_COLUMNS, Impl, Workload, values
from .twin import native_missing_reason, twin_package

# STACKS and Unavailable come from .base; they stay importable from here.
__all__ = ["STACKS", "Unavailable", "EngineLender", "FastsessStack", "SQLAlchemyStack",
           "open_stack", "versions"]

# -- fastsess -----------------------------------------------------------------


class EngineLender(Stack):
    """Lends the connection of a fastsess engine (the raw driver's own floor)."""

    key = "raw"

    def __init__(self, workload, engine):
        super().__init__(workload)
        self.engine = engine

    @contextlib.contextmanager
    def borrow(self):
        conn = self.engine.get_connection()
        try:
            yield conn
        finally:
            self.engine.close_connection(conn)


class FastsessStack(EngineLender):
    """fastsess sessions on the compiled kernels, or (``pure``) on their twin.

    The compiled stack runs on the engine the floor borrows from.  The twin
    runs on the copy of fastsess ``twin.twin_package()`` loads, with an
    engine (and connection) of its own -- or, in a process that runs the
    twin only, on the floor's engine like the compiled stack would.
    """

    def __init__(self, workload, engine, pure=False):
        self.key = "pure" if pure else "fastsess"
        self.pure = pure
        self.own_engine = False
        if not pure:
            reason = native_missing_reason()
            if reason:
                raise Unavailable(reason)
        else:
            package = twin_package()
            if package.__name__ != "fastsess":
                engine = package.create_engine(workload.url, max_size=1)
                self.own_engine = True
        super().__init__(workload, engine)
        self.on_floor_engine = not self.own_engine

    def close(self) -> None:
        if self.own_engine:
            self.engine.close()

    def impl(self, key):
        w, e = self.w, self.engine
        n = w.size[key]
        sql = w.sql
        if key in ("fetch", "cycle", "point"):
            return session_impl(key, e, w)
        if key == "insert":
            table, data = w.insert_table, w.insert_data

            def insert():
                with e.session_manager() as s:
                    return s.insert_rows(table, data, ROW_COLUMNS)

            return Impl(insert, prepare=w.truncate_insert, outcome=w.insert_outcome)
        if key == "cache":
            statement, params = sql["point"], (w.cache_id,)
            held = []

            def prime():
                s = e.get_session()
                held.append(s)
                s.cache.fetchall(statement, params)

            def hits():
                fetchall = held[-1].cache.fetchall
                for _ in range(n):
                    rows = fetchall(statement, params)
                return rows

            def close():
                while held:
                    s = held.pop()
                    s.commit()
                    s.close()

            return Impl(hits, prepare=prime, finish=close, outcome=w.rows_outcome())
        raise Unavailable(f"fastsess has no {key!r} scenario")


# -- SQLAlchemy -------------------------------------------------------------------


class SQLAlchemyStack(Stack):
    """SQLAlchemy 2.x Core on the same drivers (postgresql+psycopg, mysql+mysqldb)."""

    key = "sqlalchemy"

    def __init__(self, workload):
        super().__init__(workload)
        try:
            import sqlalchemy as sa
        except ImportError as e:
            raise Unavailable(f"SQLAlchemy is not installed ({e})") from None
        self.sa = sa
        self.engine = sa.create_engine(sqlalchemy_url(workload.url), pool_size=1, max_overflow=0)
        # The insert table as a SQLAlchemy user declares it: native uuid and
        # JSONB on PostgreSQL; on MySQL the key is CHAR(36) text (SQLAlchemy's
        # Uuid would store 32 hex digits) and JSON is dumped by SQLAlchemy.
        if workload.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            key_type, json_type = sa.Uuid(), JSONB()
        else:
            key_type, json_type = sa.String(36), sa.JSON()
        self.table = sa.Table(
            workload.insert_table, sa.MetaData(),
            sa.Column("uuid", key_type, primary_key=True), sa.Column("num", sa.Integer),
            sa.Column("name", sa.String(64)), sa.Column("created_at", sa.DateTime(timezone=True)),
            sa.Column("enabled", sa.Boolean), sa.Column("score", sa.Float),
            sa.Column("note", sa.String(16), nullable=True), sa.Column("payload", json_type))

    @contextlib.contextmanager
    def borrow(self):
        proxied = self.engine.raw_connection()
        try:
            yield proxied.driver_connection
        finally:
            proxied.close()

    def impl(self, key):
        sa, w, e = self.sa, self.w, self.engine
        n = w.size[key]
        cols = ", ".join(ROW_COLUMNS)
        if key == "fetch":
            statement = sa.text(w.sql["fetch"])

            def fetch():
                with e.begin() as c:
                    return c.execute(statement).mappings().all()

            return Impl(fetch, outcome=w.rows_outcome())
        if key == "insert":
            statement, data = sa.insert(self.table), w.insert_dicts

            def insert():
                with e.begin() as c:
                    c.execute(statement, data)
                return len(data)

            return Impl(insert, prepare=w.truncate_insert, outcome=w.insert_outcome)
        if key == "cycle":
            statement = sa.text("SELECT 1")

            def cycle():
                begin = e.begin
                for _ in range(n):
                    with begin() as c:
                        rows = c.execute(statement).mappings().all()
                return n, rows

            return Impl(cycle, outcome=lambda r: (r[0], values(r[1])))
        if key == "point":
            ids = w.point_ids
            statement = sa.text(f"SELECT {cols} FROM {w.rows_table} WHERE uuid = :key")

            def point():
                out = []
                with e.begin() as c:
                    execute = c.execute
                    for i in ids:
                        out.append(execute(statement, {"key": i}).mappings().first())
                return out

            return Impl(point, outcome=w.rows_outcome())
        raise Unavailable(f"no {key!r} scenario")

    def close(self) -> None:
        self.engine.dispose()


def open_stack(key: str, workload: Workload, engine) -> Stack:
    """The stack ``key`` on ``workload``'s database; raises Unavailable."""
    if key == "fastsess":
        return FastsessStack(workload, engine)
    if key == "pure":
        return FastsessStack(workload, engine, pure=True)
    if key in ("ra", "ra-fastsess"):
        from .restalchemy_stacks import RESTAlchemyStack

        return RESTAlchemyStack(workload, on_fastsess=key == "ra-fastsess")
    if key == "sqlalchemy":
        return SQLAlchemyStack(workload)
    return open_async_stack(key, workload)


def versions() -> dict:
    """Versions of everything a run may compare, for the report."""
    import platform

    import fastsess

    from .. import _impl

    out = {"python": platform.python_version(), "fastsess": fastsess.__version__,
           "fastsess kernels": _impl.__impl__}
    for dist in ("psycopg", "psycopg-pool", "mysqlclient", "restalchemy", "mysql-connector-python",
                 "SQLAlchemy", "asyncmy", "asyncpg", "greenlet"):
        out[dist] = version_of(dist)
    try:
        import psycopg

        out["psycopg implementation"] = psycopg.pq.__impl__
    except ImportError:
        pass
    return out
