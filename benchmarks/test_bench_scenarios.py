"""The ``fastsess bench`` scenarios as pytest-benchmark tests, every stack of a scenario in one group.

    pytest benchmarks/test_bench_scenarios.py            # full sizes
    pytest benchmarks --benchmark-disable                # smoke: quick sizes, one run each

The scenarios and stacks are those of ``fastsess.bench`` (the same code), on
the servers of FASTSESS_TEST_PG_URL / FASTSESS_TEST_MYSQL_URL.  Before it is
timed, each stack's result is checked against the raw driver's.  pytest-
benchmark runs the stacks one after another, each on its own connection: the
groups show the shape, while ``fastsess bench`` gives the ratios (interleaved
rounds, every stack paired with the floor on its own connection).
"""

from __future__ import annotations

import pytest

import fastsess
from fastsess.bench.connect import unreachable_message
from fastsess.bench.runner import FLOOR, Entry, check_run, floor_entry
from fastsess.bench.scenarios import FLOORS, SCENARIOS, Workload
from fastsess.bench.stacks import STACKS, EngineLender, Unavailable, open_stack

ROUNDS = 7  # timed rounds per benchmark when benchmarking is enabled

PAIRS = [(scenario.key, stack) for scenario in SCENARIOS.values() for stack in STACKS
         if stack not in dict(scenario.not_for)]


class Bench:
    """One database's workload, its stacks (opened on first use) and the floor's results."""

    def __init__(self, dialect, url, quick):
        self.dialect = dialect
        self.quick = quick
        self.w = Workload(url, quick)
        self.engine = fastsess.create_engine(url, max_size=1)
        self.lender = EngineLender(self.w, self.engine)
        self.stacks = {}
        self.expected = {}

    def stack(self, key):
        if key not in self.stacks:
            try:
                self.stacks[key] = open_stack(key, self.w, self.engine)
            except Unavailable as e:
                self.stacks[key] = e
        stack = self.stacks[key]
        if isinstance(stack, Unavailable):
            pytest.skip(f"{STACKS[key]} not run: {stack}")
        return stack

    def entry(self, scenario, key) -> Entry:
        if key == "raw":
            return floor_entry(FLOOR, scenario, self.w, self.lender)
        stack = self.stack(key)
        return Entry(stack.name, stack.impl(scenario), stack.active, stack=key)

    def floor_outcome(self, scenario):
        if scenario not in self.expected:
            self.expected[scenario] = check_run(self.entry(scenario, "raw"))
        return self.expected[scenario]

    def close(self):
        for stack in self.stacks.values():
            if not isinstance(stack, Unavailable):
                stack.close()
        self.engine.close()
        self.w.close()


@pytest.fixture(scope="module", params=["postgresql", "mysql"])
def bench(request, smoke, server_urls):
    """The scenarios' tables and stacks on one database (quick sizes under --benchmark-disable)."""
    url = server_urls[request.param]
    try:
        b = Bench(request.param, url, quick=smoke)
    except Exception as e:  # noqa: BLE001 - a database that is down fails with instructions
        pytest.fail(unreachable_message(request.param, url, e), pytrace=False)
    yield b
    b.close()


@pytest.mark.parametrize("scenario, stack", PAIRS, ids=[f"{s}-{k}" for s, k in PAIRS])
def test_scenario(benchmark, bench, scenario, stack):
    entry = bench.entry(scenario, stack)
    expected = bench.floor_outcome(scenario)
    assert check_run(entry) == expected, f"{entry.name}: result differs from the raw driver's"
    benchmark.group = f"{bench.dialect}: {SCENARIOS[scenario].title(bench.quick)}"
    benchmark.extra_info["floor"] = FLOORS[(scenario, bench.dialect)]
    impl = entry.impl
    with entry.active():
        try:
            benchmark.pedantic(impl.run, setup=impl.prepare, teardown=impl.finish, rounds=ROUNDS,
                               warmup_rounds=1)
        finally:
            if impl.finish is not None:  # --benchmark-disable calls no teardown
                impl.finish()
