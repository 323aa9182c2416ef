"""Instructions per point select on a real connection, for ``valgrind --tool=callgrind``.

One session (or one raw connection) runs ``SELECT %s AS x`` N times, reading
each row with ``fetchone()``: the raw driver with one reused cursor (the floor
of ``fastsess bench``'s point select), or fastsess; sync or ``--async``
(psycopg's AsyncConnection, asyncmy).  Run it with ``--n 0`` and ``--n N``
under callgrind and divide the difference of the two totals by N:

    for n in 0 3000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/statement_cost.py --stack fastsess --db postgresql --n $n; done
"""

from __future__ import annotations

import argparse
import asyncio

import fastsess
from fastsess.bench.connect import DEFAULT_URLS, raw_connect, raw_connect_async

WARM_UP = 20  # statements run in both the 0 and the N run


def run_sync(stack: str, url: str, n: int) -> None:
    if stack == "raw":
        conn = raw_connect(url)
        cur = conn.cursor()
        for i in range(n + WARM_UP):
            cur.execute("SELECT %s AS x", (i,))
            cur.fetchone()
        conn.commit()
        conn.close()
        return
    engine = fastsess.create_engine(url, max_size=1)
    with engine.session_manager() as s:
        for i in range(n + WARM_UP):
            s.execute("SELECT %s AS x", (i,)).fetchone()
    engine.close()


async def run_async(stack: str, url: str, n: int) -> None:
    if stack == "raw":
        conn = await raw_connect_async(url)
        cur = conn.cursor()
        for i in range(n + WARM_UP):
            await cur.execute("SELECT %s AS x", (i,))
            await cur.fetchone()
        await conn.commit()
        await conn.close() if hasattr(conn, "pgconn") else conn.close()
        return
    engine = fastsess.create_async_engine(url, max_size=1)
    async with engine.session_manager() as s:
        for i in range(n + WARM_UP):
            (await s.execute("SELECT %s AS x", (i,))).fetchone()
    await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=["raw", "fastsess"], default="fastsess")
    parser.add_argument("--db", choices=list(DEFAULT_URLS), default="postgresql")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--async", dest="asynchronous", action="store_true")
    args = parser.parse_args()
    url = DEFAULT_URLS[args.db]
    if args.asynchronous:
        asyncio.run(run_async(args.stack, url, args.n))
    else:
        run_sync(args.stack, url, args.n)


if __name__ == "__main__":
    main()
