"""A query-cache hit: RESTAlchemy's get_all entry point, against a dict lookup.

Target (issue 3): a hit costs at most 1 µs.  No server needed: a hit never
runs the fallback.
"""

from __future__ import annotations

import pytest

from fastsess.cache import SessionQueryCache


class Table:
    name = "users"


class EQ:
    def __init__(self, value):
        self.value = value


ENGINE = object()
FILTERS = {"id": EQ(5), "name": EQ("x"), "project_id": EQ("0b6a1c9e-46d0-4b1e-9c1e-3d1f0b9b2a11")}


def _fallback(**kwargs):
    return [{"id": 5}]


class _Session:
    """Runs the one miss of the fetchall benchmark."""

    def execute(self, statement, params=None):
        return type("R", (), {"fetchall": lambda self: [{"id": 5}]})()


@pytest.mark.parametrize("what", ["get_all hit", "fetchall hit", "dict lookup"])
def test_cache_hit(benchmark, what):
    benchmark.group = "query cache hit"
    if what == "dict lookup":
        d = {("users", 5): [{"id": 5}]}
        key = ("users", 5)
        result = benchmark(d.__getitem__, key)
    elif what == "fetchall hit":
        cache = SessionQueryCache(_Session())
        statement = "SELECT id, name FROM users WHERE id = %s AND project_id = %s"
        params = (5, "0b6a1c9e-46d0-4b1e-9c1e-3d1f0b9b2a11")
        first = cache.fetchall(statement, params)
        result = benchmark(cache.fetchall, statement, params)
        assert result is first and cache.misses == 1
    else:
        cache = SessionQueryCache(None)
        first = cache.get_all(ENGINE, Table, FILTERS, _fallback, limit=10, order_by={"id": "asc"})
        result = benchmark(cache.get_all, ENGINE, Table, FILTERS, _fallback, limit=10,
                           order_by={"id": "asc"})
        assert result is first and cache.misses == 1
    assert result == [{"id": 5}]
