"""The end-to-end scenarios, one database's tables and data for them, and the raw-driver floors.

Every scenario is written once per stack (``fastsess.bench.stacks``) and once
here against the bare driver -- psycopg on PostgreSQL, mysqlclient on MySQL --
as the floor the stacks are measured against.  The async scenarios (``a...``)
have async floors and stacks, in ``fastsess.bench.aio``.  Each implementation is an
``Impl``: ``run`` is timed; ``prepare`` and ``finish`` run untimed around it;
``outcome`` turns what ``run`` returned into what the pre-timing check
compares with the floor's (rows as plain dicts, a digest of a table, ...).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from ..url import DatabaseURL
from .connect import raw_connect, server_version


@dataclass(frozen=True)
class Scenario:
    key: str
    title_format: str  # "{n}" is the size
    full: int  # size of a full run
    quick: int  # size of a --quick run
    unit: str  # what one operation is, for the µs/op column
    ops_per_n: int = 1
    # Whether each stack is compared with the floor run on its own connection
    # (see fastsess.bench).  Not for work that never reaches the server.
    paired: bool = True
    # Stack keys the scenario does not apply to, and why.
    not_for: tuple = ()
    # The floor's stack key: "raw" (the sync drivers) or "araw" (the async
    # drivers); it decides which stacks run the scenario (base.FAMILIES).
    floor: str = "raw"
    # The stack the "vs" column divides by (none run: the column shows "-").
    reference: str = "ra"

    def size(self, quick: bool) -> int:
        return self.quick if quick else self.full

    def title(self, quick: bool) -> str:
        return self.title_format.format(n=self.size(quick))

    def ops(self, quick: bool) -> int:
        return self.size(quick) * self.ops_per_n


_NO_CACHE = "SQLAlchemy Core has no query-result cache"
_RA_ONLY = "the mix runs RESTAlchemy's ORM; its fastsess figure is 'RESTAlchemy on fastsess'"

# The sync scenarios (what benchmarks/test_bench_scenarios.py runs), the
# async ones (issue 12; benchmarks/test_bench_async.py), and all of them: what
# ``fastsess bench`` runs by default, in this order.
SCENARIOS = {s.key: s for s in (
    Scenario("fetch", "fetch {n} rows as dicts", 10_000, 1_000, "row"),
    Scenario("insert", "batch insert {n} rows", 10_000, 1_000, "row"),
    Scenario("cycle", "session cycle x{n}", 2_000, 100, "cycle"),
    Scenario("point", "point select by key x{n}", 5_000, 200, "select"),
    Scenario("cache", "query-cache hit x{n}", 5_000, 500, "hit", paired=False,
             not_for=(("sqlalchemy", _NO_CACHE),)),
    Scenario("mix", "RESTAlchemy request mix x{n}", 100, 10, "request", ops_per_n=3,
             not_for=(("fastsess", _RA_ONLY), ("pure", _RA_ONLY), ("sqlalchemy", _RA_ONLY))),
)}
ASYNC_SCENARIOS = {s.key: s for s in (
    Scenario("acycle", "async session cycle x{n}", 2_000, 100, "cycle", floor="araw",
             reference="asqlalchemy"),
    Scenario("apoint", "async point select by key x{n}", 5_000, 200, "select", floor="araw",
             reference="asqlalchemy"),
    Scenario("afetch", "async fetch {n} rows as dicts", 10_000, 1_000, "row", floor="araw",
             reference="asqlalchemy"),
)}
ALL_SCENARIOS = {**SCENARIOS, **ASYNC_SCENARIOS}

# What the floor of each scenario is, per database.
FLOORS = {
    ("fetch", "postgresql"): "psycopg cursor.fetchall(), tuple rows",
    ("fetch", "mysql"): "mysqlclient cursor.fetchall(), tuple rows",
    ("insert", "postgresql"): "psycopg COPY FROM STDIN (write_row)",
    ("insert", "mysql"): "mysqlclient cursor.executemany (multi-row VALUES)",
    ("cycle", "postgresql"): "psycopg: cursor, SELECT 1, fetchall, commit",
    ("cycle", "mysql"): "mysqlclient: cursor, SELECT 1, fetchall, commit",
    ("point", "postgresql"): "psycopg: one cursor, execute + fetchone per key, tuple rows",
    ("point", "mysql"): "mysqlclient: one cursor, execute + fetchone per key, tuple rows",
    ("cache", "postgresql"): "a dict memo keyed by (statement, params) in front of psycopg",
    ("cache", "mysql"): "a dict memo keyed by (statement, params) in front of mysqlclient",
    ("mix", "postgresql"): "hand-written SQL on psycopg, tuple rows, a transaction per request",
    ("mix", "mysql"): "hand-written SQL on mysqlclient, tuple rows, a transaction per request",
    ("acycle", "postgresql"): "psycopg AsyncConnection: cursor, SELECT 1, fetchall, commit",
    ("acycle", "mysql"): "asyncmy: cursor, SELECT 1, fetchall, commit",
    ("apoint", "postgresql"): "psycopg AsyncConnection: one cursor, execute + fetchone per key, "
                              "tuple rows",
    ("apoint", "mysql"): "asyncmy: one cursor, execute + fetchone per key, tuple rows",
    ("afetch", "postgresql"): "psycopg AsyncConnection cursor.fetchall(), tuple rows",
    ("afetch", "mysql"): "asyncmy cursor.fetchall(), tuple rows",
}

ROW_COLUMNS = ("id", "name", "score", "ratio", "note")
ITEM_COLUMNS = ("uuid", "name", "quantity")
ITEMS = 200  # rows the mix's collection holds
PAGE = 50  # rows one "list" request returns
CREATED = 10_000_000  # quantity of the rows the mix creates (out of the seeded range)
CACHE_KEY_ID = 42  # the row the cache scenario reads

_DDL = {
    "postgresql": {
        "rows": "CREATE TABLE {t} (id integer PRIMARY KEY, name varchar(64) NOT NULL, "
                "score integer NOT NULL, ratio double precision NOT NULL, note varchar(64) NOT NULL)",
        "items": "CREATE TABLE {t} (uuid uuid PRIMARY KEY, name varchar(64) NOT NULL, "
                 "quantity integer NOT NULL)",
        "index": "CREATE INDEX {t}_quantity ON {t} (quantity)",
    },
    "mysql": {
        "rows": "CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, score INT NOT NULL, "
                "ratio DOUBLE NOT NULL, note VARCHAR(64) NOT NULL) ENGINE=InnoDB",
        "items": "CREATE TABLE {t} (uuid CHAR(36) PRIMARY KEY, name VARCHAR(64) NOT NULL, "
                 "quantity INT NOT NULL) ENGINE=InnoDB",
        "index": "CREATE INDEX {t}_quantity ON {t} (quantity)",
    },
}


def make_row(i: int) -> tuple:
    return (i, f"name {i} \u00e9", (i * 7919) % 100_000, i / 3.0 + 0.1, "note " + "x" * (i % 23))


@dataclass
class Impl:
    """One stack's (or the floor's) implementation of one scenario."""

    run: Callable[[], Any]  # timed
    prepare: Callable[[], None] | None = None  # untimed, before each run
    finish: Callable[[], None] | None = None  # untimed, after each run (also after a failed run)
    outcome: Callable[[Any], Any] = lambda result: result  # what the check compares


def as_dicts(rows) -> list:
    """Mapping rows (dicts, psycopg dict rows, SQLAlchemy RowMapping) as plain dicts."""
    return [dict(r) for r in rows]


def simple(row: dict) -> dict:
    """A row with UUIDs as text (PostgreSQL gives uuid.UUID, MySQL CHAR(36) text)."""
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in row.items()}


def values(rows) -> list:
    """Rows (tuples or mappings) as tuples of their values, in column order."""
    return [tuple(r.values()) if hasattr(r, "values") else tuple(r) for r in rows]


class Workload:
    """One database's tables and data for a bench run.

    Table names carry a random suffix so that runs on a shared server do not
    meet; ``close()`` drops them.  The admin connection (autocommit) seeds,
    truncates and checks the tables; the stacks never use it.  The async
    stacks and floors all run on one event loop, ``loop`` (``loop=`` to give
    one; else made on first use and closed by ``close()``).
    """

    def __init__(self, url, quick: bool, loop=None):
        self.url = url
        self.quick = quick
        self.dialect = DatabaseURL.parse(url).dialect
        self._loop, self._own_loop = loop, loop is None
        self.admin = raw_connect(url, autocommit=True)  # raises when the server is down
        self.tables = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self):
        d = self.dialect
        self.server = server_version(d, self.admin)
        suffix = uuid.uuid4().hex[:10]
        self.rows_table = f"fastsess_bench_rows_{suffix}"
        self.insert_table = f"fastsess_bench_insert_{suffix}"
        self.items_table = f"fastsess_bench_items_{suffix}"
        size = {key: s.size(self.quick) for key, s in ALL_SCENARIOS.items()}
        self.size = size
        n_rows = max(size["fetch"], size["afetch"], 1000)
        self.n_rows = n_rows
        self.insert_data = [make_row(i) for i in range(size["insert"])]
        self.insert_dicts = [dict(zip(ROW_COLUMNS, r)) for r in self.insert_data]
        self.point_ids = [(i * 7919) % n_rows for i in range(size["point"])]
        self.apoint_ids = [(i * 7919) % n_rows for i in range(size["apoint"])]
        self.item_ids = [uuid.UUID(int=i + 1) for i in range(ITEMS)]

        cols = ", ".join(ROW_COLUMNS)
        self.sql = {
            "fetch": f"SELECT {cols} FROM {self.rows_table} ORDER BY id",
            "point": f"SELECT {cols} FROM {self.rows_table} WHERE id = %s",
            "insert": f"INSERT INTO {self.insert_table} ({cols}) VALUES (%s, %s, %s, %s, %s)",
            "copy": f"COPY {self.insert_table} ({cols}) FROM STDIN",
            "page": f"SELECT uuid, name, quantity FROM {self.items_table} ORDER BY quantity LIMIT %s",
            "item": f"SELECT uuid, name, quantity FROM {self.items_table} WHERE uuid = %s",
            "create": f"INSERT INTO {self.items_table} (uuid, name, quantity) VALUES (%s, %s, %s)",
        }
        cur = self.admin.cursor()
        if d == "postgresql":
            cur.execute("SET lock_timeout = '60s'")
        else:
            cur.execute("SET SESSION lock_wait_timeout = 60")
            cur.execute("SET SESSION group_concat_max_len = 1073741824")
        for table, ddl in ((self.rows_table, "rows"), (self.insert_table, "rows"),
                           (self.items_table, "items")):
            cur.execute(_DDL[d][ddl].format(t=table))
            self.tables.append(table)
        cur.execute(_DDL[d]["index"].format(t=self.items_table))
        rows = [make_row(i) for i in range(n_rows)]
        items = [(self.item_uuid(u), f"item {i}", i) for i, u in enumerate(self.item_ids)]
        if d == "postgresql":
            with cur.copy(f"COPY {self.rows_table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.executemany(self.sql["create"], items)
            cur.execute(f"ANALYZE {self.rows_table}")
            cur.execute(f"ANALYZE {self.items_table}")
        else:
            cur.executemany(f"INSERT INTO {self.rows_table} ({cols}) VALUES (%s, %s, %s, %s, %s)", rows)
            cur.executemany(self.sql["create"], items)
        cur.close()

    def item_uuid(self, value: uuid.UUID):
        """A UUID as the driver stores it in the items table."""
        return value if self.dialect == "postgresql" else str(value)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run_async(self, coroutine):
        """Run ``coroutine`` to its end on the workload's loop (untimed set-up and clean-up)."""
        return self.loop.run_until_complete(coroutine)

    # -- untimed helpers the scenarios call -----------------------------------

    def _query(self, sql, params=None):
        cur = self.admin.cursor()
        cur.execute(sql, params)
        rows = cur.fetchall()
        cur.close()
        return rows

    def _execute(self, sql, params=None):
        cur = self.admin.cursor()
        cur.execute(sql, params)
        cur.close()

    def truncate_insert(self) -> None:
        self._execute(f"TRUNCATE TABLE {self.insert_table}")

    def insert_digest(self) -> tuple:
        """(row count, digest of every row in key order) of the insert table."""
        t = self.insert_table
        if self.dialect == "postgresql":
            sql = f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM {t} t"
        else:
            sql = (f"SELECT COUNT(*), MD5(COALESCE(GROUP_CONCAT(CONCAT_WS(',', id, name, score, ratio, "
                   f"note) ORDER BY id SEPARATOR '|'), '')) FROM {t}")
        count, digest = self._query(sql)[0]
        return int(count), digest

    def sweep_items(self) -> None:
        """Delete the rows the mix created."""
        self._execute(f"DELETE FROM {self.items_table} WHERE quantity >= %s", (CREATED,))

    def created_items(self) -> list:
        """(name, quantity) of the rows the mix created, in quantity order."""
        return [tuple(r) for r in self._query(
            f"SELECT name, quantity FROM {self.items_table} WHERE quantity >= %s ORDER BY quantity",
            (CREATED,))]

    def close(self) -> None:
        """Drop the tables and close the admin connection.  Idempotent."""
        if self.admin is None:
            return
        try:
            for table in self.tables:
                try:
                    self._execute(f"DROP TABLE IF EXISTS {table}")
                except Exception:  # noqa: BLE001 - drop what can be dropped
                    pass
        finally:
            self.tables = []
            self.admin.close()
            self.admin = None
            if self._own_loop and self._loop is not None:
                self._loop.close()
                self._loop = None

    # -- outcomes compared before timing ---------------------------------------

    def fetch_outcome(self, rows) -> list:
        return as_dicts(rows)

    def insert_outcome(self, _result=None) -> tuple:
        return self.insert_digest()

    def mix_outcome(self, result) -> tuple:
        page, item, created = result
        return [simple(r) for r in page], simple(item), created, self.created_items()


def floor_impl(key: str, w: Workload, conn: Callable[[], Any]) -> Impl:
    """The raw driver's implementation of scenario ``key``; ``conn()`` gives
    the connection to run on (borrowed for the round by the caller)."""
    n = w.size[key]
    sql = w.sql
    if key == "fetch":
        def fetch():
            c = conn()
            cur = c.cursor()
            cur.execute(sql["fetch"])
            rows = cur.fetchall()
            c.commit()
            return rows

        return Impl(fetch, outcome=lambda rows: [dict(zip(ROW_COLUMNS, r)) for r in rows])

    if key == "insert":
        data = w.insert_data
        if w.dialect == "postgresql":
            def insert():
                c = conn()
                with c.cursor() as cur:
                    with cur.copy(sql["copy"]) as copy:
                        write_row = copy.write_row
                        for row in data:
                            write_row(row)
                c.commit()
                return len(data)
        else:
            def insert():
                c = conn()
                cur = c.cursor()
                cur.executemany(sql["insert"], data)
                cur.close()
                c.commit()
                return len(data)

        return Impl(insert, prepare=w.truncate_insert, outcome=w.insert_outcome)

    if key == "cycle":
        def cycle():
            c = conn()
            for _ in range(n):
                cur = c.cursor()
                cur.execute("SELECT 1")
                rows = cur.fetchall()
                c.commit()
            return n, rows

        return Impl(cycle, outcome=lambda r: (r[0], values(r[1])))

    if key == "point":
        ids = w.point_ids
        statement = sql["point"]

        def point():
            c = conn()
            cur = c.cursor()
            out = []
            for i in ids:
                cur.execute(statement, (i,))
                out.append(cur.fetchone())
            c.commit()
            return out

        return Impl(point, outcome=lambda rows: [dict(zip(ROW_COLUMNS, r)) for r in rows])

    if key == "cache":
        memo = {}
        statement = sql["point"]
        params = (CACHE_KEY_ID,)

        def query(key_sql, key_params):
            c = conn()
            cur = c.cursor()
            cur.execute(key_sql, key_params)
            rows = cur.fetchall()
            c.commit()
            return rows

        def prime():
            memo.clear()
            memo[(statement, params)] = query(statement, params)

        def hits():
            get = memo.get
            for _ in range(n):
                key = (statement, params)
                rows = get(key)
                if rows is None:
                    rows = memo[key] = query(statement, params)
            return rows

        return Impl(hits, prepare=prime, outcome=lambda rows: [dict(zip(ROW_COLUMNS, r)) for r in rows])

    if key == "mix":
        ids = [w.item_uuid(u) for u in w.item_ids]
        new_id = (lambda: uuid.uuid4()) if w.dialect == "postgresql" else (lambda: str(uuid.uuid4()))

        def mix():
            c = conn()
            for i in range(n):
                cur = c.cursor()  # a request: its own cursor and transaction
                cur.execute(sql["page"], (PAGE,))
                page = cur.fetchall()
                c.commit()
                cur = c.cursor()
                cur.execute(sql["item"], (ids[i % len(ids)],))
                item = cur.fetchone()
                c.commit()
                cur = c.cursor()
                cur.execute(sql["create"], (new_id(), "created", CREATED + i))
                c.commit()
            return ([dict(zip(ITEM_COLUMNS, r)) for r in page], dict(zip(ITEM_COLUMNS, item)), n)

        return Impl(mix, prepare=w.sweep_items, outcome=w.mix_outcome)

    raise KeyError(key)
