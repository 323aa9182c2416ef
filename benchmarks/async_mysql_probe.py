"""Issue 12's driver question: asyncmy, or mysqlclient run in a thread, under fastsess async?

    .venv/bin/python benchmarks/async_mysql_probe.py --rounds 15      # wall and CPU, interleaved
    .venv/bin/python benchmarks/async_mysql_probe.py --callgrind      # instructions per operation
    .venv/bin/python benchmarks/async_mysql_probe.py --checks         # asyncmy's behaviours

Variants, all on the bench's MariaDB tables (``fastsess.bench.scenarios.Workload``):
  asyncmy           asyncmy's buffered Cursor, text protocol (its defaults; what fastsess
                    async runs on)
  asyncmy prepared  the same with ``stmt_cache_size=64``: server-side prepared statements,
                    binary protocol
  to_thread         mysqlclient, each driver call in ``asyncio.to_thread``: a statement is
                    one hop (execute + fetchall), a commit another
  executor          the same on a one-thread ``ThreadPoolExecutor`` per connection
                    (``loop.run_in_executor``: no context copy, the thread stays put)
  blocking          mysqlclient called straight from the coroutine, blocking the loop:
                    not an option, the cost of the driver alone

Scenarios (fastsess bench's async ones, on the raw drivers): session cycle (cursor,
SELECT 1, fetchall, commit), point select by key (one statement per key), fetch of
the rows table (execute + fetchall, commit).  Each round opens fresh connections for
every variant (untimed) and runs them in an order rotated each round: two drivers
cannot share a connection, so the lottery of fast and slow loopback connections on
this VM is drawn again every round for everyone.  Results are checked equal to
asyncmy's first.  "x asyncmy" is a median over asyncmy's median, wall and CPU
(this process, every thread).

``--callgrind`` runs ``--count VARIANT SCENARIO N`` under valgrind with N = 0 and N
and prints the difference per operation (user-space instructions, all threads; the
hand-off between threads is mostly system calls and waiting, which it does not see).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import enum
import gc
import json
import random
from importlib import metadata
import re
import statistics
import subprocess
import sys
import time

from fastsess.bench.connect import raw_connect
from fastsess.bench.scenarios import Workload
from fastsess.url import DatabaseURL

URL = "mysql://root@127.0.0.1:3306/test"
SIZES = {"cycle": (2000, 100), "point": (5000, 200), "fetch": (10000, 1000)}  # (full, quick)
UNITS = {"cycle": "cycle", "point": "select", "fetch": "row"}


# -- the variants -------------------------------------------------------------------------


class Asyncmy:
    name = "asyncmy"
    stmt_cache_size = 0

    async def open(self, w):
        import asyncmy

        u = DatabaseURL.parse(w.url)
        self.conn = await asyncmy.connect(host=u.host, port=u.port or 3306, user=u.username,
                                          password=u.password or "", database=u.database,
                                          charset="utf8mb4", stmt_cache_size=self.stmt_cache_size)

    async def close(self):
        self.conn.close()

    async def cycle(self, n):
        c = self.conn
        for _ in range(n):
            cur = c.cursor()
            await cur.execute("SELECT 1")
            rows = await cur.fetchall()
            await c.commit()
        return rows

    async def point(self, statement, ids):
        cur = self.conn.cursor()
        out = []
        for i in ids:
            await cur.execute(statement, (i,))
            out.append(await cur.fetchone())
        await self.conn.commit()
        return out

    async def fetch(self, statement):
        cur = self.conn.cursor()
        await cur.execute(statement)
        rows = await cur.fetchall()
        await self.conn.commit()
        return rows


class AsyncmyPrepared(Asyncmy):
    name = "asyncmy prepared"
    stmt_cache_size = 64


def _query(conn, statement, params=None, one=False):
    """One statement on mysqlclient, as one hop to a thread would run it."""
    cur = conn.cursor()
    cur.execute(statement, params)
    return cur.fetchone() if one else cur.fetchall()


class Threaded:
    """mysqlclient; ``hop(fn, *args)`` runs one driver call off the loop."""

    name = "to_thread"

    async def open(self, w):
        self.conn = raw_connect(w.url)

    async def close(self):
        self.conn.close()

    async def hop(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def cycle(self, n):
        c, hop = self.conn, self.hop
        for _ in range(n):
            rows = await hop(_query, c, "SELECT 1")
            await hop(c.commit)
        return rows

    async def point(self, statement, ids):
        c, hop = self.conn, self.hop
        out = [await hop(_query, c, statement, (i,), True) for i in ids]
        await hop(c.commit)
        return out

    async def fetch(self, statement):
        rows = await self.hop(_query, self.conn, statement)
        await self.hop(self.conn.commit)
        return rows


class Executor(Threaded):
    name = "executor"

    async def open(self, w):
        await super().open(w)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.loop = asyncio.get_running_loop()

    async def close(self):
        self.pool.shutdown()
        await super().close()

    async def hop(self, fn, *args):
        return await self.loop.run_in_executor(self.pool, fn, *args)


class Blocking(Threaded):
    name = "blocking"

    async def hop(self, fn, *args):
        return fn(*args)


VARIANTS = {v.name: v for v in (Asyncmy, AsyncmyPrepared, Threaded, Executor, Blocking)}


def batch(variant, w, scenario, n):
    """The coroutine of one timed batch of ``scenario`` (size ``n``)."""
    if scenario == "cycle":
        return variant.cycle(n)
    if scenario == "point":
        ids = w.point_ids
        return variant.point(w.sql["point"], (ids * (n // len(ids) + 1))[:n])
    return variant.fetch(w.sql["fetch"] + f" LIMIT {n}")


def plain(rows):
    return [tuple(r) for r in rows]


# -- wall and CPU, interleaved ----------------------------------------------------------


def measure(w, loop, scenarios, names, rounds, quick):
    results = {}
    for scenario in scenarios:
        n = SIZES[scenario][quick]
        times = {name: [] for name in names}
        cpu = {name: [] for name in names}
        expected = None
        for r in range(-1, rounds):  # round -1: the untimed check
            variants = [VARIANTS[name]() for name in names]
            for v in variants:
                loop.run_until_complete(v.open(w))
            try:
                order = variants[r % len(variants):] + variants[:r % len(variants)] if r >= 0 \
                    else variants
                for v in order:
                    if r < 0:
                        got = plain(loop.run_until_complete(batch(v, w, scenario, n)))
                        expected = got if expected is None else expected
                        if got != expected:
                            sys.exit(f"{v.name} {scenario}: result differs from {names[0]}'s")
                        continue
                    gc.collect()
                    c0, t0 = time.process_time(), time.perf_counter()
                    loop.run_until_complete(batch(v, w, scenario, n))
                    t1, c1 = time.perf_counter(), time.process_time()
                    times[v.name].append(t1 - t0)
                    cpu[v.name].append(c1 - c0)
            finally:
                for v in variants:
                    loop.run_until_complete(v.close())
        results[scenario] = {"n": n, "times": times, "cpu": cpu}
    return results


def table(results, names):
    lines = []
    for scenario, res in results.items():
        n, times, cpu = res["n"], res["times"], res["cpu"]
        base, base_cpu = statistics.median(times[names[0]]), statistics.median(cpu[names[0]])
        lines.append(f"{scenario} x{n}")
        lines.append(f"  {'variant':<18} {'median ms':>10} {'min ms':>9} {'µs/' + UNITS[scenario]:>10} "
                     f"{'x ' + names[0]:>10} {'cpu µs/op':>10} {'cpu x':>7}")
        for name in names:
            med, c = statistics.median(times[name]), statistics.median(cpu[name])
            lines.append(f"  {name:<18} {med * 1e3:>10.3f} {min(times[name]) * 1e3:>9.3f} "
                         f"{med / n * 1e6:>10.2f} {med / base:>10.2f} {c / n * 1e6:>10.2f} "
                         f"{c / base_cpu:>7.2f}")
        lines.append("")
    return "\n".join(lines)


# -- instructions ---------------------------------------------------------------------


def count(url, name, scenario, n):
    """What ``--callgrind`` runs under valgrind: one warm-up operation, then ``n``."""
    loop = asyncio.new_event_loop()
    w = Workload(url, quick=True, loop=loop)
    v = VARIANTS[name]()
    try:
        loop.run_until_complete(v.open(w))
        loop.run_until_complete(batch(v, w, scenario, 1))
        if scenario == "fetch":  # n fetches of the quick table
            for _ in range(n):
                loop.run_until_complete(batch(v, w, scenario, SIZES["fetch"][1]))
        elif n:
            loop.run_until_complete(batch(v, w, scenario, n))
        loop.run_until_complete(v.close())
    finally:
        w.close()
        loop.close()


def callgrind(url, scenarios, names, n):
    def instructions(name, scenario, k):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--url", url, "--count", name, scenario, str(k)],
            capture_output=True, text=True, check=True)
        return int(re.search(r"Collected : (\d+)", done.stderr).group(1))

    print(f"instructions per operation (callgrind, N = {n}; fetch: per row of "
          f"{SIZES['fetch'][1]}-row fetches)")
    for scenario in scenarios:
        k = max(n // 200, 3) if scenario == "fetch" else n
        per = SIZES["fetch"][1] * k if scenario == "fetch" else k
        for name in names:
            got = (instructions(name, scenario, k) - instructions(name, scenario, 0)) / per
            print(f"  {scenario:<6} {name:<18} {got:>10,.0f}", flush=True)


# -- asyncmy's behaviours -------------------------------------------------------------


class Color(enum.Enum):
    RED = 1


class Thing:
    def __str__(self):
        return "thing"


async def checks(url):
    import asyncmy
    from asyncmy import errors

    u = DatabaseURL.parse(url)

    async def connect(**kw):
        return await asyncmy.connect(host=u.host, port=u.port or 3306, user=u.username,
                                     password=u.password or "", database=u.database,
                                     charset="utf8mb4", **kw)

    admin = raw_connect(url, autocommit=True)
    out = {"asyncmy": metadata.version("asyncmy")}

    # 1. Buffering: the default cursor reads the whole result inside execute().
    conn = await connect()
    a = conn.cursor()
    await a.execute("SELECT seq FROM seq_1_to_10000")
    buffered = a.rowcount == 10000
    b = conn.cursor()
    await b.execute("SELECT 2")  # another statement before the first result is fetched
    out["buffered"] = buffered and await b.fetchall() == ((2,),) and len(await a.fetchall()) == 10000

    # 2. A task cancelled mid-statement.
    tid = conn.thread_id()
    cur = conn.cursor()
    # Does the server keep the transaction's locks after the client went away?
    adm = admin.cursor()
    adm.execute("CREATE TABLE IF NOT EXISTS fastsess_probe_lock (id INT PRIMARY KEY, n INT) ENGINE=InnoDB")
    adm.execute("REPLACE INTO fastsess_probe_lock VALUES (1, 0)")
    await cur.execute("UPDATE fastsess_probe_lock SET n = n + 1 WHERE id = 1")
    started = time.monotonic()
    try:
        await asyncio.wait_for(cur.execute("SELECT SLEEP(2)"), 0.2)
    except asyncio.TimeoutError:
        pass
    out["after_cancel_connected"] = conn.connected
    try:
        await conn.cursor().execute("SELECT 1")
        out["after_cancel_reuse"] = "ran"
    except errors.InterfaceError as e:
        out["after_cancel_reuse"] = f"InterfaceError {e.args}"
    adm.execute("SELECT command, state FROM information_schema.processlist WHERE id = %s", (tid,))
    out["server_after_cancel"] = [list(r) for r in adm.fetchall()]
    adm.execute("SET SESSION innodb_lock_wait_timeout = 10")
    t0 = time.monotonic()
    adm.execute("UPDATE fastsess_probe_lock SET n = n + 1 WHERE id = 1")  # waits for the lock
    out["row_lock_held_s_after_cancel"] = round(time.monotonic() - t0, 2)
    out["statement_ran_s"] = round(time.monotonic() - started, 2)
    adm.execute("SELECT n FROM fastsess_probe_lock WHERE id = 1")
    out["cancelled_transaction_rolled_back"] = adm.fetchone()[0] == 1
    adm.execute("DROP TABLE fastsess_probe_lock")

    # Cancelled at random points of a loop of statements: is a connection ever left
    # open and out of step (the next statement reading the previous one's reply)?
    for cache in (0, 64):
        tally = {"closed": 0, "usable": 0, "desynchronised": 0, "completed": 0}
        for _ in range(200):
            conn = await connect(stmt_cache_size=cache)

            async def work(conn=conn):
                cur = conn.cursor()
                for i in range(40):
                    await cur.execute("SELECT %s, REPEAT('x', 30000)", (i,))
                    assert (await cur.fetchall())[0][0] == i

            task = asyncio.ensure_future(work())
            await asyncio.sleep(random.random() * 0.004)
            task.cancel()
            try:
                await task
                tally["completed"] += 1
            except asyncio.CancelledError:
                if not conn.connected:
                    tally["closed"] += 1
                else:
                    probe = conn.cursor()
                    try:
                        await probe.execute("SELECT %s", ("probe",))
                        ok = await probe.fetchall() == (("probe",),)
                    except Exception:  # noqa: BLE001 - out of step shows as an error too
                        ok = False
                    tally["usable" if ok else "desynchronised"] += 1
            conn.close()
        out[f"cancel_fuzz_stmt_cache_{cache}"] = tally

    # 3. Parameters: spliced into the statement text on the client (PyMySQL's escaping);
    # with stmt_cache_size > 0 sent as prepared-statement values instead.
    values = {"dict": {"a": 1, "b": "x'y"}, "set": {1, 2}, "list": [1, 2], "tuple": (1, 2),
              "object": Thing(), "Enum": Color.RED, "nan": float("nan")}
    for cache in (0, 64):
        conn = await connect(stmt_cache_size=cache)
        seen = {}
        for label, value in values.items():
            cur = conn.cursor()
            try:
                sent = cur.mogrify("SELECT %s", (value,)) if not cache else None
                await cur.execute("SELECT %s", (value,))
                seen[label] = {"sent": sent, "got": [list(r) for r in await cur.fetchall()]}
            except Exception as e:  # noqa: BLE001 - what it raises is the finding
                seen[label] = {"raises": f"{type(e).__name__}: {e}"}
        out[f"parameters_stmt_cache_{cache}"] = seen
        conn.close()
    admin.close()
    print(json.dumps(out, indent=1, default=str))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=URL)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--scenarios", default="cycle,point,fetch")
    p.add_argument("--variants", default=",".join(VARIANTS), help="the first is the reference")
    p.add_argument("--json", help="write every round's times here")
    p.add_argument("--callgrind", type=int, nargs="?", const=2000, metavar="N",
                   help="instructions per operation under valgrind (N operations, default 2000)")
    p.add_argument("--checks", action="store_true", help="asyncmy's buffering, cancellation, parameters")
    p.add_argument("--count", nargs=3, metavar=("VARIANT", "SCENARIO", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    scenarios = args.scenarios.split(",")
    names = args.variants.split(",")
    if args.count:
        name, scenario, n = args.count
        count(args.url, name, scenario, int(n))
    elif args.checks:
        asyncio.run(checks(args.url))
    elif args.callgrind:
        callgrind(args.url, scenarios, names, args.callgrind)
    else:
        loop = asyncio.new_event_loop()
        w = Workload(args.url, args.quick, loop=loop)
        try:
            results = measure(w, loop, scenarios, names, args.rounds, args.quick)
        finally:
            w.close()
            loop.close()
        print(f"{w.server}; {args.rounds} interleaved rounds, fresh connections every round\n")
        print(table(results, names))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f)


if __name__ == "__main__":
    main()
