"""RESTAlchemy's request mix, stock and on fastsess, against a raw driver floor.

The mix is the one RESTAlchemy's own perf probe times
(``restalchemy/tests/functional/perf/probe.py --mode speed``): list a
collection (a page of 50 of 200 rows), get one resource, create one, each a
WSGI request through a RESTAlchemy app, read as a ratio to the same three
requests served by hand (psycopg + orjson on PostgreSQL).  Every run is a
process of its own, stock and with ``fastsess.restalchemy.install()``
alternating, and the medians of the runs are reported.

PostgreSQL runs RESTAlchemy's probe itself.  The probe only reads a
PostgreSQL floor, so for MySQL this script runs the probe's own measuring
code (``probe.measure_speed``) on MySQL stand-ins for its stacks: the same
model, controller and requests, and a floor of mysqlclient + orjson.

    .venv/bin/python benchmarks/restalchemy_mix.py [--runs 5] [--dialect both]

Each dialect gets a scratch database on the local servers
(``FASTSESS_TEST_PG_URL`` / ``FASTSESS_TEST_MYSQL_URL`` give the server),
dropped afterwards.  ``--json FILE`` keeps every run's answer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid

PROBE = "restalchemy.tests.functional.perf.probe"
SCENARIOS = ("collection", "resource", "create")
# Targets of issue #4 (ratio to the floor, fastsess installed).
TARGETS = {"collection": 1.4, "resource": 2.0, "create": 1.8}
SERVERS = {
    "postgresql": os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
_INSTALL = "import fastsess.restalchemy; fastsess.restalchemy.install(); "


def command(dialect, mode, extra):
    """The command line of one run (a list for subprocess)."""
    if dialect == "postgresql":
        run = f"import runpy; runpy.run_module({PROBE!r}, run_name='__main__', alter_sys=True)"
    else:
        run = f"import runpy; runpy.run_path({__file__!r}, run_name='__mysql_probe__')"
    code = (_INSTALL if mode == "fastsess" else "") + run
    return [sys.executable, "-c", code, "--mode", "speed", *extra]


def _admin(dialect, sql):
    import fastsess

    engine = fastsess.create_engine(SERVERS[dialect], max_size=1)
    try:
        raw = engine.get_connection()
        if dialect == "postgresql":
            raw.autocommit = True
        raw.cursor().execute(sql)
        if dialect == "postgresql":
            raw.autocommit = False
        engine.close_connection(raw)
    finally:
        engine.close()


def _hold_low_latency():
    """An open /dev/cpu_dma_latency holding 0 µs (the kernel keeps CPUs out
    of deep idle states while it is open), or SystemExit saying why not."""
    import struct

    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError as e:
        raise SystemExit(f"--low-latency: cannot open /dev/cpu_dma_latency: {e}") from None
    os.write(fd, struct.pack("i", 0))
    return fd


def run_all(dialects, runs, extra, progress):
    """{dialect: {mode: [probe answers]}}, modes alternating run by run."""
    answers = {}
    for dialect in dialects:
        name = f"fsbench_{uuid.uuid4().hex[:10]}"
        _admin(dialect, f"CREATE DATABASE {name}")
        env = dict(os.environ, DATABASE_URI=SERVERS[dialect].rsplit("/", 1)[0] + "/" + name)
        answers[dialect] = {"stock": [], "fastsess": []}
        try:
            for number in range(runs):
                order = ("stock", "fastsess") if number % 2 == 0 else ("fastsess", "stock")
                for mode in order:
                    done = subprocess.run(command(dialect, mode, extra), env=env,
                                          capture_output=True, text=True, check=False)
                    if done.returncode:
                        raise SystemExit(f"{dialect} {mode} run failed:\n{done.stderr[-3000:]}")
                    answers[dialect][mode].append(json.loads(done.stdout))
                    progress(f"{dialect} run {number + 1}/{runs} {mode}: " + ", ".join(
                        f"{s} {answers[dialect][mode][-1]['ratio'][s]:.2f}x" for s in SCENARIOS))
        finally:
            force = " WITH (FORCE)" if dialect == "postgresql" else ""
            _admin(dialect, f"DROP DATABASE IF EXISTS {name}{force}")
    return answers


def table(answers):
    """Markdown rows: per dialect and scenario, the medians over the runs."""
    lines = ["| database | request | floor µs | stock µs | stock ratio | fastsess µs "
             "| fastsess ratio | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for dialect, modes in answers.items():
        floor_name = "psycopg" if dialect == "postgresql" else "mysqlclient"
        for scenario in SCENARIOS:
            floor = statistics.median(a["floor"][scenario] for m in modes.values() for a in m)
            cells = []
            for mode in ("stock", "fastsess"):
                cells.append(statistics.median(a["restalchemy"][scenario] for a in modes[mode]))
                cells.append(statistics.median(a["ratio"][scenario] for a in modes[mode]))
            lines.append(f"| {dialect} ({floor_name} floor) | {scenario} | {floor:.0f} | "
                         f"{cells[0]:.0f} | {cells[1]:.2f}x | {cells[2]:.0f} | {cells[3]:.2f}x | "
                         f"≤ {TARGETS[scenario]}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")
    parser.add_argument("--dialect", choices=("postgresql", "mysql", "both"), default="both")
    parser.add_argument("--rounds", type=int, help="the probe's --rounds")
    parser.add_argument("--calls", type=int, help="the probe's --calls")
    parser.add_argument("--json", help="write every run's answer to this file")
    parser.add_argument("--low-latency", action="store_true",
                        help="hold /dev/cpu_dma_latency at 0 during the runs (root): idle "
                             "CPUs then wake fast, and a loopback round trip costs tens of "
                             "µs, not hundreds, so the floor stops swinging with the load")
    args = parser.parse_args(argv)
    extra = []
    for name in ("rounds", "calls"):
        if getattr(args, name):
            extra += [f"--{name}", str(getattr(args, name))]
    dialects = ("postgresql", "mysql") if args.dialect == "both" else (args.dialect,)
    for dialect in dialects:
        for mode in ("stock", "fastsess"):
            shown = " ".join(c if " " not in c else repr(c) for c in command(dialect, mode, extra))
            print(f"# {dialect} {mode}: DATABASE_URI=<scratch db> {shown}", file=sys.stderr)
    latency = _hold_low_latency() if args.low_latency else None
    try:
        answers = run_all(dialects, args.runs, extra, lambda text: print(text, file=sys.stderr))
    finally:
        if latency is not None:
            os.close(latency)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(answers, out, indent=1)
    print(table(answers))
    return 0


# -- MySQL stand-ins for the probe's stacks (run inside a probe process) ------

def _mysql_probe():
    """``probe.main()`` on MySQL: the probe's code, MySQL stacks."""
    import datetime
    import queue

    import MySQLdb
    import orjson
    from restalchemy.storage.sql import engines
    from restalchemy.tests.functional import consts
    from restalchemy.tests.functional.perf import probe, stacks

    table_name, columns = stacks.TABLE, stacks.COLUMNS
    real_url = consts.get_database_uri()
    parsed = __import__("urllib.parse", fromlist=["urlsplit"]).urlsplit(real_url)

    def connect(autocommit=False):
        kwargs = dict(host=parsed.hostname, port=parsed.port or 3306, user=parsed.username,
                      db=parsed.path.lstrip("/"), charset="utf8mb4", autocommit=autocommit)
        if parsed.password:
            kwargs["passwd"] = parsed.password
        return MySQLdb.connect(**kwargs)

    def seed(connection, rows):
        epoch = datetime.datetime(2026, 1, 1)
        records = [(str(uuid.UUID(int=n + 1)), f"item {n}", f"a description of item {n}",
                    n % 3 != 0, n, str(stacks.PROJECT_ID), epoch + datetime.timedelta(seconds=n),
                    epoch + datetime.timedelta(seconds=n, microseconds=n % 3))
                   for n in range(rows)]
        cur = connection.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {table_name}")
        cur.execute(f"""CREATE TABLE {table_name} (
            id CHAR(36) PRIMARY KEY, name VARCHAR(255) NOT NULL,
            description VARCHAR(255) NOT NULL, enabled BOOLEAN NOT NULL,
            quantity INT NOT NULL, project_id CHAR(36) NOT NULL,
            created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NOT NULL,
            INDEX {table_name}_quantity (quantity)) ENGINE=InnoDB""")
        cur.executemany(f"INSERT INTO {table_name} ({columns}) VALUES "
                        f"({', '.join(['%s'] * 8)})", records)

    def sweep(connection):
        connection.cursor().execute(
            f"DELETE FROM {table_name} WHERE quantity >= {stacks.CREATED_QUANTITY}")

    def drop(connection):
        connection.cursor().execute(f"DROP TABLE IF EXISTS {table_name}")

    def document(row):
        # As RESTAlchemy's packer writes the fields: a bool, UTC timestamps.
        row["enabled"] = bool(row["enabled"])
        row["created_at"] = row["created_at"].isoformat() + "Z"
        row["updated_at"] = row["updated_at"].isoformat() + "Z"
        return row

    class RawStack:
        """mysqlclient and orjson, one pooled connection (as the PostgreSQL
        floor takes its connection from a pool)."""

        name = "raw mysqlclient + orjson"

        def __init__(self, db_url, page):
            self._page = page

        def setup(self):
            self._pool = queue.LifoQueue()
            self._pool.put(connect())

        def teardown(self):
            self._pool.get().close()

        def _rows(self, sql, params):
            connection = self._pool.get()
            try:
                cursor = connection.cursor()
                cursor.execute(sql, params)
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, row)) for row in cursor.fetchall()]
                connection.commit()
                return rows
            finally:
                self._pool.put(connection)

        def collection(self):
            rows = self._rows(f"SELECT {columns} FROM {table_name} ORDER BY quantity LIMIT %s",
                              (self._page,))
            return 200, orjson.dumps([document(row) for row in rows])

        def resource(self, item_id):
            rows = self._rows(f"SELECT {columns} FROM {table_name} WHERE id = %s", (item_id,))
            return 200, orjson.dumps(document(rows[0]))

        def create(self, body):
            record = orjson.loads(body)
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            row = {"id": str(uuid.uuid4()), "name": record["name"],
                   "description": record["description"], "enabled": record["enabled"],
                   "quantity": record["quantity"], "project_id": record["project_id"],
                   "created_at": now, "updated_at": now}
            connection = self._pool.get()
            try:
                connection.cursor().execute(
                    f"INSERT INTO {table_name} ({columns}) VALUES ({', '.join(['%s'] * 8)})",
                    tuple(row.values()))
                connection.commit()
            finally:
                self._pool.put(connection)
            return 201, orjson.dumps(document(row))

    class RestAlchemyStack(stacks.RestAlchemyStack):
        """The probe's RESTAlchemy stack with a MySQL pool setting."""

        def setup(self):
            stacks.ItemController.page = self._page
            engines.engine_factory.configure_factory(db_url=real_url,
                                                     config={"pool_size": 1})
            from restalchemy.api import applications
            self._app = applications.WSGIApp(route_class=stacks.Root)

    stacks.connect = lambda db_url: connect(autocommit=True)
    stacks.seed, stacks.sweep, stacks.drop = seed, sweep, drop
    stacks.RawStack, stacks.RestAlchemyStack = RawStack, RestAlchemyStack
    # probe.main() refuses anything but PostgreSQL: show it the scheme it
    # expects; the stacks above use the real (MySQL) URL.
    probe.consts = type("consts", (), {"get_database_uri": staticmethod(
        lambda: "postgresql+mysql://" + real_url.split("://", 1)[1])})
    sys.argv[0] = "probe"
    probe.main()


if __name__ == "__mysql_probe__":
    _mysql_probe()
elif __name__ == "__main__":
    sys.exit(main())
