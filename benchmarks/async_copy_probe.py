"""Async ``insert_rows`` on PostgreSQL: multi-row INSERTs (before) against COPY (after).

    .venv/bin/python benchmarks/async_copy_probe.py --rows 10000 --rounds 15

Variants, all on ONE connection (an AsyncSession's, so the loopback lottery
of fast and slow connections on this VM is the same for each):
  insert     ``AsyncSession.insert_rows`` planning no COPY (``copy_min_rows`` = 0):
             multi-row INSERTs in a savepoint, what async sessions did before
  copy       ``AsyncSession.insert_rows`` as it is: ``copy_insert`` (catalog query,
             per-column checks, COPY text with the JSON written by orjson)
  raw copy   the floor: psycopg's ``AsyncCursor.copy`` and ``write_row`` on the same
             connection, dicts dumped by orjson, no checks

Rows: UUID key, non-ASCII name, timestamptz, a jsonb dict, numeric, text with
NULLs.  Each round runs every variant in an order rotated every round: the
table is truncated (untimed), then the insert and its COMMIT are timed.  An
untimed warm-up checks that every variant stores the same rows.  Reported:
median and min ms, and "x raw copy" = the median over rounds of (variant /
raw copy in the same round).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import decimal
import gc
import statistics
import time
import uuid

import orjson
import psycopg
from psycopg.adapt import Dumper

import fastsess

URL = "postgresql://postgres@127.0.0.1:5432/test"
TABLE = "fastsess_async_copy_probe"
COLUMNS = ["id", "name", "created", "doc", "amount", "note"]
DDL = (f"CREATE TABLE {TABLE} (id uuid PRIMARY KEY, name varchar(200), created timestamptz, "
       "doc jsonb, amount numeric(12, 4), note text)")
START = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)


def make_rows(n: int) -> list[tuple]:
    return [(uuid.uuid4(), f"näme {i} ✓ 日本語", START + datetime.timedelta(seconds=i),
             {"i": i, "tags": ["a", "é", None], "ok": i % 2 == 0, "score": i / 3},
             decimal.Decimal(f"{i}.0125"), None if i % 3 == 0 else f"nöte {i}")
            for i in range(n)]


class OrjsonDumper(Dumper):
    """A dict as orjson's JSON text (the raw floor's dumper)."""

    def dump(self, obj):
        return orjson.dumps(obj)


async def run_insert(session, engine, rows):
    engine._adapter.copy_min_rows = 0  # an instance attribute: plans no COPY
    try:
        return await session.insert_rows(TABLE, rows, columns=COLUMNS)
    finally:
        del engine._adapter.copy_min_rows


async def run_copy(session, engine, rows):
    return await session.insert_rows(TABLE, rows, columns=COLUMNS)


async def run_raw_copy(session, engine, rows):
    cur = psycopg.AsyncCursor(await session.connection())
    cur.adapters.register_dumper(dict, OrjsonDumper)
    async with cur.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)
    return cur.rowcount


VARIANTS = {"insert": run_insert, "copy": run_copy, "raw copy": run_raw_copy}


async def main(args) -> None:
    rows = make_rows(args.rows)
    engine = fastsess.create_async_engine(args.url, max_size=1, timeout=10)
    try:
        async with engine.session_manager() as s:
            await s.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await s.execute(DDL)
            await s.commit()
            stored = {}
            for name, run in VARIANTS.items():  # warm-up: every variant stores the same
                await s.execute(f"TRUNCATE {TABLE}")
                assert await run(s, engine, rows) == len(rows)
                result = await s.execute(f"SELECT t::text FROM {TABLE} t ORDER BY id")
                stored[name] = result.fetchall()
                await s.commit()
            assert all(v == stored["raw copy"] for v in stored.values()), "variants differ"
            times = {name: [] for name in VARIANTS}
            names = list(VARIANTS)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    await s.execute(f"TRUNCATE {TABLE}")
                    await s.commit()
                    gc.collect()
                    t0 = time.perf_counter()
                    await VARIANTS[name](s, engine, rows)
                    await s.commit()
                    times[name].append(time.perf_counter() - t0)
            await s.execute(f"DROP TABLE {TABLE}")
            await s.commit()
    finally:
        await engine.close()
    floor = times["raw copy"]
    print(f"{args.rows} rows x {args.rounds} rounds, fastsess {fastsess.__impl__}")
    print(f"{'variant':<10} {'median ms':>10} {'min ms':>8} {'x raw copy':>11}")
    for name, ts in times.items():
        ratio = statistics.median(t / f for t, f in zip(ts, floor))
        print(f"{name:<10} {statistics.median(ts) * 1e3:>10.1f} {min(ts) * 1e3:>8.1f} "
              f"{ratio:>11.2f}")
    ratio = statistics.median(c / i for c, i in zip(times["copy"], times["insert"]))
    print(f"copy / insert (median over rounds): {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=15)
    asyncio.run(main(parser.parse_args()))
