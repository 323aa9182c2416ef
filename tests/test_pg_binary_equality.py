"""psycopg's binary results against its text results, type by type, on the real server:
``fastsess.drivers.pg_formats`` must call a type exact exactly when they agree.

Each group fetches a list of values of one type, under given settings, once
with text results and once with binary results.  Where the table says exact,
every value must come out the same (type, value, repr, tzinfo, or the same
exception class); where it says not exact, at least one value must differ:
every exclusion carries its measured witness.  Hypothesis then searches the
exact types' value spaces (numeric, float8, jsonb, intervals, timestamps).
"""

from __future__ import annotations

import datetime
import decimal
import json

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.multirange import Multirange
from psycopg.types.range import Range

from fastsess.drivers import pg_formats

from .conftest import PG_URL, _require_server

pytestmark = pytest.mark.db


# -- fetching and comparing ------------------------------------------------------------

def shape(value):
    """What must be equal between the two loads: type and repr, all the way down
    (a datetime's repr names its tzinfo and fold; the offset is added)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [shape(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(shape(k), shape(v)) for k, v in value.items()])
    if isinstance(value, Range):
        return ("Range", shape(value.lower), shape(value.upper), value.bounds, value.isempty)
    if isinstance(value, Multirange):
        return ("Multirange", [shape(r) for r in value])
    if isinstance(value, (datetime.datetime, datetime.time)):
        return (type(value).__name__, repr(value), repr(value.tzinfo), value.utcoffset())
    return (type(value).__name__, repr(value))


def fetch(conn, sql, params=None, binary=False):
    """(shape of the first column of the one row, its type OID); an exception
    counts by its class."""
    cur = conn.cursor(binary=binary)
    try:
        cur.execute(sql, params)
        oid = cur.description[0].type_code
        try:
            return shape(cur.fetchone()[0]), oid
        except Exception as e:  # the loader's failure is part of the outcome
            return ("raises", type(e).__name__), oid
    finally:
        cur.close()


def both(conn, sql, params=None):
    """(text shape, binary shape, type OID) of ``sql``'s first value."""
    text, oid = fetch(conn, sql, params)
    binary, oid_b = fetch(conn, sql, params, binary=True)
    assert oid == oid_b
    return text, binary, oid


def conn_settings(conn):
    """The settings pg_formats needs, read from the connection as fastsess would."""
    shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in pg_formats.UNREPORTED}
    return pg_formats.settings_of(conn.pgconn, **shown)


def apply(conn, gucs):
    """SET each setting of ``gucs`` on ``conn`` (after RESET ALL)."""
    conn.execute("RESET ALL")
    for name, value in gucs.items():
        conn.execute(f"SET {name} = '{value}'")


@pytest.fixture(scope="module")
def conn():
    """One autocommit psycopg connection with psycopg's default loaders, and user types."""
    _require_server("postgresql")
    c = psycopg.connect(PG_URL, autocommit=True)
    # Temporary types: gone with the connection, nothing left on the server.
    c.execute("CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok', 'happy')")
    c.execute("CREATE TYPE pg_temp.pair AS (a int, b text)")
    c.execute("CREATE DOMAIN pg_temp.posint AS int CHECK (VALUE > 0)")
    c.execute("CREATE DOMAIN pg_temp.price AS numeric(10, 2)")
    c.execute("CREATE DOMAIN pg_temp.label AS varchar(20)")
    yield c
    c.close()


# -- the groups: (name, settings, SQL expressions of one type) -------------------------

FLOAT8 = ["0.1::float8", "0.1::float8 + 0.2::float8", "(1 / 3.0)::float8", "'NaN'::float8",
          "'Infinity'::float8", "'-Infinity'::float8", "'-0'::float8", "5e-324::float8",
          "1.7976931348623157e308::float8", "2.2250738585072014e-308::float8", "123456789.125::float8"]
NUMERIC = ["0::numeric", "0.000::numeric", "1.50::numeric", "-1.50::numeric", "'NaN'::numeric",
           "'Infinity'::numeric", "'-Infinity'::numeric", "0.00000000000000000001::numeric",
           "1e-1000::numeric", "(10::numeric ^ 1000)", "repeat('9', 300)::numeric",
           "(repeat('9', 100) || '.' || repeat('9', 100))::numeric", "1.5::numeric(10, 4)",
           "123456789012345678901234567890.123456789::numeric", "-0.0001::numeric", "1e20::numeric",
           "10000::numeric", "(2::numeric ^ 64)", "'1.23e5'::numeric"]
DATES = ["'2024-03-17'::date", "'0001-01-01'::date", "'9999-12-31'::date", "'1582-10-04'::date",
         "'infinity'::date", "'-infinity'::date", "'0044-03-15 BC'::date", "'10000-01-01'::date"]
TIMESTAMPS = ["'2024-03-17 12:34:56.789'::timestamp", "'0001-01-01'::timestamp",
              "'9999-12-31 23:59:59.999999'::timestamp", "'2024-02-29 00:00:00.000001'::timestamp",
              "'infinity'::timestamp", "'-infinity'::timestamp", "'2000-01-01 BC'::timestamp",
              "'10000-01-01'::timestamp"]
TIMESTAMPTZS = ["'2024-03-17 12:34:56.789+00'::timestamptz", "'2000-01-01 00:00:00+05:30'::timestamptz",
                # DST edges: Europe/Paris, America/St_Johns (both ways), the ambiguous hour
                "'2024-03-31 00:59:59.999999+00'::timestamptz", "'2024-03-31 01:00:00+00'::timestamptz",
                "'2024-10-27 00:30:00+00'::timestamptz", "'2024-10-27 01:30:00+00'::timestamptz",
                "'2024-03-10 05:29:59+00'::timestamptz", "'2024-03-10 05:30:00+00'::timestamptz",
                "'2024-11-03 03:30:00+00'::timestamptz", "'2024-11-03 04:30:00+00'::timestamptz",
                # local mean time (offsets with seconds), the edges of Python's range
                "'1850-06-01 12:00:00+00'::timestamptz", "'0001-01-01 00:00:00+00'::timestamptz",
                "'9999-12-31 23:59:59.999999+00'::timestamptz", "'9999-12-31 23:00:00-05'::timestamptz",
                "'0001-01-01 05:00:00+14'::timestamptz", "'infinity'::timestamptz",
                # inside Python's range in local time, outside it in UTC (year 1 BC, year 10000)
                "'0001-01-01 00:00:00+00'::timestamptz - interval '1 second'",
                "'9999-12-31 23:59:59.999999+00'::timestamptz + interval '1 second'",
                "'-infinity'::timestamptz"]
INTERVALS = ["'1 year 2 mons 3 days 04:05:06.789'::interval",
             "'-1 year -2 mons +3 days -04:05:06.789'::interval", "'1 mon -1 day'::interval",
             "'0'::interval", "'1 microsecond'::interval", "'-1 microsecond'::interval",
             "'13 mons'::interval", "'-13 mons'::interval",
             "'2562047788:00:54.775807'::interval", "'-2562047788:00:54.775807'::interval",
             "'178956970 years 7 mons'::interval", "'59.999999 seconds'::interval",
             "'100000000 days'::interval", "'36 hours'::interval",
             # the two extremes psycopg's C binary loader negates into overflow
             "'-2562047788:00:54.775807'::interval - '1 microsecond'::interval",
             "'-178956970 years -8 mons'::interval"]
JSONS = ["""'{"a": 1, "b": [1, 2.5, null, true], "c": {"d": "é😀\\n\\"q\\""}}'""",
         "'\"é😀\"'", "'123456789012345678901234567890'", "'1e400'", "'-0.0'", "'0.1'",
         """'{"a": 1, "a": 2}'""", "'[[[[{\"x\": [1]}]]]]'", "'  {\"sp\" :  1 } '", "'null'",
         """'"\\u0000 \\ud83d\\ude00"'"""]

# Settings every group runs under unless it names its own.
BASE = {"TimeZone": "UTC", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres",
        "extra_float_digits": "1", "bytea_output": "hex"}

GROUPS = [
    ("bool", {}, ["true", "false", "NULL::bool"]),
    ("int2", {}, ["0::int2", "(-32768)::int2", "32767::int2"]),
    ("int4", {}, ["0", "(-2147483648)::int4", "2147483647"]),
    ("int8", {}, ["(-9223372036854775808)::int8", "9223372036854775807::int8"]),
    ("oid", {}, ["0::oid", "4294967295::oid", "'pg_class'::regclass::oid"]),
    ("float4", {}, ["1.1::real", "0.5::real", "'NaN'::real", "3.4e38::real", "1e-45::real"]),
    ("float8", {}, FLOAT8),
    ("float8 efd=3", {"extra_float_digits": "3"}, FLOAT8),
    ("float8 efd=0", {"extra_float_digits": "0"}, FLOAT8),
    ("float8 efd=-15", {"extra_float_digits": "-15"}, FLOAT8),
    ("numeric", {}, NUMERIC),
    ("text", {}, ["''", "'é😀 tab\tand \\ backslash'", "'NULL'", "repeat('x', 100000)"]),
    ("varchar", {}, ["'ab'::varchar(5)", "'é'::varchar"]),
    ("bpchar", {}, ["'ab'::char(5)", "'é'::char(3)", "''::char(2)"]),
    ("name", {}, ["'pg_class'::name", "repeat('é', 40)::name"]),
    ('"char"', {}, ["'a'::\"char\"", "''::\"char\"", "chr(233)::\"char\""]),
    ("bytea hex", {}, ["'\\x00ff'::bytea", "''::bytea", "'abc'::bytea", "'é'::bytea"]),
    ("bytea escape", {"bytea_output": "escape"}, ["'\\x00ff5c'::bytea", "''::bytea", "'abc'::bytea"]),
    ("uuid", {}, ["'00000000-0000-0000-0000-000000000000'::uuid",
                  "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid", "md5('fastsess')::uuid"]),
    ("json", {}, [e + "::json" for e in JSONS if "u0000" not in e] + ["'\"\\u0000\"'::json"]),
    ("jsonb", {}, [e + "::jsonb" for e in JSONS if "u0000" not in e]),
    ("inet", {}, ["'192.168.0.1'::inet", "'192.168.0.1/24'::inet", "'10.0.0.0/8'::inet",
                  "'::1'::inet", "'2001:db8::1/64'::inet", "'0.0.0.0/0'::inet"]),
    ("cidr", {}, ["'10.0.0.0/8'::cidr", "'192.168.0.0/32'::cidr", "'2001:db8::/32'::cidr"]),
    ("date", {}, DATES),
    ("time", {}, ["'00:00'::time", "'23:59:59.999999'::time", "'24:00:00'::time",
                  "'12:34:56.5'::time"]),
    ("timetz", {}, ["'12:34:56+05:30'::timetz", "'00:00:00-15:59'::timetz", "'23:59:59.999999+00'::timetz",
                    "'12:00:00+01:02:03'::timetz", "'24:00:00+00'::timetz"]),
    ("timestamp", {}, TIMESTAMPS),
    ("interval", {}, INTERVALS),
    ("money", {}, ["12.34::money", "(-1)::money"]),
    ("xml", {}, ["'<a>é</a>'::xml"]),
    ("point", {}, ["'(1,2)'::point"]),
    ("macaddr", {}, ["'08:00:2b:01:02:03'::macaddr"]),
    ("bit", {}, ["B'101'"]),
    ("tsvector", {}, ["'a fat cat'::tsvector"]),
    ("regclass", {}, ["'pg_class'::regclass"]),
    ("pg_lsn", {}, ["'16/B374D848'::pg_lsn"]),
    ("xid", {}, ["'42'::xid"]),
    ("void", {}, ["pg_sleep(0)"]),
    ("enum", {}, ["'ok'::pg_temp.mood"]),
    ("enum[]", {}, ["ARRAY['ok', 'sad']::pg_temp.mood[]"]),
    ("composite", {}, ["ROW(1, 'x')::pg_temp.pair"]),
    ("record", {}, ["ROW(1, 'x')", "ROW(1.5::float8, NULL)"]),
    ("domain int4", {}, ["1::pg_temp.posint"]),
    ("domain numeric", {}, ["1.5::pg_temp.price", "12345678.9::pg_temp.price"]),
    ("domain varchar", {}, ["'é'::pg_temp.label"]),
    ("domain[]", {}, ["ARRAY[1, 2]::pg_temp.posint[]"]),
    # arrays: 1-D, 2-D, NULL elements, empty, lower bounds other than 1
    ("int4[]", {}, ["'{1,NULL,3}'::int4[]", "'{{1,2},{3,4}}'::int4[]", "'{}'::int4[]",
                    "'[0:1]={1,2}'::int4[]", "'{{NULL}}'::int4[]"]),
    ("int8[]", {}, ["'{9223372036854775807,NULL}'::int8[]"]),
    ("text[]", {}, ["""'{"a b","NULL",NULL,"é😀","a\\"b","c\\\\d",""}'::text[]""",
                    "'{{a,b},{c,d}}'::text[]", "ARRAY['{', '}', ',', ' ']"]),
    ("varchar[]", {}, ["ARRAY['a', NULL]::varchar[]"]),
    ("bpchar[]", {}, ["ARRAY['a', NULL]::char(3)[]"]),
    ("name[]", {}, ["ARRAY['a']::name[]"]),
    ("bool[]", {}, ["'{t,f,NULL}'::bool[]"]),
    ("bytea[]", {}, ["ARRAY['\\x00'::bytea, NULL, '']"]),
    ("bytea[] escape", {"bytea_output": "escape"}, ["ARRAY['\\x005c'::bytea, NULL, '']"]),
    ("numeric[]", {}, ["ARRAY[1.50, NULL, 'NaN', '-Infinity', 1e-30]::numeric[]",
                       "'{{1.0,2},{3,4.000}}'::numeric[]"]),
    ("float4[]", {}, ["ARRAY[1.1, NULL]::real[]"]),
    ("float8[]", {}, ["ARRAY[0.1::float8 + 0.2::float8, 'NaN', '-0', NULL]"]),
    ("float8[] efd=0", {"extra_float_digits": "0"}, ["ARRAY[0.1::float8 + 0.2::float8]"]),
    ("uuid[]", {}, ["ARRAY[md5('x')::uuid, NULL]"]),
    ("jsonb[]", {}, ["""ARRAY['{"a": [1, "é"]}'::jsonb, NULL, '1e30']"""]),
    ("json[]", {}, ["""ARRAY['{"a": 1, "a": 2}'::json, NULL]"""]),
    ("date[]", {}, ["ARRAY['2024-03-17'::date, NULL]", "ARRAY['infinity'::date]"]),
    ("time[]", {}, ["ARRAY['12:00:00.5'::time, NULL]"]),
    ("timetz[]", {}, ["ARRAY['12:00:00.5+05:30'::timetz, NULL]"]),
    ("timestamp[]", {}, ["ARRAY['2024-03-17 12:00'::timestamp, NULL]"]),
    ("timestamptz[]", {}, ["ARRAY['2024-03-17 12:00+00'::timestamptz, NULL]"]),
    ("timestamptz[] New York", {"TimeZone": "America/New_York"},
     ["ARRAY['2024-03-17 12:00+00'::timestamptz, '9999-12-31 23:00:00-05']"]),
    ("interval[]", {}, ["ARRAY['1 year 1 day'::interval, NULL]",
                        "ARRAY['-2562047788:00:54.775807'::interval - '1 microsecond'::interval]"]),
    ("interval[] iso_8601", {"IntervalStyle": "iso_8601"}, ["ARRAY['1 year 1 day'::interval]"]),
    ("inet[]", {}, ["ARRAY['192.168.0.1/24'::inet, NULL]"]),
    ("cidr[]", {}, ["ARRAY['10.0.0.0/8'::cidr]"]),
    ("oid[]", {}, ["ARRAY[1, 4294967295]::oid[]"]),
    ("int2[]", {}, ["ARRAY[1, NULL]::int2[]"]),
    ('"char"[]', {}, ["ARRAY[chr(233)::\"char\"]"]),
    ("money[]", {}, ["ARRAY[1::money]"]),
    ("record[]", {}, ["ARRAY[ROW(1, 'x')]"]),
    # ranges and multiranges
    ("int4range", {}, ["'[1,5)'::int4range", "'empty'::int4range", "'(,5)'::int4range",
                       "'[1,)'::int4range", "NULL::int4range"]),
    ("int8range", {}, ["'[1,9223372036854775806]'::int8range"]),
    ("numrange", {}, ["'[1.50,2.5]'::numrange", "'(,NaN]'::numrange", "'[1e-30,1e30)'::numrange"]),
    ("daterange", {}, ["'[2024-01-01,2024-02-01)'::daterange", "'[2024-01-01,infinity)'::daterange",
                       "'(,2024-01-01)'::daterange"]),
    ("tsrange", {}, ["'[2024-01-01 12:00,2024-02-01 00:00:00.5)'::tsrange"]),
    ("tstzrange", {}, ["'[2024-01-01 12:00+00,2024-02-01 00:00:00.5+00)'::tstzrange"]),
    ("tstzrange New York", {"TimeZone": "America/New_York"},
     ["'[2024-01-01 12:00+00,2024-02-01)'::tstzrange", "'[2024-01-01,9999-12-31 23:00:00-05)'::tstzrange"]),
    ("int4multirange", {}, ["'{[1,3),[5,7)}'::int4multirange", "'{}'::int4multirange"]),
    ("nummultirange", {}, ["'{[1.5,2.50]}'::nummultirange"]),
    ("datemultirange", {}, ["'{[2024-01-01,2024-02-01)}'::datemultirange"]),
    ("tsmultirange", {}, ["'{[2024-01-01,2024-02-01)}'::tsmultirange"]),
    ("tstzmultirange", {}, ["'{[2024-01-01 00:00+00,2024-02-01 00:00+00)}'::tstzmultirange"]),
    ("int8multirange", {}, ["'{[1,3)}'::int8multirange"]),
    ("int4range[]", {}, ["ARRAY['[1,5)'::int4range, 'empty', NULL]"]),
]

# Session time zones and date styles for the date/time types.
ZONES = ["UTC", "Etc/UTC", "GMT", "Europe/London", "Europe/Lisbon", "Pacific/Kiritimati",
         "Europe/Paris", "America/St_Johns", "America/New_York", "Asia/Kolkata", "Etc/GMT-5",
         "+05:30", "-03:30"]
DATESTYLES = ["ISO, MDY", "ISO, DMY", "SQL, DMY", "SQL, MDY", "German", "Postgres, MDY", "Postgres, DMY"]
GROUPS += [(f"timestamptz {z}", {"TimeZone": z}, TIMESTAMPTZS) for z in ZONES]
GROUPS += [(f"{name} {ds}", {"DateStyle": ds}, values)
           for ds in DATESTYLES[1:]
           for name, values in [("date", DATES), ("timestamp", TIMESTAMPS), ("timestamptz UTC", TIMESTAMPTZS),
                                ("time", ["'12:34:56.5'::time"]), ("timetz", ["'12:34:56.5+05:30'::timetz"])]]
GROUPS += [(f"interval {s}", {"IntervalStyle": s}, INTERVALS)
           for s in ["postgres_verbose", "sql_standard", "iso_8601"]]


# Exclusions whose witness is a bug of psycopg's C implementation (the one
# fastsess runs, and the table's): its Python implementation agrees on them.
C_ONLY_EXCLUSIONS = {"interval", "interval[]", "bytea[] escape"}


@pytest.mark.parametrize("name, gucs, values", GROUPS, ids=[g[0] for g in GROUPS])
def test_table_says_exact_exactly_when_values_agree(conn, name, gucs, values):
    apply(conn, {**BASE, **gucs})
    settings_now = conn_settings(conn)
    outcomes = [(sql, *both(conn, f"SELECT {sql}")) for sql in values]
    oids = {oid for _, _, _, oid in outcomes}
    assert len(oids) == 1, f"{name}: values of more than one type: {oids}"
    exact = pg_formats.oid_exact(oids.pop(), settings_now)
    differ = [(sql, text, binary) for sql, text, binary, _ in outcomes if text != binary]
    if exact:
        assert not differ, f"{name} is listed exact under {settings_now} but differs: {differ}"
    elif psycopg.pq.__impl__ == "c" or name not in C_ONLY_EXCLUSIONS:
        assert differ, (f"{name} is excluded under {settings_now} but every value agreed: "
                        "add the value that differs, or list the type as exact")


# -- hypothesis over the exact types' values -------------------------------------------

HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_same(conn, gucs, sql, params):
    apply(conn, {**BASE, **gucs})
    text, binary, oid = both(conn, sql, params)
    assert pg_formats.oid_exact(oid, conn_settings(conn))
    assert text == binary, (sql, params)


@HYPO
@given(value=st.decimals(allow_nan=True, allow_infinity=True, places=None)
       .filter(lambda d: not d.is_snan() and (not d.is_finite() or -16383 < d.adjusted() < 131072)),
       typmod=st.sampled_from(["", "(30, 10)", "(1000, 500)", "(5, 0)"]))
def test_numeric_values(conn, value, typmod):
    if value.is_nan():
        value = decimal.Decimal("NaN")  # the server keeps no sign or payload
    try:
        assert_same(conn, {}, f"SELECT %s::text::numeric{typmod}", [str(value)])
    except psycopg.errors.NumericValueOutOfRange:
        pass  # beyond the typmod: the server refuses it, nothing to load


@HYPO
@given(value=st.floats(), efd=st.sampled_from(["1", "2", "3"]))
def test_float8_values(conn, value, efd):
    assert_same(conn, {"extra_float_digits": efd}, "SELECT %s::text::float8", [repr(value)])


def _json_values():
    scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**40, max_value=10**40)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text())
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@HYPO
@given(value=_json_values(), kind=st.sampled_from(["json", "jsonb"]), ascii_only=st.booleans())
def test_json_values(conn, value, kind, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)  # non-ASCII as itself or as \u escapes
    if "\\u0000" in text and kind == "jsonb":
        return  # jsonb refuses NUL in strings
    assert_same(conn, {}, f"SELECT %s::text::{kind}", [text])


@HYPO
@given(months=st.integers(-(2**31) + 1, 2**31 - 1), days=st.integers(-(2**31), 2**31 - 1),
       micros=st.integers(-(2**63) + 1, 2**63 - 1))
def test_interval_agrees_but_at_the_extremes(conn, months, days, micros):
    """Not exact (psycopg's C binary loader gets -2**31 months and -2**63
    microseconds wrong: the interval group above) but every other interval agrees."""
    hours, rest = divmod(abs(micros), 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    sign = "-" if micros < 0 else ""
    text = f"{months} mons {days} days {sign}{hours}:{minutes:02}:{rest / 1e6:09.6f}"
    apply(conn, BASE)
    text_shape, binary_shape, _ = both(conn, "SELECT %s::text::interval", [text])
    assert text_shape == binary_shape, text


_instants = st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30),
                         timezones=st.just(datetime.timezone.utc))


@HYPO
@given(instant=_instants, zone=st.sampled_from(["UTC", "Etc/UTC", "GMT"]))
def test_timestamptz_values_zero_offset(conn, instant, zone):
    assert_same(conn, {"TimeZone": zone}, "SELECT %s::text::timestamptz", [instant.isoformat()])


@HYPO
@given(instant=_instants, zone=st.sampled_from(["Europe/Paris", "America/St_Johns", "Asia/Kolkata",
                                                 "Australia/Lord_Howe", "+05:30"]))
def test_timestamptz_agrees_away_from_the_edges(conn, instant, zone):
    """Not exact (the table excludes these zones for the edges of Python's
    range) but every ordinary instant agrees: what a later opt-in would accept."""
    apply(conn, {**BASE, "TimeZone": zone})
    text, binary, _ = both(conn, "SELECT %s::text::timestamptz", [instant.isoformat()])
    assert text == binary, (instant, zone)


@HYPO
@given(value=st.datetimes(min_value=datetime.datetime(1, 1, 1)),
       datestyle=st.sampled_from(DATESTYLES))
def test_timestamp_values(conn, value, datestyle):
    assert_same(conn, {"DateStyle": datestyle}, "SELECT %s::text::timestamp", [value.isoformat()])


# -- the decision, without a server ----------------------------------------------------

def test_binary_exact_needs_every_column():
    s = {**BASE}
    assert pg_formats.binary_exact([2950, 23, 25, 1184, 16, 701, 25, 3802], s)
    assert not pg_formats.binary_exact([23, 700], s)  # one real column: text for all
    assert not pg_formats.binary_exact([23, 1184], {**s, "TimeZone": "Europe/Paris"})
    assert not pg_formats.binary_exact([701], {k: v for k, v in s.items() if k != "extra_float_digits"})
    assert not pg_formats.binary_exact([16384], s)  # a user type
    assert pg_formats.binary_exact([], s)
    assert not pg_formats.binary_exact([1001], {**s, "bytea_output": "escape"})  # bytea[]
    assert pg_formats.binary_exact([17], {**s, "bytea_output": "escape"})  # bytea


@pytest.mark.parametrize("zone, exact", [("UTC", True), ("Etc/UTC", True), ("Europe/London", True),
                                         ("Pacific/Kiritimati", True), ("Europe/Paris", False),
                                         ("America/New_York", False), ("+05:30", False), ("", False)])
def test_timestamptz_zones(zone, exact):
    assert pg_formats.oid_exact(1184, {"DateStyle": "ISO, MDY", "TimeZone": zone}) is exact
    assert not pg_formats.oid_exact(1184, {"DateStyle": "SQL, DMY", "TimeZone": zone})
