"""psycopg fetch of 10k realistic rows with text results against binary results (issue 13).

    .venv/bin/python benchmarks/pg_binary_probe.py --rounds 21 [--timezone Europe/Paris]
    .venv/bin/python benchmarks/pg_binary_probe.py --callgrind --n 5 [--timezone Europe/Paris]
    .venv/bin/python benchmarks/pg_binary_probe.py --per-column --rounds 21

The row: uuid key, int, non-ASCII text, timestamptz, bool, float8, nullable
text (half NULL), jsonb payload.  Two shapes: the full row, and the row
without the columns ``fastsess.drivers.pg_formats`` does not call exact
under the session's settings (in UTC every column is exact and the shapes
are the same; in Europe/Paris timestamptz is not).  Each round fetches every
shape in text and in binary (``cursor.execute(..., binary=...)`` and
``fetchall()``, tuple rows, psycopg's default loaders), in an order rotated
every round, on one connection.  Reported: median ms (wall and client CPU)
and the median over rounds of binary / text within the round.

``--callgrind`` runs this script twice under ``valgrind --tool=callgrind``,
with 0 and with N fetches of each (shape, format) after the same set-up and
warm-up, and prints the difference of the two instruction totals per row:
client-side work only (the server is another process).  ``--per-column``
runs the rounds (or the count) on each column alone, to show where the
difference comes from.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg

from fastsess.drivers import pg_formats

URL = os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = ["id", "num", "name", "created_at", "enabled", "score", "note", "payload"]
SETUP = """
CREATE TEMP TABLE probe_rows (
    id uuid PRIMARY KEY, num int, name text, created_at timestamptz, enabled bool,
    score float8, note text, payload jsonb);
INSERT INTO probe_rows
SELECT md5(i::text)::uuid, i, 'Zoë Ångström – ' || i,
       timestamptz '2024-01-01 12:00:00+00' + i * interval '1 minute 1.25 seconds',
       i % 3 = 0, i / 7.0, CASE WHEN i % 2 = 0 THEN 'naïve note ' || i END,
       jsonb_build_object('id', i, 'tags', jsonb_build_array('a', 'é', i),
                          'score', i * 1.5, 'big', 12345678901234567890 + i,
                          'nested', jsonb_build_object('ok', i % 2 = 0, 'note', 'café ☕'))
FROM generate_series(1, %(rows)s) AS i;
ANALYZE probe_rows
"""


def connect(timezone: str | None, rows: int):
    """A connection with the probe table filled, and the shapes: name -> SELECT."""
    conn = psycopg.connect(URL, autocommit=True)
    if timezone:
        conn.execute(f"SET TimeZone = '{timezone}'")
    for statement in SETUP.replace("%(rows)s", str(rows)).split(";"):
        conn.execute(statement)
    shown = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in pg_formats.UNREPORTED}
    settings = pg_formats.settings_of(conn.pgconn, **shown)
    cur = conn.execute("SELECT * FROM probe_rows LIMIT 0")
    exact = [d.name for d in cur.description if pg_formats.oid_exact(d.type_code, settings)]
    shapes = {"full": f"SELECT {', '.join(COLUMNS)} FROM probe_rows"}
    if exact != COLUMNS:
        shapes["exact"] = f"SELECT {', '.join(exact)} FROM probe_rows"
    return conn, shapes, settings, exact


def fetch(conn, sql: str, binary: bool) -> list:
    cur = conn.cursor(binary=binary)
    cur.execute(sql)
    rows = cur.fetchall()
    cur.close()
    return rows


def check(conn, shapes) -> None:
    """The exact shape must load the same both ways (a sanity check of the table)."""
    sql = shapes.get("exact", shapes["full"])
    text, binary = fetch(conn, sql, False), fetch(conn, sql, True)
    assert [tuple(map(repr, r)) for r in text] == [tuple(map(repr, r)) for r in binary], \
        "text and binary rows differ on the exact shape"


def run_rounds(args) -> None:
    conn, shapes, settings, exact = connect(args.timezone, args.rows)
    print(f"settings: {settings}\nexact columns: {exact}")
    check(conn, shapes)
    if args.per_column:
        shapes = {c: f"SELECT {c} FROM probe_rows" for c in COLUMNS}
    variants = [(shape, binary) for shape in shapes for binary in (False, True)]
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    for _ in range(2):  # warm-up
        for shape, binary in variants:
            fetch(conn, shapes[shape], binary)
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for shape, binary in order:
            t0, c0 = time.perf_counter(), time.process_time()
            fetch(conn, shapes[shape], binary)
            wall[(shape, binary)].append(time.perf_counter() - t0)
            cpu[(shape, binary)].append(time.process_time() - c0)
    print(f"\n{args.rows} rows, {args.rounds} interleaved rounds, one connection")
    print("| shape | columns | text ms (wall / CPU) | binary ms (wall / CPU) | binary / text, wall | CPU |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        t, b = (shape, False), (shape, True)
        ratio_wall = statistics.median(x / y for x, y in zip(wall[b], wall[t]))
        ratio_cpu = statistics.median(x / y for x, y in zip(cpu[b], cpu[t]))
        ncols = {"full": len(COLUMNS), "exact": len(exact)}.get(shape, 1)
        ms = {v: f"{statistics.median(wall[v]) * 1e3:.2f} / {statistics.median(cpu[v]) * 1e3:.2f}"
              for v in (t, b)}
        print(f"| {shape} | {ncols} | {ms[t]} | {ms[b]} | {ratio_wall:.2f}x | {ratio_cpu:.2f}x |")
    conn.close()


def run_inner(args) -> None:
    """What callgrind counts: set-up and warm-up, then N fetches of one variant."""
    conn, shapes, _, _ = connect(args.timezone, args.rows)
    sql = shapes.get(args.shape) or f"SELECT {args.shape} FROM probe_rows"
    fetch(conn, sql, args.binary)
    for _ in range(args.n):
        fetch(conn, sql, args.binary)
    conn.close()


def callgrind_total(args, n: int, shape: str, binary: bool) -> int:
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
               sys.executable, __file__, "--inner", "--n", str(n), "--rows", str(args.rows),
               "--shape", shape] + (["--binary"] if binary else []) \
            + (["--timezone", args.timezone] if args.timezone else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for line in open(out.name):
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind output")


def run_callgrind(args) -> None:
    conn, shapes, _, exact = connect(args.timezone, args.rows)
    conn.close()
    if args.per_column:
        shapes = dict.fromkeys(COLUMNS)
    print(f"exact columns: {exact}\ninstructions per row (client), {args.n} fetches of {args.rows} rows:")
    print("| shape | text | binary | binary / text |")
    print("|---|---|---|---|")
    for shape in shapes:
        per_row = {}
        for binary in (False, True):
            base = callgrind_total(args, 0, shape, binary)
            total = callgrind_total(args, args.n, shape, binary)
            per_row[binary] = (total - base) / (args.n * args.rows)
        text, binary = per_row[False], per_row[True]
        print(f"| {shape} | {text:,.0f} | {binary:,.0f} | {binary / text:.2f}x |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--timezone", help="SET TimeZone first (default: the server's)")
    p.add_argument("--callgrind", action="store_true", help="instructions per row under valgrind")
    p.add_argument("--per-column", action="store_true", help="each column alone")
    p.add_argument("--n", type=int, default=5, help="fetches per variant in --callgrind mode")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shape", default="full", help=argparse.SUPPRESS)
    p.add_argument("--binary", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner:
        run_inner(args)
    elif args.callgrind:
        run_callgrind(args)
    else:
        run_rounds(args)


if __name__ == "__main__":
    main()
