"""Fetching 10k jsonb documents: psycopg's json.loads loader vs fastsess's.

``pytest benchmarks/test_bench_json.py --benchmark-group-by=group``; needs the
local PostgreSQL (or FASTSESS_TEST_PG_URL).
"""

from __future__ import annotations

import json
import os

import pytest

from fastsess.drivers import postgresql as pg

PG_URL = os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def conn():
    from fastsess.bench import _raw_connect

    c = _raw_connect(PG_URL)
    c.execute("DROP TABLE IF EXISTS fastsess_bench_json")
    c.execute("CREATE TABLE fastsess_bench_json (id int, doc jsonb)")
    with c.cursor() as cur:
        cur.executemany("INSERT INTO fastsess_bench_json VALUES (%s, %s::jsonb)",
                        [(i, json.dumps({"id": i, "name": f"n{i}", "tags": ["a", "b"], "score": i / 7,
                                         "nested": {"x": i}})) for i in range(10000)])
    c.commit()
    yield c
    c.execute("DROP TABLE fastsess_bench_json")
    c.commit()
    c.close()


@pytest.mark.skipif(pg.orjson is None, reason="orjson is not installed")
@pytest.mark.parametrize("loader", ["json.loads", "fastsess"])
def test_fetch_jsonb(benchmark, conn, loader):
    from psycopg.types.json import set_json_loads

    benchmark.group = "fetch 10k jsonb documents"
    set_json_loads(json.loads if loader == "json.loads" else pg._json_loads, conn)

    def fetch():
        rows = conn.execute("SELECT id, doc FROM fastsess_bench_json ORDER BY id").fetchall()
        conn.commit()
        return rows

    rows = benchmark(fetch)
    assert len(rows) == 10000 and rows[7][1]["nested"] == {"x": 7}
