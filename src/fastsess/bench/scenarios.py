"""The end-to-end scenarios, one database's tables and data for them, and the raw-driver floors.

Every scenario is written once per stack (``fastsess.bench.stacks``) and once
here against the bare driver -- psycopg on PostgreSQL, mysqlclient on MySQL --
as the floor the stacks are measured against.  The async scenarios (``a...``)
have async floors and stacks, in ``fastsess.bench.aio``.  Each implementation is an
``Impl``: ``run`` is timed; ``prepare`` and ``finish`` run untimed around it;
``outcome`` turns what ``run`` returned into what the pre-timing check
compares with the floor's (rows in ``Workload.canonical`` form, a digest of a
table, ...).

Every table holds the same realistic row (``ROW_COLUMNS``, ``make_row``): a
UUID key, an int, non-ASCII text, a UTC timestamp, a boolean, a float, a
nullable enum-ish string and a JSON payload -- the row of a typical
RESTAlchemy model, where the drivers' type adaptation costs what it costs in
services (issue 13).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
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
_MODELS_ONLY = "RESTAlchemy models; their fastsess figure is 'RESTAlchemy on fastsess'"
# The RESTAlchemy stacks insert models, which is the next scenario: timing
# the same batch_insert twice would only lengthen the run.
_RA_INSERTS_MODELS = "RESTAlchemy inserts models: see 'RESTAlchemy model insert'"

# The sync scenarios (what benchmarks/test_bench_scenarios.py runs), the
# async ones (issue 12; benchmarks/test_bench_async.py), and all of them: what
# ``fastsess bench`` runs by default, in this order.
SCENARIOS = {s.key: s for s in (
    Scenario("fetch", "fetch {n} rows as dicts", 10_000, 1_000, "row"),
    Scenario("insert", "batch insert {n} rows", 10_000, 1_000, "row",
             not_for=(("ra", _RA_INSERTS_MODELS), ("ra-fastsess", _RA_INSERTS_MODELS))),
    Scenario("models", "RESTAlchemy model insert {n}", 10_000, 1_000, "model",
             not_for=(("fastsess", _MODELS_ONLY), ("pure", _MODELS_ONLY),
                      ("sqlalchemy", _MODELS_ONLY))),
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
_COPY = "psycopg COPY FROM STDIN (write_row; the payload as Jsonb)"
_EXECUTEMANY = "mysqlclient cursor.executemany (multi-row VALUES; the payload as json.dumps text)"
FLOORS = {
    ("fetch", "postgresql"): "psycopg cursor.fetchall(), tuple rows",
    ("fetch", "mysql"): "mysqlclient cursor.fetchall(), tuple rows",
    ("insert", "postgresql"): _COPY,
    ("insert", "mysql"): _EXECUTEMANY,
    ("models", "postgresql"): _COPY,
    ("models", "mysql"): _EXECUTEMANY,
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

# The row of every table (the model of issue 13): key, int, non-ASCII text,
# UTC timestamp, boolean, float, nullable enum-ish string, JSON payload.
ROW_COLUMNS = ("uuid", "num", "name", "created_at", "enabled", "score", "note", "payload")
ITEMS = 200  # rows the mix's collection holds
PAGE = 50  # rows one "list" request returns
CREATED = 10_000_000  # num of the rows the mix creates (out of the seeded range)
CACHE_ROW = 42  # the row the cache scenario reads

UTC = datetime.timezone.utc
NAMES = ("Zoë Ångström", "渡辺 さくら", "Łukasz Żółć", "Ñandú 🦩", "Αθηνά Παππά", "Дмитрий Ким",
         "Nguyễn Thị Hoa", "Siobhán O'Brien")
NOTES = ("à revoir", "urgent", "ok")  # the values of the enum-ish column
TAGS = ("café", "東京", "🚀", "sale", "naïve")
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=UTC)
_KEYS = uuid.UUID("6f3f0e0c-5f4e-4c55-9d3a-2b1e8f0a7c11")  # uuid5 namespace of the rows' keys

# RESTAlchemy's types on MySQL (CHAR(36) keys, DATETIME(6) holding UTC, JSON
# text), jsonb and timestamptz on PostgreSQL.
_ROW_DDL = {
    "postgresql": "CREATE TABLE {t} (uuid uuid PRIMARY KEY, num integer NOT NULL, "
                  "name varchar(64) NOT NULL, created_at timestamptz NOT NULL, "
                  "enabled boolean NOT NULL, score double precision NOT NULL, note varchar(16), "
                  "payload jsonb NOT NULL)",
    "mysql": "CREATE TABLE {t} (uuid CHAR(36) PRIMARY KEY, num INT NOT NULL, "
             "name VARCHAR(64) NOT NULL, created_at DATETIME(6) NOT NULL, enabled BOOLEAN NOT NULL, "
             "score DOUBLE NOT NULL, note VARCHAR(16) NULL, payload JSON NOT NULL) "
             "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
}


def row_key(i: int) -> uuid.UUID:
    return uuid.uuid5(_KEYS, str(i))


def make_row(i: int) -> tuple:
    """Row ``i`` in ``ROW_COLUMNS`` order, as Python code holds it: the key a
    ``uuid.UUID``, the timestamp aware (UTC), the payload a dict; the note
    is NULL in one row of four."""
    payload = {"seq": i, "title": NAMES[(i + 3) % len(NAMES)], "tags": list(TAGS[:i % 6]),
               "price": (i % 1000) / 4, "active": i % 2 == 0,
               "meta": {"source": "bench", "rank": i % 17, "parent": None}}
    return (row_key(i), i, f"{NAMES[i % len(NAMES)]} {i}",
            EPOCH + datetime.timedelta(seconds=61 * i, microseconds=(i * 7919) % 1_000_000),
            i % 3 != 0, i / 7 + 0.25, None if i % 4 == 0 else NOTES[i % 3], payload)


def dumps(payload) -> str:
    """The JSON text a mysqlclient user sends (utf8mb4 connection: non-ASCII kept)."""
    return json.dumps(payload, ensure_ascii=False)


@dataclass
class Impl:
    """One stack's (or the floor's) implementation of one scenario."""

    run: Callable[[], Any]  # timed
    prepare: Callable[[], None] | None = None  # untimed, before each run
    finish: Callable[[], None] | None = None  # untimed, after each run (also after a failed run)
    outcome: Callable[[Any], Any] = lambda result: result  # what the check compares


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
        # MariaDB's JSON is LONGTEXT: every MySQL driver here (mysqlclient,
        # asyncmy, mysql-connector, and fastsess on them) gives its text.
        self.json_as_text = self.dialect == "mysql"
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
        # The rows to insert, as the stacks' users hold them (the key in the
        # column's type: uuid.UUID on PostgreSQL, text for MySQL's CHAR(36)).
        self.insert_data = [self.stored(make_row(i)) for i in range(size["insert"])]
        self.insert_dicts = [dict(zip(ROW_COLUMNS, r)) for r in self.insert_data]
        # The RESTAlchemy model insert writes the same table with the same rows.
        self.model_data = [make_row(i) for i in range(size["models"])]
        self.point_ids = [self.key(row_key((i * 7919) % n_rows)) for i in range(size["point"])]
        self.apoint_ids = [self.key(row_key((i * 7919) % n_rows)) for i in range(size["apoint"])]
        self.cache_id = self.key(row_key(CACHE_ROW))
        self.item_ids = [row_key(i) for i in range(ITEMS)]
        # What the mix creates (its keys are made per request, as services do).
        self.created_rows = [make_row(CREATED + i)[1:] for i in range(size["mix"])]

        cols = ", ".join(ROW_COLUMNS)
        marks = ", ".join(["%s"] * len(ROW_COLUMNS))
        self.sql = {
            "fetch": f"SELECT {cols} FROM {self.rows_table} ORDER BY uuid",
            "point": f"SELECT {cols} FROM {self.rows_table} WHERE uuid = %s",
            "page": f"SELECT {cols} FROM {self.items_table} ORDER BY num LIMIT %s",
            "item": f"SELECT {cols} FROM {self.items_table} WHERE uuid = %s",
            "create": f"INSERT INTO {self.items_table} ({cols}) VALUES ({marks})",
        }
        cur = self.admin.cursor()
        if d == "postgresql":
            cur.execute("SET lock_timeout = '60s'")
        else:
            cur.execute("SET SESSION lock_wait_timeout = 60")
        for table in (self.rows_table, self.insert_table, self.items_table):
            cur.execute(_ROW_DDL[d].format(t=table))
            self.tables.append(table)
        cur.execute(f"CREATE INDEX {self.items_table}_num ON {self.items_table} (num)")
        for table, n in ((self.rows_table, n_rows), (self.items_table, ITEMS)):
            self.write_rows(cur, table, [self.stored(make_row(i)) for i in range(n)])
        if d == "postgresql":
            cur.execute(f"ANALYZE {self.rows_table}")
            cur.execute(f"ANALYZE {self.items_table}")
        cur.close()

    def write_rows(self, cur, table, rows) -> None:
        """The floor's batch insert, on ``cur``: COPY with the payload as
        ``Jsonb`` (psycopg), or executemany with it as JSON text (mysqlclient)
        -- what each driver's users send for a dict."""
        cols = ", ".join(ROW_COLUMNS)
        if self.dialect == "postgresql":
            from psycopg.types.json import Jsonb

            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row((*row[:-1], Jsonb(row[-1])))
        else:
            marks = ", ".join(["%s"] * len(ROW_COLUMNS))
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                            [(*row[:-1], dumps(row[-1])) for row in rows])

    def key(self, value: uuid.UUID):
        """A key as the drivers take and give it: uuid.UUID on PostgreSQL, text in MySQL's CHAR(36)."""
        return value if self.dialect == "postgresql" else str(value)

    def stored(self, row: tuple) -> tuple:
        """``make_row``'s row with its key as ``key()`` gives it."""
        return (self.key(row[0]),) + row[1:]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run_async(self, coroutine):
        """Run ``coroutine`` to its end on the workload's loop (untimed set-up and clean-up)."""
        return self.loop.run_until_complete(coroutine)

    # -- the form every outcome compares -----------------------------------------

    def canonical(self, row, json_text: bool | None = None) -> dict:
        """A row (a mapping) as the checks compare it.

        The key as text (psycopg gives uuid.UUID, asyncpg its own UUID
        subclass, MySQL's CHAR(36) text); the timestamp as an aware datetime,
        which compares as an instant (MySQL's DATETIME(6) has no zone: its
        naive value is the UTC wall clock every stack stored).  ``json_text``
        (default: ``json_as_text``) says the stack's driver gives the payload
        as JSON text, which its users decode with ``json.loads``: decoded
        here the same way.  Nothing else is converted: a stack that gives
        the payload decoded where its driver documents text (``json.loads``
        refuses a dict), or text where it should be decoded, fails the check.
        """
        out = dict(row)
        out["uuid"] = str(out["uuid"])
        if self.json_as_text if json_text is None else json_text:
            out["payload"] = json.loads(out["payload"])
        created = out["created_at"]
        if self.dialect == "mysql" and created.tzinfo is None:
            out["created_at"] = created.replace(tzinfo=UTC)
        return out

    def rows_outcome(self, json_text: bool | None = None) -> Callable[[Any], list]:
        """The outcome of mapping rows (see ``canonical``)."""
        return lambda rows: [self.canonical(r, json_text) for r in rows]

    def tuples_outcome(self, rows) -> list:
        """The outcome of the floors' tuple rows, in ``ROW_COLUMNS`` order."""
        return [self.canonical(dict(zip(ROW_COLUMNS, r))) for r in rows]

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
        """(row count, digest of every row of the insert table in key order).

        Values are compared, not the text a stack sent: each row goes through
        ``canonical`` (the payload parsed -- MariaDB keeps the JSON text as
        sent, and json.dumps, orjson and SQLAlchemy space and escape it each
        their own way), then is written with sorted keys and the timestamp
        as a UTC instant.
        """
        cols = ", ".join(ROW_COLUMNS)
        digest = hashlib.sha256()
        rows = self._query(f"SELECT {cols} FROM {self.insert_table} ORDER BY uuid")
        for row in self.tuples_outcome(rows):
            row["created_at"] = row["created_at"].astimezone(UTC).isoformat()
            row["enabled"] = bool(row["enabled"])  # MySQL's BOOLEAN is TINYINT(1)
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
        return len(rows), digest.hexdigest()

    def sweep_items(self) -> None:
        """Delete the rows the mix created."""
        self._execute(f"DELETE FROM {self.items_table} WHERE num >= %s", (CREATED,))

    def created_items(self) -> list:
        """The rows the mix created, in ``num`` order, without their keys (made per run)."""
        cols = ", ".join(ROW_COLUMNS)
        rows = self._query(f"SELECT {cols} FROM {self.items_table} WHERE num >= %s ORDER BY num",
                           (CREATED,))
        return [{k: v for k, v in r.items() if k != "uuid"} for r in self.tuples_outcome(rows)]

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

    def insert_outcome(self, _result=None) -> tuple:
        return self.insert_digest()

    def mix_outcome(self, result, json_text: bool | None = None) -> tuple:
        """(page, item, requests, created rows); ``page`` and ``item`` as
        mappings, decoded per ``canonical``'s ``json_text``."""
        page, item, created = result
        return ([self.canonical(r, json_text) for r in page], self.canonical(item, json_text),
                created, self.created_items())


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

        return Impl(fetch, outcome=w.tuples_outcome)

    if key in ("insert", "models"):
        # The payload becomes what the driver takes inside the timed run, as
        # it does for every stack.
        data = w.insert_data if key == "insert" else [w.stored(r) for r in w.model_data]
        write_rows, table = w.write_rows, w.insert_table

        def insert():
            c = conn()
            cur = c.cursor()
            write_rows(cur, table, data)
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

        return Impl(point, outcome=w.tuples_outcome)

    if key == "cache":
        memo = {}
        statement = sql["point"]
        params = (w.cache_id,)

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

        return Impl(hits, prepare=prime, outcome=w.tuples_outcome)

    if key == "mix":
        ids = [w.key(u) for u in w.item_ids]
        created_rows = w.created_rows
        if w.dialect == "postgresql":
            from psycopg.types.json import Jsonb

            def new_row(i):
                row = created_rows[i]
                return (uuid.uuid4(), *row[:-1], Jsonb(row[-1]))
        else:
            def new_row(i):
                row = created_rows[i]
                return (str(uuid.uuid4()), *row[:-1], dumps(row[-1]))

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
                cur.execute(sql["create"], new_row(i))
                c.commit()
            return page, item, n

        def outcome(result):
            page, item, n = result
            return w.mix_outcome(([dict(zip(ROW_COLUMNS, r)) for r in page],
                                  dict(zip(ROW_COLUMNS, item)), n))

        return Impl(mix, prepare=w.sweep_items, outcome=outcome)

    raise KeyError(key)
