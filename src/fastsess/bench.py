"""``fastsess bench``: fastsess against the raw drivers, side by side, as ratios.

Each scenario runs every stack in interleaved rounds (A B C, then the order
rotated), after an untimed warm-up whose result is checked against the raw
driver's; the table reports medians and the ratio to the raw-driver floor.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import fastsess

DEFAULT_URLS = {
    "postgresql": os.environ.get("FASTSESS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("FASTSESS_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
HOW_TO_START = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mysql": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}
TABLE = "fastsess_bench_rows"


@dataclass
class Scenario:
    name: str
    ops: int  # operations per round, for the µs/op column
    stacks: dict = field(default_factory=dict)  # stack name -> callable returning a result
    # stack name -> the stack it is measured against ("raw driver" unless named)
    floors: dict = field(default_factory=dict)


def _raw_connect(url):
    u = fastsess.DatabaseURL.parse(url)
    if u.dialect == "postgresql":
        import psycopg

        return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                               dbname=u.database, connect_timeout=10)
    import MySQLdb

    kwargs = dict(host=u.host or "localhost", port=u.port or 3306, user=u.username,
                  db=u.database, charset="utf8mb4", autocommit=False, connect_timeout=10)
    if u.password:
        kwargs["passwd"] = u.password
    return MySQLdb.connect(**kwargs)


def _prepare_rows(url, n_rows):
    conn = _raw_connect(url)
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"CREATE TABLE {TABLE} (id INT PRIMARY KEY, name VARCHAR(64), score INT, "
                f"ratio FLOAT, note VARCHAR(64))")
    cur.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s, %s)",
                    [(i, f"name-{i}", i * 7, i / 3.0, "x" * 20) for i in range(n_rows)])
    conn.commit()
    conn.close()


def _drop_rows(url):
    conn = _raw_connect(url)
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.commit()
    conn.close()


def _cycles_on(conn_source, cycles):
    """The raw-driver session cycle, on a connection borrowed for the round.

    The floor borrows the very connection the stack it is compared with
    uses: on a small VM the server side of each connection lands on its own
    core, and a cross-core wake-up can cost more than the whole client-side
    work, so comparing different connections measures the scheduler.
    """
    get, give_back = conn_source

    def raw_cycle():
        conn = get()
        try:
            for _ in range(cycles):
                cur = conn.cursor()
                cur.execute("SELECT 1")
                cur.fetchall()
                conn.commit()
        finally:
            give_back(conn)
        return cycles

    return raw_cycle


def build_scenarios(url, quick):
    """The scenarios for one database, and a list of things to close afterwards."""
    dialect = fastsess.DatabaseURL.parse(url).dialect
    cycles = 200 if quick else 2000
    n_rows = 1000 if quick else 10000
    closers = []

    # One connection, shared by fastsess and its raw-driver floor (see _cycles_on).
    engine = fastsess.create_engine(url, max_size=1)
    closers.append(engine)
    borrow = (engine.get_connection, engine.close_connection)

    def fastsess_cycle():
        for _ in range(cycles):
            with engine.session_manager() as s:
                s.execute("SELECT 1").fetchall()
        return cycles

    cycle = Scenario(f"session cycle x{cycles}", cycles,
                     {"raw driver": _cycles_on(borrow, cycles), "fastsess": fastsess_cycle})
    if dialect == "postgresql":
        try:
            import psycopg_pool
        except ImportError:
            psycopg_pool = None
        if psycopg_pool is not None:
            u = fastsess.DatabaseURL.parse(url)
            conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
            if u.password:
                conninfo += f" password={u.password}"
            pool = psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=1, open=True)
            closers.append(pool)

            def psycopg_pool_cycle():
                for _ in range(cycles):
                    with pool.connection() as conn:
                        cur = conn.cursor()
                        cur.execute("SELECT 1")
                        cur.fetchall()
                return cycles

            cycle.stacks["raw driver²"] = _cycles_on((pool.getconn, pool.putconn), cycles)
            cycle.stacks["psycopg_pool"] = psycopg_pool_cycle
            cycle.floors["psycopg_pool"] = "raw driver²"
            cycle.floors["raw driver²"] = "raw driver²"

    _prepare_rows(url, n_rows)
    select = f"SELECT id, name, score, ratio, note FROM {TABLE} ORDER BY id"

    def raw_fetch_tuples():
        conn = engine.get_connection()
        try:
            cur = conn.cursor()
            cur.execute(select)
            rows = cur.fetchall()
            conn.commit()
        finally:
            engine.close_connection(conn)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in rows[:3]], len(rows)  # checked, not timed as dicts

    def fastsess_fetch_dicts():
        with engine.session_manager() as s:
            rows = s.execute(select).fetchall()
        return rows[:3], len(rows)

    fetch = Scenario(f"fetch {n_rows} rows as dicts", n_rows,
                     {"raw driver": raw_fetch_tuples, "fastsess": fastsess_fetch_dicts})
    return [cycle, fetch], closers


def run_scenario(scenario, rounds, progress):
    """Wall-clock and process-CPU seconds per round for every stack, as two
    dicts; raises if a stack's result differs from the raw driver's."""
    names = list(scenario.stacks)
    floor_name = names[0]
    expected = scenario.stacks[floor_name]()
    for name in names[1:]:  # warm-up, and the equality check
        got = scenario.stacks[name]()
        if got != expected:
            raise AssertionError(f"{scenario.name}: {name} returned {got!r}, the raw driver {expected!r}")
    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            cpu_started = time.process_time()
            started = time.perf_counter()
            scenario.stacks[name]()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
        progress()
    return times, cpu


@dataclass
class Row:
    """One stack's timings in one scenario on one database."""

    database: str
    scenario: str
    stack: str
    times: list  # wall-clock seconds per round
    ops: int
    floor_median: float  # the floor's median in the same scenario
    cpu: list = field(default_factory=list)  # this process's CPU seconds per round
    floor_cpu: float = 0.0  # the floor's median CPU seconds

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.cpu) / self.floor_cpu if self.floor_cpu else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def ratio(self) -> float:
        return self.median / self.floor_median


def format_table(rows):
    """The rows as a text table: median, min, µs/op, ratio to the floor."""
    lines = [f"{'database':<11} {'scenario':<28} {'stack':<13} {'median ms':>10} {'min ms':>9} "
             f"{'µs/op':>8} {'x floor':>8} {'cpu µs/op':>10} {'cpu x floor':>12}"]
    for r in rows:
        cpu_op = statistics.median(r.cpu) / r.ops * 1e6 if r.cpu else float("nan")
        lines.append(f"{r.database:<11} {r.scenario:<28} {r.stack:<13} {r.median * 1e3:>10.2f} "
                     f"{min(r.times) * 1e3:>9.2f} {r.median / r.ops * 1e6:>8.2f} {r.ratio:>8.2f} "
                     f"{cpu_op:>10.2f} {r.cpu_ratio:>12.2f}")
    return "\n".join(lines)


def collect(urls, quick, rounds, progress=True):
    """Run every scenario on every database; returns (rows, databases that failed)."""
    rows = []
    failed = []
    for dialect, url in urls.items():
        shown = fastsess.DatabaseURL.parse(url)
        try:
            scenarios, closers = build_scenarios(url, quick)
        except Exception as e:  # noqa: BLE001 - one database down must not hide the other
            print(f"{dialect}: cannot reach {shown} ({shown.scrub(str(e)).strip()}); "
                  f"start it with: {HOW_TO_START[dialect]}", file=sys.stderr)
            failed.append(dialect)
            continue
        try:
            for scenario in scenarios:
                done = [0]

                def tick():
                    done[0] += 1
                    if progress:
                        bar = "#" * done[0] + "." * (rounds - done[0])
                        print(f"\r{dialect:<11} {scenario.name:<28} [{bar}]", end="",
                              file=sys.stderr, flush=True)

                times, cpu = run_scenario(scenario, rounds, tick)
                if progress:
                    print(file=sys.stderr)
                for stack, stack_times in times.items():
                    floor = scenario.floors.get(stack, "raw driver")
                    rows.append(Row(dialect, scenario.name, stack, stack_times, scenario.ops,
                                    statistics.median(times[floor]), cpu[stack],
                                    statistics.median(cpu[floor])))
        finally:
            for c in closers:
                c.close()
            _drop_rows(url)
    return rows, failed


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="fastsess bench",
                                     description="Compare fastsess with the raw drivers on the local servers.")
    parser.add_argument("--pg-url", default=DEFAULT_URLS["postgresql"])
    parser.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"])
    parser.add_argument("--only", choices=["postgresql", "mysql"])
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    urls = {"postgresql": args.pg_url, "mysql": args.mysql_url}
    if args.only:
        urls = {args.only: urls[args.only]}

    print(f"fastsess {fastsess.__version__} ({fastsess.__impl__} kernels), "
          f"Python {sys.version.split()[0]}, {rounds} interleaved rounds per scenario", file=sys.stderr)
    rows, failed = collect(urls, args.quick, rounds)
    if rows:
        print(format_table(rows))
        if any(r.stack.endswith("²") for r in rows):
            print("² the raw driver on psycopg_pool's own connection: psycopg_pool's floor")
    return 1 if failed else 0
