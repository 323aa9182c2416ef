"""Compiled kernels against their twin, each pair in one group: ``pytest benchmarks/test_bench_kernels.py``.

pytest-benchmark prints a group per kernel with the two implementations side
by side; the figure in brackets is each one relative to the faster (the
twin's "(3.50)" is "3.5x the compiled kernel's time").
"""

from __future__ import annotations

import collections
import datetime

import pytest

ROW_NAMES = ["id", "name", "email", "score", "created", "active", "parent_id", "note"]
ROWS = [
    (
        i,
        f"user {i}",
        f"user{i}@example.com",
        i * 0.5,
        datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i),
        i % 2 == 0,
        None if i % 3 else i - 1,
        "x" * (i % 17),
    )
    for i in range(10_000)
]

INSERT_COLUMNS = ["id", "name", "email", "score", "active", "note"]
INSERT_ROWS = [(i, f"user {i}", f"user{i}@example.com", i * 0.5, i % 2 == 0, None) for i in range(10_000)]
DELETE_KEYS = [(i, f"k{i}") for i in range(10_000)]

# The key a RESTAlchemy-style get_all builds: method, model id, table, filters, ...
TYPICAL_KEY = ("get_all", 140234, "users", {"id": 5, "name": "x"}, None, None, False)


@pytest.mark.benchmark(group="kernel: row_to_dict, one row x 8 columns")
def test_row_to_dict(benchmark, kernels):
    result = benchmark.pedantic(kernels.row_to_dict, args=(ROW_NAMES, ROWS[7]), iterations=1000,
                                rounds=200, warmup_rounds=5)
    assert result == dict(zip(ROW_NAMES, ROWS[7]))


@pytest.mark.benchmark(group="kernel: rows_to_dicts, 10k rows x 8 columns")
def test_rows_to_dicts(benchmark, kernels):
    result = benchmark(kernels.rows_to_dicts, ROW_NAMES, ROWS)
    assert len(result) == len(ROWS)


@pytest.mark.benchmark(group="kernel: build_insert, 10k rows x 6 columns, max_params 65535")
def test_build_insert(benchmark, kernels):
    result = benchmark(kernels.build_insert, "postgresql", "public.users", INSERT_COLUMNS, INSERT_ROWS, 65535)
    assert sum(len(params) for _, params in result) == 6 * len(INSERT_ROWS)


@pytest.mark.benchmark(group="kernel: build_upsert, 10k rows x 6 columns (postgresql)")
def test_build_upsert(benchmark, kernels):
    result = benchmark(kernels.build_upsert, "postgresql", "users", INSERT_COLUMNS, INSERT_ROWS, ["id"],
                       None, 65535)
    assert sum(len(params) for _, params in result) == 6 * len(INSERT_ROWS)


@pytest.mark.benchmark(group="kernel: build_delete, 10k composite keys (mysql)")
def test_build_delete(benchmark, kernels):
    result = benchmark(kernels.build_delete, "mysql", "users", ["a", "b"], DELETE_KEYS, 65535)
    assert sum(len(params) for _, params in result) == 2 * len(DELETE_KEYS)


@pytest.mark.benchmark(group="kernel: encode_key, a typical get_all key")
def test_encode_key(benchmark, kernels):
    # Well under a microsecond: 1000 calls per round so the timer does not swamp it.
    encoded = benchmark.pedantic(kernels.encode_key, args=(TYPICAL_KEY,), iterations=1000, rounds=200,
                                 warmup_rounds=5)
    assert isinstance(encoded, bytes)


@pytest.mark.benchmark(group="kernel: cache_get hit, a typical get_all key")
def test_cache_get(benchmark, kernels):
    digest, encoded = kernels.cache_key(TYPICAL_KEY)
    entries = collections.OrderedDict({digest: (encoded, ["rows"])})
    result = benchmark.pedantic(kernels.cache_get, args=(entries, TYPICAL_KEY, None), iterations=1000,
                                rounds=200, warmup_rounds=5)
    assert result == ["rows"]
