"""RESTAlchemy models with JSON: ``batch_insert`` through stock RESTAlchemy and the drop-in.

    .venv/bin/python benchmarks/restalchemy_models_insert.py [--rounds 9] [--rows 10000]
        [--dialect both|postgresql|mysql]

The model is the one issue 13 describes: a UUID key, ``num`` (Integer),
``name`` (non-ASCII String), ``created_at`` (UTCDateTimeZ), ``enabled``
(Boolean), ``score`` (Float), ``note`` (AllowNone String, NULL in two rows
of three) and ``payload`` (Dict: nested objects, non-ASCII text, None, a
number beyond 32 bits).  On PostgreSQL it is an ``SQLStorableMixin`` model
(the payload goes in as a dict, jsonb column); on MariaDB an
``SQLStorableWithJSONFieldsMixin`` one (RESTAlchemy writes the JSON text,
LONGTEXT column), as RESTAlchemy's own MySQL models are.

One process, one engine per stack (stock RESTAlchemy: psycopg_pool /
mysql-connector; drop-in: ``fastsess.restalchemy``) holding one connection,
each stack with its own table.  Every round builds fresh models for each
stack (untimed: reading a model's values the first time costs more than
later), empties the table (untimed), then times ``batch_insert`` and its
commit; the two stacks run in an order that alternates round by round.
Printed, per stack: the median and min wall time, the median client CPU
time (this process) and server CPU time (the connection's backend process
or MariaDB thread, read from ``/proc/.../schedstat`` when the server is
local), which this VM's noise moves much less than wall time; then "stock
/ drop-in", the median over rounds of the wall-time ratio within each
round, and the ratio of the CPU totals.  Before timing, one untimed round
checks that both tables hold the same rows.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import glob
import os
import statistics
import sys
import time
import uuid

SERVERS = {
    "postgresql": os.environ.get("FASTSESS_TEST_PG_URL",
                                 "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
COLUMNS = ("uuid", "num", "name", "created_at", "enabled", "score", "note", "payload")
DDL = {
    "postgresql": "CREATE TABLE {table} (uuid uuid PRIMARY KEY, num integer NOT NULL, "
                  "name varchar(64) NOT NULL, created_at timestamptz NOT NULL, "
                  "enabled boolean NOT NULL, score double precision NOT NULL, note text, "
                  "payload jsonb NOT NULL)",
    "mysql": "CREATE TABLE {table} (uuid CHAR(36) PRIMARY KEY, num INT NOT NULL, "
             "name VARCHAR(64) NOT NULL, created_at DATETIME(6) NOT NULL, "
             "enabled BOOLEAN NOT NULL, score DOUBLE NOT NULL, note TEXT NULL, "
             "payload LONGTEXT NOT NULL) DEFAULT CHARSET=utf8mb4",
}


def model_class(dialect, table):
    from restalchemy.dm import models, properties
    from restalchemy.dm import types as ra_types
    from restalchemy.storage.sql import orm

    storable = orm.SQLStorableMixin if dialect == "postgresql" else \
        orm.SQLStorableWithJSONFieldsMixin

    class Record(models.ModelWithUUID, storable):
        __tablename__ = table
        __jsonfields__ = ["payload"]
        num = properties.property(ra_types.Integer(), default=0)
        name = properties.property(ra_types.String(max_length=64), default="")
        created_at = properties.property(ra_types.UTCDateTimeZ(), required=True)
        enabled = properties.property(ra_types.Boolean(), default=True)
        score = properties.property(ra_types.Float(), default=0.0)
        note = properties.property(ra_types.AllowNone(ra_types.String()), default=None)
        payload = properties.property(ra_types.Dict(), default=dict)

    return Record


_EPOCH = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def make_models(cls, rows, seed):
    """``rows`` fresh models (new keys every call)."""
    return [cls(uuid=uuid.uuid4(), num=i, name=f"Имя {i} Zürich",
                created_at=_EPOCH + datetime.timedelta(seconds=i, microseconds=seed + i),
                enabled=i % 2 == 0, score=i / 7, note=f"note {i}" if i % 3 == 0 else None,
                payload={"title": "café ☕ 北京", "n": i, "big": 2**40 + i, "ratio": i / 3,
                         "tags": ["alpha", "βeta"], "flags": {"on": True, "unset": None},
                         "nested": {"deep": [1, 2.5, {"x": "y"}]}})
            for i in range(rows)]


def _connect_raw(dialect):
    url = SERVERS[dialect]
    if dialect == "postgresql":
        import psycopg

        return psycopg.connect(url, autocommit=True)
    import MySQLdb

    from fastsess.url import DatabaseURL

    u = DatabaseURL.parse(url)
    return MySQLdb.connect(host=u.host, port=u.port or 3306, user=u.username,
                           passwd=u.password or "", db=u.database, charset="utf8mb4",
                           autocommit=True)


def _run(raw, sql):
    cur = raw.cursor()
    cur.execute(sql)
    rows = cur.fetchall() if cur.description else None
    cur.close()
    return rows


def stored(raw, dialect, table):
    """The table's rows without the key, as text, in ``num`` order."""
    cast = "::text" if dialect == "postgresql" else ""
    cols = ", ".join(f"{c}{cast}" for c in COLUMNS[1:])
    return _run(raw, f"SELECT {cols} FROM {table} ORDER BY num")


def _first_value(cursor):
    row = cursor.fetchone()
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def server_clock(engine, dialect):
    """A function giving the CPU seconds the server spent on ``engine``'s one
    pooled connection (its backend process, its MariaDB thread), from
    ``/proc/.../schedstat``; None where that cannot be read (a remote server)."""
    with engine.session_manager() as session:
        if dialect == "postgresql":
            found = [f"/proc/{_first_value(session.execute('SELECT pg_backend_pid()'))}"]
        else:
            thread = _first_value(session.execute(
                "SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"))
            found = glob.glob(f"/proc/[0-9]*/task/{thread}")
    if not found or not os.path.exists(f"{found[0]}/schedstat"):
        return None
    path = f"{found[0]}/schedstat"

    def clock():
        with open(path) as f:
            return int(f.read().split()[0]) / 1e9

    return clock


def timed_insert(engine, models, server=None):
    """(wall, client CPU, server CPU or None) seconds of one ``batch_insert``
    and its commit."""
    gc.collect()
    server_start = server() if server else None
    cpu, start = time.process_time(), time.perf_counter()
    with engine.session_manager() as session:
        session.batch_insert(models)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, (server() - server_start) if server else None


def bench(dialect, rounds, rows, progress):
    """{stack: [(wall, client CPU, server CPU) per round]} and "ratio": [stock /
    drop-in wall time per round]."""
    from restalchemy.storage.sql import engines as ra_engines

    import fastsess.restalchemy as fs_ra
    from fastsess.restalchemy import engines as fs_engines

    suffix = uuid.uuid4().hex[:8]
    tables = {"stock": f"ra_models_stock_{suffix}", "drop-in": f"ra_models_dropin_{suffix}"}
    classes = {name: model_class(dialect, table) for name, table in tables.items()}
    if dialect == "postgresql":
        stock_cls, ours_cls = fs_engines.StockPgSQLEngine, fs_engines.PgSQLEngine
        one = {"min_size": 1, "max_size": 1}
    else:
        stock_cls, ours_cls = fs_engines.StockMySQLEngine, fs_engines.MySQLEngine
        one = {"pool_size": 1}
    url = SERVERS[dialect]
    raw = _connect_raw(dialect)
    for table in tables.values():
        _run(raw, DDL[dialect].format(table=table))
    # One connection per stack: the server's time on it can be read.
    engines = {"stock": stock_cls(url, config=dict(one)), "drop-in": ours_cls(url, config=dict(one))}
    # Models find their table's columns through the factory's engine.
    was_installed = fs_ra.installed()
    ra_engines.engine_factory.configure_factory(db_url=url)
    results = {"stock": [], "drop-in": [], "ratio": []}
    try:
        servers = {name: server_clock(engine, dialect) for name, engine in engines.items()}
        for number in range(-1, rounds):
            order = ("stock", "drop-in") if number % 2 == 0 else ("drop-in", "stock")
            this = {}
            for name in order:
                models = make_models(classes[name], rows, seed=number + 2)
                _run(raw, f"TRUNCATE TABLE {tables[name]}")
                this[name] = timed_insert(engines[name], models, servers[name])
            if number < 0:  # the untimed check round
                if stored(raw, dialect, tables["stock"]) != stored(raw, dialect, tables["drop-in"]):
                    raise SystemExit(f"{dialect}: the drop-in stored other rows than stock")
                continue
            for name in ("stock", "drop-in"):
                results[name].append(this[name])
            results["ratio"].append(this["stock"][0] / this["drop-in"][0])
            progress(f"{dialect} round {number + 1}/{rounds}: stock {this['stock'][0] * 1e3:.1f} "
                     f"ms, drop-in {this['drop-in'][0] * 1e3:.1f} ms, {results['ratio'][-1]:.2f}x")
    finally:
        for engine in engines.values():
            engine.close()
        ra_engines.engine_factory.destroy_all_engines()
        if not was_installed:
            fs_ra.uninstall()
        for table in tables.values():
            _run(raw, f"DROP TABLE IF EXISTS {table}")
        raw.close()
    return results


def _median_ms(runs, index):
    values = [run[index] for run in runs]
    return None if None in values else statistics.median(values) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--rows", type=int, default=10_000, help="models per batch (default 10000)")
    parser.add_argument("--dialect", choices=("postgresql", "mysql", "both"), default="both")
    args = parser.parse_args(argv)
    import fastsess

    dialects = ("postgresql", "mysql") if args.dialect == "both" else (args.dialect,)
    results = {d: bench(d, args.rounds, args.rows, lambda t: print(t, file=sys.stderr))
               for d in dialects}
    print(f"batch_insert of {args.rows} RESTAlchemy models, {args.rounds} interleaved rounds, "
          f"fastsess {fastsess.__impl__}; medians, ms")
    print(f"{'database':<11}{'stack':<9}{'wall':>8}{'min':>8}{'client CPU':>12}{'server CPU':>12}"
          f"{'CPU total':>11}")
    for dialect, r in results.items():
        totals = {}
        for name in ("stock", "drop-in"):
            wall, client, server = (_median_ms(r[name], i) for i in range(3))
            totals[name] = None if server is None else client + server
            print(f"{dialect:<11}{name:<9}{wall:8.1f}{min(x[0] for x in r[name]) * 1e3:8.1f}"
                  f"{client:12.1f}" + (f"{server:12.1f}{totals[name]:11.1f}" if server else
                                        f"{'-':>12}{'-':>11}"))
        cpu = (f", CPU total (client + server) {totals['stock'] / totals['drop-in']:.2f}x"
               if totals["drop-in"] else "")
        print(f"{dialect:<11}stock / drop-in: wall {statistics.median(r['ratio']):.2f}x "
              f"(median of the rounds' ratios; min {min(r['ratio']):.2f}x){cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
