"""``PostgreSQLAdapter.copy_insert`` (COPY FROM STDIN) on the real server:
rows land, values are stored exactly as the multi-row INSERT path (typed
parameters) stores them, pairs COPY would store differently are refused
before anything is sent, and errors (a duplicate key above all) behave as
INSERT's do."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import uuid

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import pq
from psycopg.types.json import Json, Jsonb

import fastsess
from fastsess import _impl, errors
from fastsess.drivers import postgresql as pg_driver
from fastsess.drivers.postgresql import CopyRefused, PostgreSQLAdapter

from .conftest import raw_query

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)

D = decimal.Decimal
TZ_PLUS = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
TZ_MINUS = datetime.timezone(datetime.timedelta(hours=-9, minutes=-30))
STRINGS = ["plain", "tab\there", "new\nline", "cr\rreturn", "back\\slash", "\\N", "", "NULL",
           "unicode \u00e9 \u00df \U0001F600 \u4e2d\u6587", "quote ' and \"double\"", None]
_IDLE_OR_OPEN = (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS)


# -- helpers ------------------------------------------------------------------


@pytest.fixture
def make_table(raw_connect):
    """Creates uniquely named tables (``make_table("id int PRIMARY KEY, ..")``);
    drops them, and whatever depends on them, after the test."""
    conn = raw_connect()
    made = []

    def make(columns_sql, prefix="cp"):
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        raw_query(conn, f'CREATE TABLE "{name}" ({columns_sql})')
        made.append(name)
        return name

    yield make
    for name in made:
        raw_query(conn, f'DROP TABLE IF EXISTS "{name}" CASCADE')


@pytest.fixture
def copies(monkeypatch):
    """``watch(raw)`` records the COPY statements run on ``raw``."""
    seen = []

    class RecordingCursor(psycopg.Cursor):
        def copy(self, statement, *args, **kwargs):
            seen.append(str(statement))
            return super().copy(statement, *args, **kwargs)

    def watch(raw):
        monkeypatch.setattr(raw, "cursor_factory", RecordingCursor)
        return seen

    return watch


def insert_with_parameters(session, table, columns, rows):
    """The multi-row INSERT path: build_insert's statements, typed parameters."""
    total = 0
    for statement, params in _impl.build_insert("postgresql", table, columns, rows,
                                                PostgreSQLAdapter.max_params):
        total += session.execute(statement, params).rowcount
    return total


def store_both_ways(engine, make_table, copies, columns_sql, columns, rows, time_zone=None):
    """The same rows stored by copy_insert and by the INSERT path into two fresh
    tables; returns (COPY's table, INSERT's table, the COPY statements run)."""
    by_copy, by_params = make_table(columns_sql), make_table(columns_sql)
    with engine.session_manager() as s:
        if time_zone:
            s.execute(f"SET LOCAL TIME ZONE '{time_zone}'")
        raw = s.connection()
        seen = copies(raw)
        assert engine._adapter.copy_insert(raw, by_copy, columns, rows) == len(rows)
        assert insert_with_parameters(s, by_params, columns, rows) == len(rows)
        s.commit()
    return by_copy, by_params, seen


def whole_rows_as_text(conn, table):
    """Every row as one text value, in id order."""
    return raw_query(conn, f'SELECT t::text FROM "{table}" t ORDER BY id')


def as_text(conn, table):
    """Every row as (id, column text...), compared exactly (NaN included)."""
    return raw_query(conn, f'SELECT t.id, t.x::text FROM "{table}" t ORDER BY t.id')


def copy_format(statements):
    assert len(statements) == 1, statements
    return "binary" if "FORMAT BINARY" in statements[0] else "text"


# -- rows land -----------------------------------------------------------------


def test_copy_min_rows_is_a_non_negative_int(dialect):
    assert isinstance(PostgreSQLAdapter.copy_min_rows, int)
    assert PostgreSQLAdapter.copy_min_rows >= 0


def test_rows_land_and_are_visible_after_commit(engine, make_table, raw_connect, copies):
    table = make_table("id int PRIMARY KEY, name varchar(64), n int")
    reader = raw_connect()
    with engine.session_manager() as s:
        raw = s.connection()
        seen = copies(raw)
        rows = [(1, "a", 10), (2, None, 20), (3, "c", None)]
        assert engine._adapter.copy_insert(raw, table, ["id", "name", "n"], rows) == 3
        assert raw_query(reader, f'SELECT id FROM "{table}"') == []  # not committed yet
        s.commit()
    assert raw_query(reader, f'SELECT id, name, n FROM "{table}" ORDER BY id') == rows
    assert copy_format(seen) == "binary"


def test_a_subset_of_columns_leaves_the_others_to_their_defaults(engine, make_table, raw_connect):
    table = make_table("id int PRIMARY KEY, name text DEFAULT 'dflt', n int")
    with engine.session_manager() as s:
        assert engine._adapter.copy_insert(s.connection(), table, ["n", "id"], [(7, 1), (8, 2)]) == 2
        s.commit()
    assert raw_query(raw_connect(), f'SELECT id, name, n FROM "{table}" ORDER BY id') == [
        (1, "dflt", 7), (2, "dflt", 8)]


def test_ten_thousand_rows_match_the_parameter_path(engine, make_table, raw_connect, copies):
    columns_sql = ("id int PRIMARY KEY, name varchar(64), n int, x double precision, "
                   "ts timestamp, u uuid")
    columns = ["id", "name", "n", "x", "ts", "u"]
    base = datetime.datetime(2024, 1, 1, 12, 0, 0)
    rows = [(i, f"user {i}\t\u00e9", (i * 7919) % 100_000, i * 0.25 + 0.1,
             base + datetime.timedelta(seconds=i, microseconds=i % 1000), uuid.UUID(int=i * 977))
            for i in range(10_000)]
    by_copy, by_params, seen = store_both_ways(engine, make_table, copies, columns_sql, columns, rows)
    reader = raw_connect()
    assert whole_rows_as_text(reader, by_copy) == whole_rows_as_text(reader, by_params)
    assert copy_format(seen) == "binary"


def test_empty_rows_send_nothing(engine, make_table, copies):
    table = make_table("id int PRIMARY KEY")
    with engine.session_manager() as s:
        raw = s.connection()
        seen = copies(raw)
        assert engine._adapter.copy_insert(raw, table, ["id"], []) == 0
        assert raw.info.transaction_status == pq.TransactionStatus.IDLE
    assert seen == []


def test_odd_identifiers_and_a_schema_qualified_name(engine, make_table, raw_connect):
    table = make_table('"Id" int PRIMARY KEY, "a b%s" text', prefix="Odd Name%")
    with engine.session_manager() as s:
        assert engine._adapter.copy_insert(s.connection(), f"public.{table}", ["Id", "a b%s"],
                                           [(1, "x%s")]) == 1
        s.commit()
    assert raw_query(raw_connect(), f'SELECT "Id", "a b%s" FROM "{table}"') == [(1, "x%s")]


# -- values: exactly what the parameter path stores -----------------------------

TYPE_CASES = [
    # (id, column type, values, COPY format copy_insert picks)
    ("all-none", "integer", [None, None], "binary"),
    ("str-text", "text", STRINGS, "binary"),
    ("str-varchar", "varchar(60)", STRINGS, "binary"),
    ("int", "integer", [0, 1, -1, 2**31 - 1, -2**31, None], "binary"),
    ("smallint", "smallint", [0, 2**15 - 1, -2**15, None], "binary"),
    ("bigint", "bigint", [0, 2**63 - 1, -2**63, 2**40, None], "binary"),
    ("float", "double precision",
     [0.1, 0.1 + 0.2, -0.0, 1e300, 5e-324, math.inf, -math.inf, math.nan, 2.5, None], "binary"),
    ("decimal", "numeric",
     [D("1.5"), D("-0.00"), D("1E+30"), D("1E-30"), D("123456789012345678901234567890.0123456789"),
      D("NaN"), D("Infinity"), D("-Infinity"), D("-5"), None], "binary"),
    ("decimal-typmod", "numeric(10,2)", [D("1.005"), D("2.5"), D("-3.14159"), None], "binary"),
    ("bool", "boolean", [True, False, None], "binary"),
    ("naive-timestamp", "timestamp",
     [datetime.datetime(2024, 1, 2, 3, 4, 5, 678901), datetime.datetime(1, 1, 1),
      datetime.datetime(9999, 12, 31, 23, 59, 59, 999999), None], "binary"),
    ("aware-timestamptz", "timestamptz",
     [datetime.datetime(2024, 1, 2, 12, 0, tzinfo=TZ_PLUS),
      datetime.datetime(2024, 6, 1, 0, 0, 0, 1, tzinfo=TZ_MINUS),
      datetime.datetime(2024, 3, 31, 1, 30, tzinfo=datetime.timezone.utc), None], "binary"),
    ("naive-timestamptz", "timestamptz",  # read in the session time zone on both paths
     [datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.datetime(2024, 7, 1, 12, 0), None], "text"),
    ("mixed-timestamptz", "timestamptz",
     [datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=TZ_PLUS)],
     "text"),
    ("date", "date", [datetime.date(2024, 2, 29), datetime.date(1, 1, 1), datetime.date(9999, 12, 31),
                      None], "binary"),
    ("time", "time", [datetime.time(1, 2, 3, 4), datetime.time(), datetime.time(23, 59, 59, 999999),
                      None], "binary"),
    ("interval", "interval",
     [datetime.timedelta(days=-1, microseconds=5), datetime.timedelta(days=9999, seconds=3),
      datetime.timedelta(), None], "binary"),
    ("uuid", "uuid", [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"), None],
     "binary"),
    ("bytes", "bytea", [b"", b"\x00\x01\xff", b"tab\tnl\ncr\rbs\\", bytearray(b"ba\x00"),
                        memoryview(b"mv\\"), None], "text"),
    ("int-list", "integer[]", [[1, 2, 3], [], [None, 4], [[1, 2], [3, 4]], None], "text"),
    ("str-list", "text[]",
     [["a", "b,c", 'q"uote', "back\\slash", "NULL", None, "tab\t", "", "{}"], [], None], "text"),
    ("jsonb", "jsonb", [Jsonb({"a": [1, "x\ty", None], "b": "\\"}), Json({"k": "\u00e9"}), None],
     "text"),
    ("json", "json", [Json({"b": 1, "a": "x\ny"}), None], "text"),
    # dicts and fastsess.Json: JSON text copy_insert writes (orjson's or json.dumps')
    ("dict-jsonb", "jsonb",
     [{"b": 1, "a": ["\u00e9\U0001F600", None, 1.5, -0.0, 1e-7, 1e16, 2**63 - 1]}, {}, None,
      {"big": 2**70, "neg": -2**64}, {1: "int key", "k": True}, {"esc": "tab\t \\ \"q\" \\u0000"}],
     "text"),
    ("fastsess-json-jsonb", "jsonb",
     [fastsess.Json([1, "two", None]), fastsess.Json(None), fastsess.Json("s"),
      fastsess.Json(2**80), fastsess.Json({"k": [1.25]}), None], "text"),
    ("dict-and-str-jsonb", "jsonb", [{"a": 1}, '{"b": [2]}', Jsonb({"c": 3}), None], "text"),
    ("plain-dicts-jsonb", "jsonb",  # orjson for the whole column at once
     [{"t": "caf\u00e9 \u2615", "n": i, "f": i / 3, "l": [True, None, {"d": [i]}]}
      for i in range(5)] + [None], "text"),
    ("int-into-numeric", "numeric", [1, 10**30, -5, None], "text"),
    ("int-into-float", "double precision", [1, 2**53 + 1, -7, None], "text"),
    ("int-into-text", "text", [1, -2, 10**20, None], "text"),
    ("str-into-int", "integer", ["7", "-3", " 12 ", None], "text"),
    ("str-into-timestamp", "timestamp", ["2024-01-02 03:04:05", "epoch", None], "text"),
    ("str-into-bytea", "bytea", ["\\x00ff", "plain", None], "text"),
]


@pytest.mark.parametrize("column_type, values, expected_format",
                         [case[1:] for case in TYPE_CASES], ids=[case[0] for case in TYPE_CASES])
def test_values_round_trip_as_the_parameter_path_stores_them(engine, make_table, raw_connect, copies,
                                                             column_type, values, expected_format):
    rows = [(i, v) for i, v in enumerate(values)]
    # Not UTC: naive datetimes into timestamptz must be read in it on both paths.
    by_copy, by_params, seen = store_both_ways(engine, make_table, copies,
                                               f"id int PRIMARY KEY, x {column_type}", ["id", "x"],
                                               rows, time_zone="America/New_York")
    reader = raw_connect()
    stored = as_text(reader, by_copy)
    assert len(stored) == len(rows)
    assert stored == as_text(reader, by_params)
    assert copy_format(seen) == expected_format


def test_all_the_types_in_one_table(engine, make_table, raw_connect, copies):
    columns = ["id", "s", "i", "f", "d", "b", "ts", "tz", "dt", "u", "by", "arr"]
    columns_sql = ("id int PRIMARY KEY, s text, i int, f double precision, d numeric, b boolean, "
                   "ts timestamp, tz timestamptz, dt date, u uuid, by bytea, arr int[]")
    rows = [
        (1, "a\tb\nc\\d \u00e9\U0001F600", 5, 0.1 + 0.2, D("2.50"), True,
         datetime.datetime(2024, 1, 2, 3, 4, 5, 6), datetime.datetime(2024, 1, 2, 3, 4, tzinfo=TZ_PLUS),
         datetime.date(2024, 2, 29), uuid.UUID(int=42), b"\x00\\\t\n", [1, None, 3]),
        (2,) + (None,) * 11,
    ]
    by_copy, by_params, seen = store_both_ways(engine, make_table, copies, columns_sql, columns, rows)
    reader = raw_connect()
    assert whole_rows_as_text(reader, by_copy) == whole_rows_as_text(reader, by_params)
    assert copy_format(seen) == "text"  # bytea and int[]: text format
    typed = raw_query(reader, f'SELECT {", ".join(columns)} FROM "{by_copy}" ORDER BY id')
    assert typed[0][1:] == (rows[0][1], 5, 0.1 + 0.2, D("2.50"), True, rows[0][6],
                            rows[0][7], rows[0][8], rows[0][9], rows[0][10], [1, None, 3])


# -- refused: COPY would store these differently ---------------------------------

REFUSED = [
    ("float-into-int", "integer", 2.5),  # INSERT rounds, COPY fails
    ("float-into-bigint", "bigint", 0.5),
    ("decimal-into-int", "integer", D("2.5")),
    ("float-into-numeric", "numeric", 0.1 + 0.2),  # 15 against 17 significant digits
    ("float-into-real", "real", 0.1),
    ("aware-into-timestamp", "timestamp", datetime.datetime(2024, 1, 2, 12, 0, tzinfo=TZ_PLUS)),
    ("aware-time", "time", datetime.time(1, 2, 3, tzinfo=TZ_PLUS)),
    ("bool-into-text", "text", True),  # 'true' against 't'
    ("uuid-into-text", "text", uuid.UUID(int=7)),  # dashes or not
    ("timedelta-into-time", "time", datetime.timedelta(seconds=3)),
    ("int-into-bytea", "bytea", 5),  # INSERT: DatatypeMismatch; COPY: stored
    ("int-into-boolean", "boolean", 1),
    ("int-into-interval", "interval", 5),
    ("int-into-jsonb", "jsonb", 5),
    # INSERT sends jsonb, cast to the column type: a json column gets jsonb's text
    ("dict-into-json", "json", {"b": 1, "a": 2}),
    ("dict-into-text", "text", {"a": 1}),
    ("fastsess-json-into-json", "json", fastsess.Json([1])),
    ("dicts-in-a-jsonb-array", "jsonb[]", [{"a": 1}]),
    # what json.dumps refuses (or jsonb does): INSERT raises its own error
    ("dict-with-nan", "jsonb", {"x": [1.0, math.nan]}),
    ("dict-with-inf", "jsonb", {"x": -math.inf}),
    ("dict-with-uuid", "jsonb", {"x": uuid.UUID(int=1)}),
    ("dict-with-datetime", "jsonb", {"x": datetime.date(2024, 1, 1)}),
    ("dict-with-set", "jsonb", {"x": {1}}),
    ("dict-with-nul", "jsonb", {"x": "a\x00b"}),
    ("dict-with-nul-key", "jsonb", {"a\x00": 1}),
    ("dict-with-lone-surrogate", "jsonb", {"x": "\ud800"}),
    ("jsonb-wrapper-into-json", "json", Jsonb({"a": 1})),
    ("float-list-into-int-array", "integer[]", [1.5]),
    ("mixed-list", "text[]", ["a", 1]),
    ("list-into-scalar", "integer", [1]),
    ("tuple", "integer[]", (1, 2)),
]


@pytest.mark.parametrize("column_type, value", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_pairs_copy_stores_differently_are_refused_before_anything_is_sent(
        engine, make_table, raw_connect, copies, column_type, value):
    table = make_table(f"id int PRIMARY KEY, x {column_type}")
    with engine.session_manager() as s:
        raw = s.connection()
        seen = copies(raw)
        rows = [(1, None), (2, value)]
        with pytest.raises(CopyRefused, match="column x"):
            engine._adapter.copy_insert(raw, table, ["id", "x"], rows)
        assert seen == []
        assert raw.info.transaction_status in _IDLE_OR_OPEN  # usable: fall back to INSERT
        s.execute("SELECT 1")
        s.commit()
    assert raw_query(raw_connect(), f'SELECT count(*) FROM "{table}"') == [(0,)]


@pytest.mark.parametrize("target", ["view", "rule", "row-level-security"])
def test_targets_copy_would_fill_differently_are_refused(engine, make_table, raw_connect, target):
    table = make_table("id int PRIMARY KEY")
    admin = raw_connect()
    name = table
    if target == "view":
        name = f"{table}_v"
        raw_query(admin, f'CREATE VIEW "{name}" AS SELECT * FROM "{table}"')
    elif target == "rule":  # INSERT does nothing; COPY skips rules and would insert
        raw_query(admin, f'CREATE RULE "{table}_r" AS ON INSERT TO "{table}" DO INSTEAD NOTHING')
    else:
        raw_query(admin, f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(CopyRefused):
            engine._adapter.copy_insert(raw, name, ["id"], [(1,)])
        assert raw.info.transaction_status in _IDLE_OR_OPEN
    assert raw_query(admin, f'SELECT count(*) FROM "{table}"') == [(0,)]


# -- errors: as INSERT's -----------------------------------------------------------

# id, extra column, its value: int/text go binary, bytea goes text.
FORMATS = [("binary", "name text", "x"), ("text", "data bytea", b"\x00x")]


@pytest.mark.parametrize("column_sql, value", [f[1:] for f in FORMATS], ids=[f[0] for f in FORMATS])
def test_duplicate_key_raises_unique_violation_translated_to_conflict(engine, make_table, raw_connect,
                                                                      column_sql, value):
    table = make_table(f"id int PRIMARY KEY, {column_sql}")
    column = column_sql.split()[0]
    reader = raw_connect()
    raw_query(reader, f'INSERT INTO "{table}" (id) VALUES (2)')
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            engine._adapter.copy_insert(raw, table, ["id", column], [(1, value), (2, value), (3, value)])
        assert caught.value.diag.message_detail == "Key (id)=(2) already exists."
        err = engine._adapter.translate(caught.value)
        assert type(err) is errors.ConflictError
        assert (err.key, err.value) == ("id", "2")
        assert raw.info.transaction_status == pq.TransactionStatus.INERROR
        s.rollback()
        # The INSERT path translates to the same error.
        with pytest.raises(errors.ConflictError) as by_insert:
            insert_with_parameters(s, table, ["id", column], [(1, value), (2, value)])
        assert (by_insert.value.key, by_insert.value.value) == ("id", "2")
        s.rollback()
    assert raw_query(reader, f'SELECT id FROM "{table}" ORDER BY id') == [(2,)]


def test_duplicate_key_within_the_batch(engine, make_table, raw_connect):
    table = make_table("id int PRIMARY KEY, n int")
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            engine._adapter.copy_insert(raw, table, ["id", "n"], [(i, i) for i in range(100)] + [(7, 0)])
        err = engine._adapter.translate(caught.value)
        assert isinstance(err, errors.ConflictError) and (err.key, err.value) == ("id", "7")
        s.rollback()
    assert raw_query(raw_connect(), f'SELECT count(*) FROM "{table}"') == [(0,)]


def test_rolled_back_to_a_savepoint_the_transaction_goes_on_without_the_rows(
        engine, make_table, raw_connect):
    table = make_table("id int PRIMARY KEY, n int")
    with engine.session_manager() as s:
        raw = s.connection()
        insert_with_parameters(s, table, ["id", "n"], [(1, 1)])
        s.execute("SAVEPOINT before_copy")
        with pytest.raises(psycopg.errors.UniqueViolation):
            engine._adapter.copy_insert(raw, table, ["id", "n"], [(2, 2), (1, 9), (3, 3)])
        s.execute("ROLLBACK TO SAVEPOINT before_copy")
        assert engine._adapter.copy_insert(raw, table, ["id", "n"], [(4, 4)]) == 1
        s.commit()
    assert raw_query(raw_connect(), f'SELECT id, n FROM "{table}" ORDER BY id') == [(1, 1), (4, 4)]


@pytest.mark.parametrize("column_type, value", [("integer", 2**31), ("integer", -2**31 - 1),
                                                ("smallint", 40_000), ("bigint", 2**63)])
def test_out_of_range_ints_fail_on_the_server_not_wrap_around(engine, make_table, raw_connect,
                                                              column_type, value):
    table = make_table(f"id int PRIMARY KEY, x {column_type}")
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            engine._adapter.copy_insert(raw, table, ["id", "x"], [(1, 1), (2, value)])
        s.rollback()
        with pytest.raises(errors.DataError):
            insert_with_parameters(s, table, ["id", "x"], [(1, 1), (2, value)])
        s.rollback()
    assert raw_query(raw_connect(), f'SELECT count(*) FROM "{table}"') == [(0,)]


def test_too_long_string_and_domain_check_fail_as_with_insert(engine, make_table, raw_connect):
    domain = f"posint_{uuid.uuid4().hex[:8]}"
    admin = raw_connect()
    raw_query(admin, f"CREATE DOMAIN {domain} AS int CHECK (VALUE > 0)")
    try:
        table = make_table(f"id int PRIMARY KEY, s varchar(3), p {domain}")
        cases = [([(1, "abcd", 1)], psycopg.errors.StringDataRightTruncation),
                 ([(1, "abc", -1)], psycopg.errors.CheckViolation)]
        with engine.session_manager() as s:
            raw = s.connection()
            for rows, expected in cases:
                with pytest.raises(expected) as by_copy:
                    engine._adapter.copy_insert(raw, table, ["id", "s", "p"], rows)
                s.rollback()
                with pytest.raises(errors.FastsessError) as by_insert:
                    insert_with_parameters(s, table, ["id", "s", "p"], rows)
                s.rollback()
                assert by_insert.value.sqlstate == by_copy.value.sqlstate
            assert engine._adapter.copy_insert(raw, table, ["id", "s", "p"], [(1, "abc", 5)]) == 1
            s.commit()
        assert raw_query(admin, f'SELECT id, s, p FROM "{table}"') == [(1, "abc", 5)]
    finally:
        raw_query(admin, f"DROP DOMAIN IF EXISTS {domain} CASCADE")


@pytest.mark.parametrize("what", ["table", "column"])
def test_unknown_table_or_column_raise_what_insert_raises(engine, make_table, what):
    table = make_table("id int PRIMARY KEY")
    target, columns = (f"{table}_missing", ["id"]) if what == "table" else (table, ["id", "nope"])
    rows = [(1,) * len(columns)]
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(psycopg.Error) as by_copy:
            engine._adapter.copy_insert(raw, target, columns, rows)
        s.rollback()
        with pytest.raises(errors.ProgrammingError) as by_insert:
            insert_with_parameters(s, target, columns, rows)
        s.rollback()
    assert by_copy.value.sqlstate == by_insert.value.sqlstate == ("42P01" if what == "table" else "42703")
    assert isinstance(engine._adapter.translate(by_copy.value), errors.ProgrammingError)


def test_row_of_the_wrong_length_fails_before_anything_is_sent(engine, make_table, copies):
    table = make_table("id int PRIMARY KEY, n int")
    with engine.session_manager() as s:
        raw = s.connection()
        seen = copies(raw)
        with pytest.raises(ValueError, match="row 1 has 1 values, expected 2"):
            engine._adapter.copy_insert(raw, table, ["id", "n"], [(1, 1), (2,), (3, 3)])
        assert raw.info.transaction_status == pq.TransactionStatus.IDLE
    assert seen == []


def test_bad_identifier_fails_before_anything_is_sent(engine, make_table):
    table = make_table("id int PRIMARY KEY")
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(ValueError):
            engine._adapter.copy_insert(raw, table, ['i"d'], [(1,)])
        assert raw.info.transaction_status == pq.TransactionStatus.IDLE


@pytest.mark.parametrize("column_type, value", [("text", "a\x00b"), ("text[]", ["ok", "a\x00"])],
                         ids=["text", "text-array"])
def test_nul_in_a_string_is_refused_before_copy_starts(engine, make_table, raw_connect,
                                                       column_type, value):
    # COPY would fail after it started (aborting the transaction); refused
    # up front instead, so the INSERT path raises its typed error.
    table = make_table(f"id int PRIMARY KEY, s {column_type}")
    rows = [(1, "ok" if column_type == "text" else ["ok"]), (2, value)]
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(CopyRefused, match="NUL"):
            engine._adapter.copy_insert(raw, table, ["id", "s"], rows)
        assert raw.info.transaction_status != pq.TransactionStatus.INERROR
        many = [(i, rows[0][1]) for i in range(10, 130)] + [rows[1]]  # >= copy_min_rows
        with pytest.raises(errors.InvalidParameterValue):
            s.insert_rows(table, many, columns=["id", "s"])
        assert raw.info.transaction_status != pq.TransactionStatus.INERROR
    assert raw_query(raw_connect(), f'SELECT count(*) FROM "{table}"') == [(0,)]


# -- JSON: dicts and fastsess.Json into jsonb --------------------------------------


REFUSED_BY_INSERT = [  # what COPY refuses, the INSERT path raises before sending
    ("nan", {"x": [1.0, math.nan]}, errors.InvalidParameterValue),
    ("uuid", {"x": uuid.UUID(int=1)}, errors.UnsupportedParameter),
    ("nul", {"x": "a\x00b"}, errors.InvalidParameterValue),
]


@pytest.mark.parametrize("value, expected", [case[1:] for case in REFUSED_BY_INSERT],
                         ids=[case[0] for case in REFUSED_BY_INSERT])
def test_json_copy_refuses_falls_back_to_insert_which_raises(engine, make_table, raw_connect,
                                                             value, expected):
    table = make_table("id int PRIMARY KEY, j jsonb")
    many = [(i, {"ok": i}) for i in range(engine._adapter.copy_min_rows)] + [(10_000, value)]
    with engine.session_manager() as s:
        raw = s.connection()
        with pytest.raises(expected):
            s.insert_rows(table, many, columns=["id", "j"])
        assert raw.info.transaction_status != pq.TransactionStatus.INERROR
    assert raw_query(raw_connect(), f'SELECT count(*) FROM "{table}"') == [(0,)]


@pytest.mark.parametrize("where", [0, pg_driver._JSON_CHUNK - 1, pg_driver._JSON_CHUNK,
                                   3 * pg_driver._JSON_CHUNK + 7])
def test_json_refused_in_any_chunk_leaves_nothing_and_the_transaction_usable(
        engine, make_table, raw_connect, copies, where):
    table = make_table("id int PRIMARY KEY, j jsonb")
    rows = [(i, {"n": i, "l": [i / 2, None]}) for i in range(4 * pg_driver._JSON_CHUNK)]
    rows[where] = (where, {"n": where, "bad": math.inf})
    with engine.session_manager() as s:
        raw = s.connection()
        s.execute(f'INSERT INTO "{table}" (id, j) VALUES (-1, %s)', ({"kept": True},))
        seen = copies(raw)
        with pytest.raises(CopyRefused, match="column j: a JSON value json.dumps cannot write"):
            engine._adapter.copy_insert(raw, table, ["id", "j"], rows)
        # a refusal in the first chunk comes before anything is sent; a later one
        # after the COPY was rolled back to its savepoint
        assert len(seen) == (0 if where < pg_driver._JSON_CHUNK else 1)
        assert raw.info.transaction_status == pq.TransactionStatus.INTRANS
        assert s.execute(f'SELECT count(*) AS n FROM "{table}"').fetchone()["n"] == 1
        del rows[where]
        assert engine._adapter.copy_insert(raw, table, ["id", "j"], rows) == len(rows)
        s.commit()
    reader = raw_connect()
    assert raw_query(reader, f'SELECT count(*) FROM "{table}"') == [(len(rows) + 1,)]
    assert raw_query(reader, f"""SELECT j::text FROM "{table}" WHERE id = 1""") == \
        [('{"l": [0.5, null], "n": 1}',)]


def test_json_refused_in_a_later_chunk_in_autocommit(engine, make_table, raw_connect):
    table = make_table("id int PRIMARY KEY, j jsonb")
    rows = [(i, {"n": i}) for i in range(2 * pg_driver._JSON_CHUNK)]
    rows[-1] = (rows[-1][0], {"bad": math.nan})
    raw = raw_connect()  # autocommit: the failed COPY is its own transaction
    raw.adapters.register_dumper(dict, pg_driver._JsonbTextDumper)
    with pytest.raises(CopyRefused):
        engine._adapter.copy_insert(raw, table, ["id", "j"], rows)
    assert raw.info.transaction_status == pq.TransactionStatus.IDLE
    assert raw_query(raw, f'SELECT count(*) FROM "{table}"') == [(0,)]


def test_json_copy_releases_its_savepoint(engine, make_table):
    table = make_table("id int PRIMARY KEY, j jsonb")
    rows = [(i, {"n": i}) for i in range(2 * pg_driver._JSON_CHUNK + 1)]
    with engine.session_manager() as s:
        raw = s.connection()
        assert engine._adapter.copy_insert(raw, table, ["id", "j"], rows) == len(rows)
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            raw.execute("RELEASE SAVEPOINT " + pg_driver._JSON_SAVEPOINT)
        s.rollback()


def test_json_copy_needs_a_dumper_it_knows(engine, make_table, copies):
    from psycopg.types.json import JsonbDumper

    class OtherDumper(JsonbDumper):
        def dump(self, obj):
            return b'{"replaced": true}'

    table = make_table("id int PRIMARY KEY, j jsonb")
    with engine.session_manager() as s:
        raw = s.connection()
        seen = copies(raw)
        raw.adapters.register_dumper(dict, OtherDumper)
        with pytest.raises(CopyRefused, match="column j: the connection dumps dict values with"):
            engine._adapter.copy_insert(raw, table, ["id", "j"], [(1, {"a": 1})])
        assert seen == []
        # fastsess.Json keeps its own dumper: taken
        assert engine._adapter.copy_insert(raw, table, ["id", "j"],
                                           [(1, fastsess.Json({"a": 1}))]) == 1
        s.rollback()


def test_json_copy_needs_a_utf8_client_encoding(engine, make_table):
    table = make_table("id int PRIMARY KEY, j jsonb")
    with engine.session_manager() as s:
        raw = s.connection()
        s.execute("SET client_encoding TO 'LATIN1'")
        with pytest.raises(CopyRefused, match="UTF-8"):
            engine._adapter.copy_insert(raw, table, ["id", "j"], [(1, {"a": "\u00e9"})])
        s.rollback()


def test_json_text_finds_every_non_finite_float(dialect):
    @given(value=st.floats() | st.sampled_from([math.nan, -math.nan, math.inf, -math.inf]))
    @settings(max_examples=300)
    def check(value):
        if math.isfinite(value):
            assert json.loads(pg_driver._json_text({"x": [value]})) == {"x": [value]}
        else:
            with pytest.raises(CopyRefused, match="json.dumps cannot write"):
                pg_driver._json_text({"x": [value]})
            assert not pg_driver._orjson_writes(({"x": value},))

    check()


def test_json_text_uses_json_dumps_where_orjson_differs(dialect):
    class Text(str):
        pass

    class Color(enum.IntEnum):
        RED = 1

    # orjson refuses these (or writes them otherwise): json.dumps' text, value-equal
    for value in ({1: "a", None: "b"}, {"big": 2**64}, {"s": Text("x")}, {"e": Color.RED},
                  {"deep": _nested(300)}, {"nul": "\x00"}):
        if "nul" not in value:
            assert json.loads(pg_driver._json_text(value)) == json.loads(json.dumps(value))
        assert not pg_driver._orjson_writes((value, {"plain": 1}))
    assert pg_driver._orjson_writes(({"t": (1, 2), "f": 0.5}, None, {}))
    # backslash-u0000 as text (not a NUL) looks like one to the column check; the
    # value's own check takes it
    assert not pg_driver._orjson_writes(({"s": "\\u0000"},))
    assert json.loads(pg_driver._json_text({"s": "\\u0000"})) == {"s": "\\u0000"}
    with pytest.raises(CopyRefused, match="NUL"):
        pg_driver._json_text({"nul": "\x00"})
    # what orjson writes and json.dumps refuses: refused
    for value in ({"u": uuid.UUID(int=3)}, {"e": enum.Enum("E", "A").A},
                  {"d": datetime.datetime(2024, 1, 1)}, {"b": b"x"}, {"c": 1j}):
        with pytest.raises(CopyRefused):
            pg_driver._json_text(value)
        assert not pg_driver._orjson_writes((value,))
    cycle = {}
    cycle["self"] = cycle
    with pytest.raises(CopyRefused):
        pg_driver._json_text(cycle)


def _nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


# JSON documents as json.dumps takes them, NUL tried too (COPY refuses it, and so
# does the INSERT path).  Lone surrogates are left to REFUSED: the INSERT path lets
# a UnicodeEncodeError through for them.
_json_scalars = (st.none() | st.booleans() | st.integers()
                 | st.integers(min_value=-2**70, max_value=2**70)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
                 | st.sampled_from(["\x00", "\\u0000", "\u00e9\U0001F600", "\x1f\t\n"]))
_json_docs = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=4),
                          max_leaves=12)


_documents = st.lists(st.dictionaries(st.text(max_size=6), _json_docs, max_size=5)
                     | _json_docs.map(fastsess.Json), min_size=1, max_size=8)


def test_json_documents_stored_as_insert_stores_them(engine, make_table, raw_connect):
    by_copy, by_params = (make_table("id int PRIMARY KEY, x jsonb") for _ in range(2))
    reader = raw_connect()
    outcomes = set()

    @given(docs=_documents)
    @settings(max_examples=60, deadline=None)
    def check(docs):
        rows = [(i, doc) for i, doc in enumerate(docs)]
        with engine.session_manager() as s:
            raw = s.connection()
            try:
                copied = engine._adapter.copy_insert(raw, by_copy, ["id", "x"], rows)
            except CopyRefused:
                copied = None
            try:
                inserted = insert_with_parameters(s, by_params, ["id", "x"], rows)
            except (errors.InvalidParameterValue, errors.UnsupportedParameter):
                inserted = None
            if copied is None or inserted is None:
                s.rollback()
        try:
            outcomes.add("refused" if copied is None else "copied")
            if copied is None:  # refused: only what the INSERT path refuses too
                assert inserted is None
            else:
                assert copied == inserted == len(rows)
                assert as_text(reader, by_copy) == as_text(reader, by_params)
        finally:
            raw_query(reader, f'TRUNCATE "{by_copy}", "{by_params}"')

    check()
    assert outcomes == {"copied", "refused"}
