"""Query-cache key kernel against its twin, one group: ``pytest benchmarks/test_bench_cachekey.py``."""

from __future__ import annotations

import pytest

# The key a RESTAlchemy-style get_all builds: method, model id, table, filters, ...
TYPICAL_KEY = ("get_all", 140234, "users", {"id": 5, "name": "x"}, None, None, False)


@pytest.mark.benchmark(group="kernel: cache_key, a typical get_all key")
def test_cache_key(benchmark, kernels):
    # A call takes well under a microsecond: time 1000 per round, so that the
    # timer's own cost does not swamp it (the report is per call).
    h, encoded = benchmark.pedantic(kernels.cache_key, args=(TYPICAL_KEY,), iterations=1000, rounds=200,
                                    warmup_rounds=5)
    assert encoded == kernels.encode_key(TYPICAL_KEY)
