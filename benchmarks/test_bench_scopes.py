"""Overhead of the transaction scopes over a bare session_manager, per session cycle.

``pytest benchmarks/test_bench_scopes.py --benchmark-group-by=group
--benchmark-columns=min,median,rounds`` prints each database's stacks side
by side; read ratios against ``session_manager`` (target: at most 1.05).
Every stack of a database runs on one engine with ``max_size=1``, so on
the same server connection (connections differ in speed on a VM: see
BENCHMARKS.md).  Needs the local servers (or FASTSESS_TEST_PG_URL /
FASTSESS_TEST_MYSQL_URL).
"""

from __future__ import annotations

import os

import pytest

import fastsess

PG_URL = os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
URLS = {"postgresql": PG_URL, "mysql": MYSQL_URL}
STATEMENT = "SELECT 1 AS one"

_engines: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _close_engines():
    yield
    for engine in _engines.values():
        engine.close()
    _engines.clear()


def _engine(dialect):
    """One engine (one connection) per database for every stack of this module."""
    if dialect not in _engines:
        _engines[dialect] = fastsess.create_engine(URLS[dialect], max_size=1)
    return _engines[dialect]


def _cycles(engine):
    """Each stack's session cycle: open, SELECT, fetch as dicts, commit, close."""

    def session_manager():
        with engine.session_manager() as s:
            return s.execute(STATEMENT).fetchall()[0]["one"]

    def session_scope():
        with fastsess.session_scope(using=engine) as s:
            return s.execute(STATEMENT).fetchall()[0]["one"]

    @fastsess.with_session(using=engine)
    def with_session(session):
        return session.execute(STATEMENT).fetchall()[0]["one"]

    def atomic_block():
        with fastsess.atomic(using=engine) as s:
            return s.execute(STATEMENT).fetchall()[0]["one"]

    @fastsess.atomic(using=engine)
    def atomic_decorator():
        return fastsess.current_session(engine).execute(STATEMENT).fetchall()[0]["one"]

    @fastsess.with_session(using=engine)
    def nested_savepoint(session):
        # Informational: a nested block costs its SAVEPOINT and RELEASE round trips.
        with fastsess.atomic(using=engine):
            return session.execute(STATEMENT).fetchall()[0]["one"]

    return {"session_manager": session_manager, "session_scope": session_scope,
            "with_session": with_session, "atomic": atomic_block,
            "atomic_decorator": atomic_decorator, "nested_savepoint": nested_savepoint}


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.parametrize("stack", ["session_manager", "session_scope", "with_session", "atomic",
                                   "atomic_decorator", "nested_savepoint"])
def test_scope_cycle(benchmark, dialect, stack):
    """One session cycle through each scope (same connection for all)."""
    benchmark.group = f"scope cycle ({dialect})"
    cycle = _cycles(_engine(dialect))[stack]
    assert cycle() == 1  # warm: the connection is open before timing
    assert benchmark(cycle) == 1


ROUNDS = int(os.environ.get("FASTSESS_BENCH_SCOPE_ROUNDS", "21"))
CYCLES = 200  # per stack and round


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_scope_overhead_interleaved(benchmark, dialect, capsys):
    """Ratios to session_manager from interleaved rounds (order rotated each
    round): the drift of this VM hits every stack alike.  Medians of wall and
    process-CPU time per cycle are in ``extra_info`` (``--benchmark-json``)
    and printed (``-s``)."""
    import statistics
    import time

    benchmark.group = f"scope overhead, interleaved ({dialect})"
    cycles = _cycles(_engine(dialect))
    del cycles["nested_savepoint"]  # two more round trips: not overhead
    names = list(cycles)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}

    def run_rounds():
        for r in range(ROUNDS):
            for name in names[r % len(names):] + names[:r % len(names)]:
                cycle = cycles[name]
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in range(CYCLES):
                    cycle()
                wall[name].append((time.perf_counter() - w0) / CYCLES)
                cpu[name].append((time.process_time() - c0) / CYCLES)

    for cycle in cycles.values():
        assert cycle() == 1
    benchmark.pedantic(run_rounds, rounds=1, iterations=1)
    base_wall = statistics.median(wall["session_manager"])
    base_cpu = statistics.median(cpu["session_manager"])
    lines = [f"{dialect}: median per cycle over {ROUNDS} rounds x {CYCLES} cycles"]
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        benchmark.extra_info[name] = {"wall_us": round(w * 1e6, 2), "cpu_us": round(c * 1e6, 2),
                                      "wall_ratio": round(w / base_wall, 3),
                                      "cpu_ratio": round(c / base_cpu, 3)}
        lines.append(f"  {name:17s} wall {w * 1e6:8.1f} us  x{w / base_wall:5.3f}   "
                     f"cpu {c * 1e6:7.1f} us  x{c / base_cpu:5.3f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
