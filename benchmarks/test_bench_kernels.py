"""Compiled kernels against their twin: run ``pytest benchmarks --benchmark-group-by=group``."""

from __future__ import annotations

import datetime

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


def test_rows_to_dicts(benchmark, kernels):
    benchmark.group = "rows_to_dicts: 10k rows x 8 columns"
    result = benchmark(kernels.rows_to_dicts, ROW_NAMES, ROWS)
    assert len(result) == len(ROWS)


def test_build_insert(benchmark, kernels):
    benchmark.group = "build_insert: 10k rows x 6 columns, max_params 65535"
    result = benchmark(kernels.build_insert, "postgresql", "public.users", INSERT_COLUMNS, INSERT_ROWS, 65535)
    assert sum(len(params) for _, params in result) == 6 * len(INSERT_ROWS)
