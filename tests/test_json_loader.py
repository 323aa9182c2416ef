"""PostgreSQL json/jsonb values come out exactly as psycopg's own loader gives them."""

from __future__ import annotations

import json

import pytest

from fastsess.drivers import postgresql as pg

from .conftest import raw_query

DOCS = [
    {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "é😀\\n\"q\""}},
    [123456789012345678901234567890, -9223372036854775809, 18446744073709551615],
    1e300, 0.1, -0.0, 5e-324, 1.7976931348623157e308,
    "plain", "", [], {}, {"nested": [[[[{"x": [1]}]]]]},
    {"big": 10**40, "small": 1},
    "digits 1234567890123456789012 inside a string",
]


def _typed(value):
    """``value`` with every scalar paired with its type, for a strict comparison."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
@pytest.mark.parametrize("column_type", ["jsonb", "json"])
def test_json_values_equal_psycopg_default(dialect, engine, raw_connect, column_type):
    raw = raw_connect()  # psycopg with its default json.loads loaders
    raw_query(raw, f"CREATE TABLE t_json (id INT PRIMARY KEY, doc {column_type})")
    try:
        for i, doc in enumerate(DOCS):
            raw_query(raw, "INSERT INTO t_json VALUES (%s, %s::" + column_type + ")", (i, json.dumps(doc)))
        expected = raw_query(raw, "SELECT id, doc FROM t_json ORDER BY id")
        with engine.session_manager() as s:
            got = [(r["id"], r["doc"]) for r in s.execute("SELECT id, doc FROM t_json ORDER BY id").fetchall()]
        assert [_typed(d) for _, d in got] == [_typed(d) for _, d in expected]
    finally:
        raw_query(raw, "DROP TABLE t_json")


@pytest.mark.skipif(pg.orjson is None, reason="orjson is not installed")
@pytest.mark.parametrize("text", [
    b'{"a": 1, "b": [1.5, null, true]}', b"123456789012345678901", b"-9223372036854775809",
    b"1e400", b'"\\ud800"', b'{"a":1,"a":2}', b"[0.1, 5e-324, -0.0]",
])
def test_json_loads_equals_json_module(text):
    assert _typed(pg._json_loads(text)) == _typed(json.loads(text))
