"""Pool and session-cycle costs: fastsess vs psycopg_pool vs a plain list.

``pytest benchmarks/test_bench_pool.py --benchmark-group-by=group`` prints each
group's stacks side by side.  Needs the local servers (or
FASTSESS_TEST_PG_URL / FASTSESS_TEST_MYSQL_URL).
"""

from __future__ import annotations

import os

import pytest

import fastsess

PG_URL = os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}


def _raw_connect(url):
    from fastsess.bench import _raw_connect as connect

    return connect(url)


def _psycopg_pool():
    psycopg_pool = pytest.importorskip("psycopg_pool")
    u = fastsess.DatabaseURL.parse(PG_URL)
    conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    if u.password:
        conninfo += f" password={u.password}"
    pool = psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=4, open=True)
    pool.wait()
    return pool


@pytest.mark.parametrize("stack", ["list", "fastsess", "psycopg_pool"])
def test_checkout_checkin(benchmark, stack):
    """One checkout and checkin, no statement (PostgreSQL connections)."""
    benchmark.group = "pool checkout+checkin (postgresql)"
    if stack == "list":
        conns = [_raw_connect(PG_URL)]

        def op():
            conns.append(conns.pop())

        benchmark(op)
        conns[0].close()
    elif stack == "fastsess":
        engine = fastsess.create_engine(PG_URL, max_size=4)
        pool = engine._pool
        pool.checkin(pool.checkout(), False)

        def op():
            pool.checkin(pool.checkout(), False)

        benchmark(op)
        engine.close()
    else:
        pool = _psycopg_pool()

        def op():
            pool.putconn(pool.getconn())

        benchmark(op)
        pool.close()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.parametrize("stack", ["raw", "fastsess", "psycopg_pool"])
def test_session_cycle(benchmark, dialect, stack):
    """Checkout, SELECT 1, fetch, commit, close: one request's fixed cost."""
    benchmark.group = f"session cycle ({dialect})"
    url = URLS[dialect]
    if stack == "raw":
        conns = [_raw_connect(url)]

        def cycle():
            conn = conns.pop()
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
            conn.commit()
            conns.append(conn)
            return 1

        assert benchmark(cycle) == 1
        conns[0].close()
    elif stack == "fastsess":
        engine = fastsess.create_engine(url, max_size=4)

        def cycle():
            with engine.session_manager() as s:
                return s.execute("SELECT 1 AS one").fetchall()[0]["one"]

        assert benchmark(cycle) == 1
        engine.close()
    else:
        if dialect != "postgresql":
            pytest.skip("psycopg_pool serves PostgreSQL only")
        pool = _psycopg_pool()

        def cycle():
            with pool.connection() as conn:
                cur = conn.cursor()
                cur.execute("SELECT 1")
                return cur.fetchall()[0][0]

        assert benchmark(cycle) == 1
        pool.close()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_checkout_liveness_cost(dialect, capsys):
    """What the socket peek at checkout adds: checkout+checkin with the real
    ``socket_state`` against a no-op, in interleaved rounds (printed with -s)."""
    import statistics
    import timeit

    import fastsess.pool as pool_module

    engine = fastsess.create_engine(URLS[dialect], max_size=1)
    pool = engine._pool
    pool.checkin(pool.checkout(), False)

    def pair():
        pool.checkin(pool.checkout(), False)

    real, noop = pool_module._socket_state, (0).__mul__  # a C call that returns 0
    seen = {"peek": [], "no peek": []}
    rounds = 3 if os.environ.get("CI") else 15
    try:
        for r in range(rounds):
            order = [("peek", real), ("no peek", noop)]
            for name, check in order if r % 2 else order[::-1]:
                pool_module._socket_state = check
                seen[name].append(min(timeit.repeat(pair, number=2000, repeat=3)) / 2000 * 1e6)
    finally:
        pool_module._socket_state = real
        engine.close()
    assert engine.pool_stats()["dead_on_checkout"] == 0
    with capsys.disabled():
        print(f"\n{dialect}: checkout+checkin {min(seen['no peek']):.3f} us without the peek, "
              f"{min(seen['peek']):.3f} us with it (min of {rounds} interleaved rounds; median "
              f"{statistics.median(seen['peek']) - statistics.median(seen['no peek']):+.3f} us)")
