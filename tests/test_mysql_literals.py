"""MySQL batch inserts with the values written as literals (``build_literal_insert``).

mysqlclient escapes parameters on the client and splices them into the
statement; the kernel must write exactly what ``cursor.execute`` would send,
for every type, and chunk by ``max_allowed_packet``.  Checked against the
real driver (its ``_mogrify``, the text ``execute`` sends) and the server.
"""

from __future__ import annotations

import datetime
import decimal
import math
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsess import errors

from .conftest import fresh_table, raw_query

pytestmark = pytest.mark.parametrize("dialect", ["mysql"], indirect=True)

COLUMNS = ["a", "b", "c"]

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.datetimes(),
    st.dates(),
)


@pytest.fixture
def conn(dialect, raw_connect):
    return raw_connect()


def sent_by_execute(conn, rows):
    """The statement mysqlclient's cursor.execute sends for ``rows`` as parameters."""
    head = "INSERT INTO `t` (`a`, `b`, `c`) VALUES "
    statement = head + ",".join(["(%s,%s,%s)"] * len(rows))
    return conn.cursor()._mogrify(statement, [v for row in rows for v in row])


def build(kernels, conn, rows, fast=True, max_bytes=1 << 24):
    return kernels.build_literal_insert("t", COLUMNS, rows, conn.literal, conn.string_literal,
                                        conn.encoding, fast, max_bytes)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(values, values, values), min_size=1, max_size=5))
def test_same_text_as_cursor_execute(kernels, conn, rows):
    want = sent_by_execute(conn, rows)
    assert build(kernels, conn, rows) == [want]
    assert build(kernels, conn, rows, fast=False) == [want]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_fail_as_mysqlclient_fails(kernels, conn, value):
    with pytest.raises(Exception) as want:
        sent_by_execute(conn, [(value, 1, 2)])
    with pytest.raises(type(want.value), match=str(want.value)):
        build(kernels, conn, [(value, 1, 2)])


def test_custom_encoders_are_honoured(kernels, conn):
    # With fast=False every non-str value goes through conn.literal, which
    # uses the connection's encoders (the adapter passes fast=False when the
    # int/float/None encoders are not mysqlclient's own).
    calls = []

    def literal(value):
        calls.append(value)
        return b"X"

    out = kernels.build_literal_insert("t", COLUMNS, [(1, 2.5, None)], literal, conn.string_literal,
                                       conn.encoding, False, 1000)
    assert out == [b"INSERT INTO `t` (`a`, `b`, `c`) VALUES (X,X,X)"]
    assert calls == [1, 2.5, None]


def test_literal_must_give_bytes(kernels, conn):
    with pytest.raises(TypeError, match=r"^literal\(\) gave a str, expected bytes$"):
        kernels.build_literal_insert("t", COLUMNS, [(b"x", 1, 2)], lambda v: "x",
                                     conn.string_literal, conn.encoding, True, 1000)


def test_chunks_stay_under_max_bytes(kernels, conn):
    rows = [(i, f"name {i}", i / 7) for i in range(500)]
    out = build(kernels, conn, rows, max_bytes=2000)
    assert len(out) > 1 and all(len(s) <= 2000 for s in out)
    head = b"INSERT INTO `t` (`a`, `b`, `c`) VALUES "
    # Together the chunks carry every row once, in order.
    assert b",".join(s[len(head):] for s in out) == sent_by_execute(conn, rows)[len(head):]


def test_a_row_larger_than_a_statement_is_a_value_error(kernels, conn):
    with pytest.raises(ValueError, match="^a row needs .* bytes, more than the 100 one statement can carry$"):
        build(kernels, conn, [(1, "x" * 200, 2)], max_bytes=100)


def test_rows_are_checked_before_anything_is_built(kernels, conn):
    calls = []
    with pytest.raises(ValueError, match="^row 1 has 2 values, expected 3$"):
        kernels.build_literal_insert("t", COLUMNS, [(1, 2, 3), (1, 2)], calls.append,
                                     conn.string_literal, conn.encoding, False, 1000)
    assert calls == []


def test_bad_identifiers_are_rejected(kernels, conn):
    with pytest.raises(ValueError):
        kernels.build_literal_insert("t", ["a\x00"], [(1,)], conn.literal, conn.string_literal,
                                     conn.encoding, True, 1000)


# -- through a session, against the server ----------------------------------------------


@pytest.fixture
def typed_table(dialect, raw_connect):
    yield from fresh_table(dialect, raw_connect, "lit",
                           "id INT PRIMARY KEY, s TEXT, f DOUBLE, d DECIMAL(20, 3), ts DATETIME(6), "
                           "b VARBINARY(64), u CHAR(36)")


def test_values_land_exactly(engine, typed_table, raw_connect):
    raw = raw_connect()
    rows = [
        (1, "O'Reilly \\ \"q\" % é 😀", 0.1, decimal.Decimal("12345678901234567.125"),
         datetime.datetime(2024, 2, 29, 23, 59, 59, 999999), b"\x00\x1a'\\\xff", str(uuid.uuid4())),
        (2, "", -1e-300, decimal.Decimal("-0.001"), datetime.datetime(1970, 1, 1), b"", None),
        (3, None, None, None, None, None, None),
    ]
    columns = ["id", "s", "f", "d", "ts", "b", "u"]
    with engine.session_manager() as s:
        assert s.insert_rows(typed_table, rows, columns=columns) == 3
    got = raw_query(raw, f"SELECT {', '.join(columns)} FROM {typed_table} ORDER BY id")
    assert [tuple(r) for r in got] == rows


def test_statement_over_the_packet_fails_typed_and_sends_nothing(engine, typed_table, raw_connect,
                                                                 monkeypatch):
    monkeypatch.setattr(engine._adapter, "_max_packet", 1000)
    raw = raw_connect()
    with pytest.raises(ValueError, match="more than the 1000 one statement can carry"):
        with engine.session_manager() as s:
            s.insert_rows(typed_table, [(1, "x" * 2000)], columns=["id", "s"])
    assert raw_query(raw, f"SELECT count(*) FROM {typed_table}") == [(0,)]
    assert engine.pool_stats()["in_use"] == 0


def test_duplicate_key_is_a_conflict_with_key_and_value(engine, typed_table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {typed_table} (id) VALUES (7)")
    with pytest.raises(errors.ConflictError) as ei:
        with engine.session_manager() as s:
            s.insert_rows(typed_table, [(i, "v") for i in range(5, 10)], columns=["id", "s"])
    assert (ei.value.key, ei.value.value) == ("PRIMARY", "7")
    assert raw_query(raw, f"SELECT id FROM {typed_table}") == [(7,)]
