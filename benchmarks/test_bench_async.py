"""The async scenarios of ``fastsess bench`` (issue 12) as pytest-benchmark tests, one group
per database and scenario.

    pytest benchmarks/test_bench_async.py                 # full sizes
    pytest benchmarks/test_bench_async.py --benchmark-disable   # smoke: quick sizes, once each

Each database gets one event loop, made here and kept for the whole module;
every floor and stack runs its coroutines on it, and what pytest-benchmark
times is the sync wrapper ``loop.run_until_complete(batch())`` of a batch
(2,000 cycles, 5,000 point selects, one 10k-row fetch).  The code is the
bench's own (``fastsess.bench.aio``), and each stack's result is checked
against the raw async driver's first.  Each stack runs on its own
connection, one after another: take the ratios from ``fastsess bench
--scenarios acycle,apoint,afetch`` (interleaved, same connection).
"""

from __future__ import annotations

import asyncio

import pytest

from fastsess.bench import aio
from fastsess.bench.base import ASYNC_STACKS, NotApplicable, Unavailable
from fastsess.bench.connect import unreachable_message
from fastsess.bench.runner import Entry, check_run, floor_entry
from fastsess.bench.scenarios import ASYNC_SCENARIOS, FLOORS, Workload

ROUNDS = 7  # timed rounds per benchmark when benchmarking is enabled
PAIRS = [(key, stack) for key in ASYNC_SCENARIOS for stack in ASYNC_STACKS]


class AsyncBench:
    """One database's tables, its event loop, and its async stacks (opened on first use)."""

    def __init__(self, dialect, url, quick):
        self.dialect = dialect
        self.quick = quick
        self.loop = asyncio.new_event_loop()
        self.w = Workload(url, quick, loop=self.loop)
        self.stacks = {}
        self.expected = {}

    def stack(self, key):
        if key not in self.stacks:
            try:
                self.stacks[key] = (aio.RawAsyncLender(self.w) if key == "araw"
                                    else aio.open_async_stack(key, self.w))
            except Unavailable as e:
                self.stacks[key] = e
        stack = self.stacks[key]
        if isinstance(stack, Unavailable):
            why = "not applicable" if isinstance(stack, NotApplicable) else "not run"
            pytest.skip(f"{ASYNC_STACKS[key]} {why}: {stack}")
        return stack

    def entry(self, scenario, key) -> Entry:
        if key == "araw":
            return floor_entry(ASYNC_STACKS["araw"], scenario, self.w, self.stack("araw"))
        stack = self.stack(key)
        return Entry(stack.name, stack.impl(scenario), stack.active, stack=key)

    def floor_outcome(self, scenario):
        if scenario not in self.expected:
            self.expected[scenario] = check_run(self.entry(scenario, "araw"))
        return self.expected[scenario]

    def close(self):
        try:
            for stack in self.stacks.values():
                if not isinstance(stack, Unavailable):
                    stack.close()
            self.w.close()
        finally:
            self.loop.close()


@pytest.fixture(scope="module", params=["postgresql", "mysql"])
def abench(request, smoke, server_urls):
    """The async scenarios on one database (quick sizes under --benchmark-disable)."""
    url = server_urls[request.param]
    try:
        b = AsyncBench(request.param, url, quick=smoke)
    except Exception as e:  # noqa: BLE001 - a database that is down fails with instructions
        pytest.fail(unreachable_message(request.param, url, e), pytrace=False)
    yield b
    b.close()


@pytest.mark.parametrize("scenario, stack", PAIRS, ids=[f"{s}-{k}" for s, k in PAIRS])
def test_async_scenario(benchmark, abench, scenario, stack):
    entry = abench.entry(scenario, stack)
    expected = abench.floor_outcome(scenario)
    assert check_run(entry) == expected, f"{entry.name}: result differs from the raw async driver's"
    benchmark.group = f"{abench.dialect}: {ASYNC_SCENARIOS[scenario].title(abench.quick)}"
    benchmark.extra_info["floor"] = FLOORS[(scenario, abench.dialect)]
    impl = entry.impl
    with entry.active():
        benchmark.pedantic(impl.run, rounds=ROUNDS, warmup_rounds=1)
