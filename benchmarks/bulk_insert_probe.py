"""Bulk insert strategies side by side, on ONE connection per database.

    .venv/bin/python benchmarks/bulk_insert_probe.py --rows 10,100,1000,10000 --rounds 21

PostgreSQL (floor: COPY text):
  executemany   psycopg ``cursor.executemany`` (pipeline mode)
  multirow      one multi-row INSERT per chunk from ``fastsess._impl.build_insert``
  multirow $n   the same statements written with $1.. placeholders and run on a
                ``psycopg.RawCursor`` (psycopg does not re-parse the statement:
                its %s parser is not cached for statements over 4 KiB)
  copy text     ``COPY t (..) FROM STDIN`` with ``Copy.write_row`` (text format)
  copy binary   the same in binary format, ``Copy.set_types`` with the column types
  copy_insert   ``PostgreSQLAdapter.copy_insert`` (COPY text plus its catalog check)

MySQL/MariaDB (floor: executemany):
  executemany     mysqlclient ``cursor.executemany`` (rewrites into multi-row VALUES)
  build_insert    ``build_insert``'s statement through ``cursor.execute``
  literal+query   the same statement text built with ``conn.literal(row)`` and sent
                  with the low-level ``conn.query`` (no Cursor, no ``%`` formatting)
  col literals    experimental: the same statement with each column's literals made
                  by one C-level ``map`` per column (``b"%d" %`` for ints, a ``%.17e``
                  double literal for finite floats, ``conn.string_literal`` for str,
                  ``isoformat`` for naive datetimes; ``conn.literal`` per value for any
                  other column), to show how much of the time is mysqlclient's
                  per-value literal() calls

Each round runs every row count, and for each every strategy in an order
rotated every round: the table is truncated (untimed), then the insert and
its COMMIT are timed.  An untimed warm-up checks that every strategy stores
the same rows.  Reported: median and min ms, and "x floor" = the median over
rounds of (strategy / floor in the same round).  Latency on a small VM is
bimodal per connection and drifts by minutes, hence one connection and ratios
taken within a round.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import operator
import statistics
import sys
import time
import uuid

import fastsess
from fastsess import _impl
from fastsess.url import DatabaseURL

DEFAULT_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}
TABLE = "fastsess_bulk_probe"
COLUMNS = ["id", "name", "n", "x", "ts", "u"]
DDL = {
    "postgresql": f"CREATE TABLE {TABLE} (id int PRIMARY KEY, name varchar(64), n int, "
                  "x double precision, ts timestamp, u uuid)",
    "mysql": f"CREATE TABLE {TABLE} (id INT PRIMARY KEY, name VARCHAR(64), n INT, x DOUBLE, "
             "ts DATETIME(6), u CHAR(36)) ENGINE=InnoDB",
}
STRATEGY_NAMES = {
    "postgresql": ["copy text", "copy binary", "copy_insert", "multirow", "multirow $n", "executemany"],
    "mysql": ["executemany", "build_insert", "literal+query", "col literals"],
}
# Head-to-head ratios printed after the table: (a, b) -> median over rounds of a / b.
PAIRS = {
    "postgresql": [("copy_insert", "multirow"), ("copy_insert", "multirow $n"),
                   ("copy_insert", "copy binary"), ("multirow $n", "multirow")],
    "mysql": [("literal+query", "build_insert"), ("col literals", "literal+query")],
}
PG_BINARY_TYPES = ["int4", "varchar", "int4", "float8", "timestamp", "uuid"]
MAX_PARAMS = 65535
BASE_TS = datetime.datetime(2024, 1, 1, 12, 0, 0)


def make_rows(n: int, dialect: str) -> list[tuple]:
    rows = []
    for i in range(n):
        u = uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % (1 << 128))
        rows.append((i, f"user {i} \u00e9", (i * 7919) % 100_000, i * 0.25 + 0.1,
                     BASE_TS + datetime.timedelta(seconds=i, microseconds=i % 1000),
                     u if dialect == "postgresql" else str(u)))
    return rows


# -- PostgreSQL ------------------------------------------------------------


def pg_strategies(adapter, conn):
    import psycopg

    insert_one = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "
                  f"({', '.join(['%s'] * len(COLUMNS))})")
    copy_sql = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"

    def executemany(rows):
        with conn.cursor() as cur:
            cur.executemany(insert_one, rows)
        conn.commit()

    def multirow(rows):
        with conn.cursor() as cur:
            for statement, params in _impl.build_insert("postgresql", TABLE, COLUMNS, rows, MAX_PARAMS):
                cur.execute(statement, params)
        conn.commit()

    per_chunk = MAX_PARAMS // len(COLUMNS)
    raw_head = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "
    raw_statements = {}

    def raw_statement(k):
        statement = raw_statements.get(k)
        if statement is None:
            w = len(COLUMNS)
            groups = ("(" + ", ".join(f"${i * w + j + 1}" for j in range(w)) + ")" for i in range(k))
            statement = raw_statements[k] = raw_head + ", ".join(groups)
        return statement

    def multirow_raw(rows):
        with psycopg.RawCursor(conn) as cur:
            for i in range(0, len(rows), per_chunk):
                chunk = rows[i:i + per_chunk]
                params = [v for row in chunk for v in row]
                cur.execute(raw_statement(len(chunk)), params)
        conn.commit()

    def copy_text(rows):
        with conn.cursor() as cur:
            with cur.copy(copy_sql) as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
        conn.commit()

    def copy_binary(rows):
        with conn.cursor() as cur:
            with cur.copy(copy_sql + " (FORMAT BINARY)") as copy:
                copy.set_types(PG_BINARY_TYPES)
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
        conn.commit()

    def copy_insert(rows):
        adapter.copy_insert(conn, TABLE, COLUMNS, rows)
        conn.commit()

    return {"copy text": copy_text, "copy binary": copy_binary, "copy_insert": copy_insert,
            "multirow": multirow, "multirow $n": multirow_raw, "executemany": executemany}


def pg_truncate(conn):
    conn.execute(f"TRUNCATE {TABLE}")
    conn.commit()


def pg_digest(conn):
    row = conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) "
                       f"FROM {TABLE} t").fetchone()
    conn.commit()
    return tuple(row)


# -- MySQL / MariaDB -------------------------------------------------------


def mysql_strategies(adapter, conn, max_bytes):
    cols = ", ".join(f"`{c}`" for c in COLUMNS)
    insert_one = f"INSERT INTO `{TABLE}` ({cols}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    head = f"INSERT INTO `{TABLE}` ({cols}) VALUES ".encode()
    per_chunk = MAX_PARAMS // len(COLUMNS)

    def executemany(rows):
        cur = conn.cursor()
        cur.executemany(insert_one, rows)
        cur.close()
        conn.commit()

    def build_insert(rows):
        cur = conn.cursor()
        for statement, params in _impl.build_insert("mysql", TABLE, COLUMNS, rows, MAX_PARAMS, max_bytes):
            cur.execute(statement, params)
        cur.close()
        conn.commit()

    def literal_query(rows):
        literal = conn.literal  # a row (tuple) literal is b"(v1,v2,..)"
        for i in range(0, len(rows), per_chunk):
            statement = head + b",".join(map(literal, rows[i:i + per_chunk]))
            if len(statement) > max_bytes:
                raise RuntimeError("statement over max_allowed_packet; the probe does not split by bytes")
            conn.query(statement)
            conn.store_result()  # None for an INSERT; keeps the protocol in step
        conn.commit()

    string_literal = conn.string_literal
    encode = str.encode
    iso = operator.methodcaller("isoformat", " ")

    def column_literals(values):
        kinds = set(map(type, values))
        if kinds == {int}:
            return list(map(b"%d".__mod__, values))
        if kinds == {float} and all(map(math.isfinite, values)):
            return list(map(b"%.17e".__mod__, values))  # 'e': a DOUBLE literal, as mysqlclient's
        if kinds == {str}:
            return list(map(string_literal, map(encode, values)))
        if kinds == {datetime.datetime} and not any(map(operator.attrgetter("tzinfo"), values)):
            return list(map(b"'%s'".__mod__, map(encode, map(iso, values))))
        return list(map(conn.literal, values))

    def col_literals(rows):
        for i in range(0, len(rows), per_chunk):
            chunk = rows[i:i + per_chunk]
            columns = [column_literals(values) for values in zip(*chunk)]
            statement = head + b",".join(map(b"(%s)".__mod__, map(b",".join, zip(*columns))))
            if len(statement) > max_bytes:
                raise RuntimeError("statement over max_allowed_packet; the probe does not split by bytes")
            conn.query(statement)
            conn.store_result()
        conn.commit()

    return {"executemany": executemany, "build_insert": build_insert, "literal+query": literal_query,
            "col literals": col_literals}


def mysql_truncate(conn):
    cur = conn.cursor()
    cur.execute(f"TRUNCATE TABLE {TABLE}")
    cur.close()
    conn.commit()


def mysql_digest(conn):
    cur = conn.cursor()
    cur.execute("SET SESSION group_concat_max_len = 1073741824")
    cur.execute(f"SELECT COUNT(*), MD5(COALESCE(GROUP_CONCAT(CONCAT_WS(',', id, name, n, x, ts, u) "
                f"ORDER BY id SEPARATOR '|'), '')) FROM {TABLE}")
    row = cur.fetchone()
    cur.close()
    conn.commit()
    return tuple(row)


# -- driver ----------------------------------------------------------------


def run_database(dialect, url, row_counts, rounds, out, only=None):
    parsed = DatabaseURL.parse(url)
    if dialect == "postgresql":
        from fastsess.drivers.postgresql import PostgreSQLAdapter as Adapter
    else:
        from fastsess.drivers.mysql import MySQLAdapter as Adapter
    adapter = Adapter(parsed, {})
    conn = adapter.connect()
    try:
        if dialect == "postgresql":
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            conn.execute(DDL[dialect])
            conn.commit()
            strategies = pg_strategies(adapter, conn)
            floor, truncate, digest = "copy text", pg_truncate, pg_digest
        else:
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
            cur.execute(DDL[dialect])
            cur.execute("SELECT @@max_allowed_packet")
            max_bytes = int(cur.fetchone()[0]) - 1024
            cur.close()
            conn.commit()
            strategies = mysql_strategies(adapter, conn, max_bytes)
            floor, truncate, digest = "executemany", mysql_truncate, mysql_digest
        if only:
            unknown = set(only) - set(strategies)
            if unknown:
                raise SystemExit(f"{dialect}: no strategy {sorted(unknown)}; known: {list(strategies)}")
            strategies = {k: v for k, v in strategies.items() if k in only or k == floor}
        names = list(strategies)
        data = {n: make_rows(n, dialect) for n in row_counts}

        # Warm-up, untimed: every strategy must store the same rows.
        for n in row_counts:
            seen = {}
            for name in names:
                truncate(conn)
                strategies[name](data[n])
                seen[name] = digest(conn)
            if len(set(seen.values())) != 1 or next(iter(seen.values()))[0] != n:
                raise SystemExit(f"{dialect}: strategies stored different rows for n={n}: {seen}")

        times = {(n, name): [] for n in row_counts for name in names}
        ratios = {(n, name): [] for n in row_counts for name in names}
        started = time.perf_counter()
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in row_counts:
                rows = data[n]
                this_round = {}
                for name in order:
                    truncate(conn)
                    gc.collect()
                    gc.disable()
                    try:
                        t0 = time.perf_counter()
                        strategies[name](rows)
                        elapsed = time.perf_counter() - t0
                    finally:
                        gc.enable()
                    this_round[name] = elapsed
                    times[(n, name)].append(elapsed)
                for name in names:
                    ratios[(n, name)].append(this_round[name] / this_round[floor])
        wall = time.perf_counter() - started
        truncate(conn)
        if dialect == "postgresql":
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        else:
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
            cur.close()
        conn.commit()
    finally:
        conn.close()

    print(f"\n{dialect}: {rounds} rounds in {wall:.1f} s, floor = {floor}", file=out)
    print(f"{'rows':>6}  {'strategy':<14} {'median ms':>10} {'min ms':>9} {'µs/row':>8} {'x floor':>8}"
          f" {'ratio p25-p75':>14}", file=out)
    for n in row_counts:
        for name in sorted(names, key=lambda s: statistics.median(ratios[(n, s)])):
            ts = times[(n, name)]
            rs = sorted(ratios[(n, name)])
            q = statistics.quantiles(rs, n=4, method="inclusive") if len(rs) > 1 else [rs[0], rs[0], rs[0]]
            print(f"{n:>6}  {name:<14} {statistics.median(ts) * 1e3:>10.3f} {min(ts) * 1e3:>9.3f}"
                  f" {statistics.median(ts) * 1e6 / n:>8.2f} {statistics.median(rs):>8.2f}"
                  f" {q[0]:>6.2f}-{q[2]:<6.2f}", file=out)
        print(file=out)
    pairs = [(a, b) for a, b in PAIRS[dialect] if a in names and b in names]
    if pairs:
        print("head to head, median over rounds of a / b (p25-p75):", file=out)
        print(f"{'rows':>6}  " + "  ".join(f"{a + ' / ' + b:>28}" for a, b in pairs), file=out)
        for n in row_counts:
            cells = []
            for a, b in pairs:
                rs = sorted(x / y for x, y in zip(times[(n, a)], times[(n, b)]))
                q = statistics.quantiles(rs, n=4, method="inclusive") if len(rs) > 1 else [rs[0]] * 3
                cells.append(f"{statistics.median(rs):>6.2f} ({q[0]:.2f}-{q[2]:.2f})".rjust(28))
            print(f"{n:>6}  " + "  ".join(cells), file=out)
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10,100,1000,10000",
                        help="comma-separated row counts (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default: %(default)s)")
    parser.add_argument("--db", default="postgresql,mysql", help="postgresql, mysql or both")
    parser.add_argument("--pg-url", default=DEFAULT_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"])
    parser.add_argument("--strategies", default="",
                        help="comma-separated subset to run (the floor always runs)")
    args = parser.parse_args(argv)
    row_counts = [int(x) for x in args.rows.split(",") if x.strip()]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    only = [x.strip() for x in args.strategies.split(",") if x.strip()]
    print(f"fastsess kernels: {fastsess.__impl__}; table: {len(COLUMNS)} columns "
          "(int pk, varchar, int, double, timestamp, uuid)")
    for dialect in dbs:
        url = args.pg_url if dialect == "postgresql" else args.mysql_url
        known = STRATEGY_NAMES[dialect]
        run_database(dialect, url, row_counts, args.rounds, sys.stdout,
                     [x for x in only if x in known] or None)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
