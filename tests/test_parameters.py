"""Parameters both databases take the same way, or neither (README: "Parameters").

A dict goes in as JSON on both (jsonb on PostgreSQL, a JSON string literal on
MySQL); ``fastsess.Json`` wraps any other JSON value; a value neither driver
adapts faithfully (set, a plain Enum member, an arbitrary object) raises
``errors.UnsupportedParameter`` naming the parameter and its type before the
statement is sent; a NUL character in text raises
``errors.InvalidParameterValue`` on PostgreSQL and is stored on MySQL.  The
types that worked before store exactly what the raw drivers store.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsess
from fastsess import errors

from .conftest import fresh_table, raw_query


class Color(enum.Enum):
    RED = 1


class Size(enum.IntEnum):
    LARGE = 3


class Mood(enum.StrEnum):
    HAPPY = "happy"


class Mixed(int, enum.Enum):  # an int mix-in that is not an IntEnum
    TWO = 2


class Point:
    def __init__(self, x):
        self.x = x


class Tags(set):
    pass


DOCS = [
    {"k": "v"},
    {"nested": {"a": [1, 2, {"b": None}], "t": True, "f": False}, "n": 1.5},
    {"ünïcødé": "çødé ✓ 😀 日本語", "emoji": ["🎉", "\u2028"]},
    {"quotes": "it's \"quoted\" and back\\slash", "tab": "a\tb\nc", "pct": "100%"},
    {},
    {"big": 2**70, "neg": -(2**63), "small": 0.000123, "list": [[], {}]},
]

# Values with no faithful adapter on either database: (value, the type named).
REFUSED = [
    pytest.param({1, 2}, set, id="set"),
    pytest.param(frozenset({"a"}), frozenset, id="frozenset"),
    pytest.param(object(), object, id="object"),
    pytest.param(Color.RED, Color, id="plain-enum"),
    pytest.param(Point(1), Point, id="custom-class"),
    pytest.param(Tags({"x"}), Tags, id="set-subclass"),
    pytest.param(1j, complex, id="complex"),
]


def count(raw_connect, table, where="") -> int:
    return raw_query(raw_connect(), f"SELECT count(*) FROM {table} {where}")[0][0]


def parsed(value, dialect):
    """A JSON value read back from a json/jsonb column or ``SELECT %s``:
    psycopg parses json and jsonb, MySQL gives the text."""
    if dialect == "postgresql":
        return value
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    return json.loads(value)


@pytest.fixture
def docs_table(dialect, raw_connect):
    """``(id int primary key, j <JSON type>, jb jsonb/LONGTEXT, t text)``."""
    if dialect == "postgresql":
        columns = "id INT PRIMARY KEY, j JSON, jb JSONB, t TEXT"
    else:
        columns = "id INT PRIMARY KEY, j JSON, jb LONGTEXT, t TEXT"
    yield from fresh_table(dialect, raw_connect, "pj", columns)


@pytest.fixture
def table(dialect, raw_connect):
    yield from fresh_table(dialect, raw_connect, "pt",
                           "id INT PRIMARY KEY, name VARCHAR(100), n INT")


@pytest.fixture
def text_table(dialect, raw_connect):
    yield from fresh_table(dialect, raw_connect, "ps", "id INT PRIMARY KEY, s TEXT")


def stored_docs(raw_connect, table):
    """(id, [j, jb, t] parsed) per row (the text column always holds text)."""
    conn = raw_connect()
    dialect = "mysql" if conn.__class__.__module__.startswith("MySQLdb") else "postgresql"
    rows = raw_query(conn, f"SELECT id, j, jb, t FROM {table} ORDER BY id")
    return [(i, [parsed(j, dialect), parsed(jb, dialect), None if t is None else json.loads(t)])
            for i, j, jb, t in rows]


# -- dicts and Json go in as JSON on both -------------------------------------------


def test_dicts_round_trip_through_execute(engine, docs_table, raw_connect):
    with engine.session_manager() as s:
        for i, doc in enumerate(DOCS):
            s.execute(f"INSERT INTO {docs_table} (id, j, jb, t) VALUES (%s, %s, %s, %s)",
                      (i, doc, doc, doc))
    assert stored_docs(raw_connect, docs_table) == [(i, [d, d, d]) for i, d in enumerate(DOCS)]


def test_dicts_round_trip_through_named_parameters(engine, docs_table, raw_connect):
    doc = DOCS[2]
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {docs_table} (id, j, jb, t) VALUES (%(id)s, %(d)s, %(d)s, %(d)s)",
                  {"id": 7, "d": doc})
    assert stored_docs(raw_connect, docs_table) == [(7, [doc, doc, doc])]


def test_dicts_round_trip_through_execute_many(engine, docs_table, raw_connect):
    with engine.session_manager() as s:
        s.execute_many(f"INSERT INTO {docs_table} (id, j, jb, t) VALUES (%s, %s, %s, %s)",
                       [(i, d, d, d) for i, d in enumerate(DOCS)])
    assert stored_docs(raw_connect, docs_table) == [(i, [d, d, d]) for i, d in enumerate(DOCS)]


@pytest.mark.parametrize("n", [3, 150], ids=["small", "copy-sized"])
def test_dicts_round_trip_through_insert_rows(engine, docs_table, raw_connect, n):
    rows = [{"id": i, "j": DOCS[i % len(DOCS)], "jb": DOCS[(i + 1) % len(DOCS)],
             "t": {"i": i, "doc": DOCS[i % len(DOCS)]}} for i in range(n)]
    with engine.session_manager() as s:
        assert s.insert_rows(docs_table, rows) == n
    assert stored_docs(raw_connect, docs_table) == [
        (r["id"], [r["j"], r["jb"], r["t"]]) for r in rows]


def test_dicts_round_trip_through_upsert_rows(engine, docs_table, raw_connect):
    first = [{"id": i, "j": {"v": i}, "jb": {"v": i}, "t": {"v": i}} for i in range(3)]
    second = [{"id": i, "j": DOCS[i], "jb": DOCS[i], "t": DOCS[i]} for i in range(1, 4)]
    with engine.session_manager() as s:
        s.upsert_rows(docs_table, first, "id")
        s.upsert_rows(docs_table, second, "id")
    assert stored_docs(raw_connect, docs_table) == [
        (0, [{"v": 0}] * 3), (1, [DOCS[1]] * 3), (2, [DOCS[2]] * 3), (3, [DOCS[3]] * 3)]


def test_batch_insert_models_with_dicts(engine, docs_table, raw_connect):
    class Doc:
        def __init__(self, i, doc):
            self.i, self.doc = i, doc

        def get_table(self):
            return docs_table

        def get_storable_snapshot(self):
            return {"id": self.i, "j": self.doc, "jb": self.doc, "t": self.doc}

        def get_id_properties(self):
            return {"id": None}

    with engine.session_manager() as s:
        assert s.batch_insert([Doc(i, d) for i, d in enumerate(DOCS)]) == len(DOCS)
    assert stored_docs(raw_connect, docs_table) == [(i, [d, d, d]) for i, d in enumerate(DOCS)]


@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_select_of_a_dict_gives_the_same_json_on_both(dialect, engine, doc):
    with engine.session_manager() as s:
        value = s.execute("SELECT %s AS v", (doc,)).fetchone()["v"]
    assert parsed(value, dialect) == doc


def test_a_mysql_dict_is_json_text_not_its_repr(dialect, engine):
    if dialect != "mysql":
        pytest.skip("PostgreSQL returns jsonb parsed")
    with engine.session_manager() as s:
        value = s.execute("SELECT %s AS v", ({"k": "v"},)).fetchone()["v"]
    assert value == '{"k": "v"}'


def test_a_dict_inside_a_list_is_json_too(dialect, engine):
    doc = {"k": ["é", 1]}
    with engine.session_manager() as s:
        if dialect == "postgresql":  # a list of dicts is a jsonb[] array
            value = s.execute("SELECT (%s::jsonb[])[2] AS v", ([{"a": 1}, doc],)).fetchone()["v"]
            assert value == doc
        else:  # an IN sequence of JSON string literals
            row = s.execute("SELECT %s IN %s AS hit, JSON_VALID(%s) AS valid",
                            (fastsess.params.dumps(doc), ["x", doc], doc)).fetchone()
            assert row == {"hit": 1, "valid": 1}


@pytest.mark.parametrize("value", [[1, "two", {"3": None}], "text", 5, None, {"a": [1]}],
                         ids=["list", "str", "int", "null", "dict"])
def test_json_wrapper_stores_any_json_value_on_both(dialect, engine, docs_table, raw_connect,
                                                    value):
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {docs_table} (id, j, jb, t) VALUES (%s, %s, %s, %s)",
                  (1, fastsess.Json(value), fastsess.Json(value), fastsess.Json(value)))
        echoed = s.execute("SELECT %s AS v", (fastsess.Json(value),)).fetchone()["v"]
    assert stored_docs(raw_connect, docs_table) == [(1, [value, value, value])]
    assert parsed(echoed, dialect) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
    | st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
              max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(blacklist_characters="\x00",
                                            blacklist_categories=("Cs",)), max_size=8),
                      children, max_size=4),
    max_leaves=12,
)


@settings(deadline=None, max_examples=40,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k), json_values,
                           max_size=5))
def test_any_json_dict_round_trips(dialect, engine, docs_table, raw_connect, doc):
    with engine.session_manager() as s:
        s.execute(f"DELETE FROM {docs_table}")
        s.execute(f"INSERT INTO {docs_table} (id, j, jb, t) VALUES (%s, %s, %s, %s)",
                  (1, doc, doc, fastsess.Json(doc)))
        echoed = s.execute("SELECT %s AS v", (doc,)).fetchone()["v"]
    assert stored_docs(raw_connect, docs_table) == [(1, [doc, doc, doc])]
    assert parsed(echoed, dialect) == doc


# -- values with no faithful adapter ------------------------------------------------


def assert_names(err, parameter, python_type, row=None):
    assert isinstance(err, errors.UnsupportedParameter)
    assert isinstance(err, TypeError) and isinstance(err, errors.ProgrammingError)
    assert err.parameter == parameter
    assert err.python_type is python_type
    assert err.row == row
    text = str(err)
    assert python_type.__name__ in text
    assert repr(parameter) in text
    assert "not sent" in text


def carry_on(s, table, raw_connect, next_id=100):
    """The session works after the error: the next statement in the same
    transaction, then the commit."""
    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (next_id, "after"))
    s.commit()
    assert raw_query(raw_connect(), f"SELECT id, name FROM {table}") == [(next_id, "after")]


@pytest.mark.parametrize("value, python_type", REFUSED)
def test_refused_by_execute_naming_the_position(engine, table, raw_connect, value, python_type):
    s = engine.get_session()
    s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "before"))
    with pytest.raises(errors.UnsupportedParameter) as caught:
        s.execute(f"INSERT INTO {table} (id, n, name) VALUES (%s, %s, %s)", (2, 5, value))
    assert_names(caught.value, 2, python_type)
    s.execute(f"DELETE FROM {table} WHERE id = %s", (1,))
    carry_on(s, table, raw_connect)
    s.close()
    assert engine.pool_stats()["connections_discarded"] == 0


@pytest.mark.parametrize("value, python_type", REFUSED)
def test_refused_by_execute_naming_the_key(engine, table, raw_connect, value, python_type):
    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.execute(f"INSERT INTO {table} (id, name) VALUES (%(id)s, %(name)s)",
                      {"id": 1, "name": value})
        assert_names(caught.value, "name", python_type)
        carry_on(s, table, raw_connect)


def test_refused_inside_a_list(dialect, engine, table, raw_connect):
    sql = ("SELECT count(*) AS n FROM {} WHERE id IN %s" if dialect == "mysql"
           else "SELECT count(*) AS n FROM {} WHERE id = ANY(%s)")
    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.execute(sql.format(table), ([1, {2}],))
        assert_names(caught.value, 0, set)
        assert "holds a value of type set" in str(caught.value)
        carry_on(s, table, raw_connect)


@pytest.mark.parametrize("value, python_type", REFUSED[:4])
def test_refused_by_execute_many_before_any_set_is_sent(engine, table, raw_connect, value,
                                                        python_type):
    sets = [(i, f"n{i}") for i in range(50)] + [(50, value)]
    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.execute_many(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", sets)
        assert_names(caught.value, 1, python_type, row=50)
        # Not even the sets before the bad one ran in this transaction.
        assert s.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0
        carry_on(s, table, raw_connect)


@pytest.mark.parametrize("n", [2, 150], ids=["small", "copy-sized"])
@pytest.mark.parametrize("value, python_type", REFUSED[:4])
def test_refused_by_insert_rows(dialect, engine, table, raw_connect, n, value, python_type):
    rows = [{"id": i, "name": f"n{i}", "n": i} for i in range(n - 1)]
    rows.append({"id": n - 1, "name": value, "n": 0})
    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.insert_rows(table, rows)
        err = caught.value
        if dialect == "mysql":  # the literal builder knows the row and the column
            assert_names(err, "name", python_type, row=n - 1)
        else:  # the position in the built INSERT (one chunk here)
            assert_names(err, 3 * (n - 1) + 1, python_type)
        carry_on(s, table, raw_connect, next_id=1000)


@pytest.mark.parametrize("value, python_type", REFUSED[:4])
def test_refused_by_upsert_and_delete_rows(engine, table, raw_connect, value, python_type):
    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.upsert_rows(table, [{"id": 1, "name": "a", "n": 1},
                                  {"id": 2, "name": "b", "n": value}], "id")
        assert_names(caught.value, 5, python_type)
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.delete_rows(table, [1, value], "id")
        assert_names(caught.value, 1, python_type)
        carry_on(s, table, raw_connect)


def test_refused_by_batch_insert(dialect, engine, table, raw_connect):
    class Row:
        def __init__(self, i, name):
            self.i, self.name = i, name

        def get_table(self):
            return table

        def get_storable_snapshot(self):
            return {"id": self.i, "name": self.name}

        def get_id_properties(self):
            return {"id": None}

    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.batch_insert([Row(1, "a"), Row(2, Color.RED)])
        if dialect == "mysql":
            assert_names(caught.value, "name", Color, row=1)
        else:
            assert_names(caught.value, 3, Color)
        carry_on(s, table, raw_connect)


def test_refused_in_an_atomic_block_leaves_the_block_usable(engine, table, raw_connect):
    with fastsess.atomic(using=engine) as s:
        with pytest.raises(errors.UnsupportedParameter):
            s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, {"a", "b"}))
        with fastsess.atomic(using=engine):
            s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (2, "inner"))
    assert raw_query(raw_connect(), f"SELECT id, name FROM {table}") == [(2, "inner")]


def test_postgresql_transaction_is_not_aborted(dialect, engine, table):
    if dialect != "postgresql":
        pytest.skip("PostgreSQL's transaction status")
    from psycopg import pq

    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'x')")
        with pytest.raises(errors.UnsupportedParameter):
            s.execute("SELECT %s", ({1},))
        assert s.connection().info.transaction_status == pq.TransactionStatus.INTRANS


def test_json_that_cannot_be_written_is_refused(engine, table, raw_connect):
    with engine.session_manager() as s:
        with pytest.raises(errors.UnsupportedParameter) as caught:
            s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, {"when": {1, 2}}))
        assert_names(caught.value, 1, dict)
        with pytest.raises(errors.InvalidParameterValue) as caught:
            s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)",
                      (1, fastsess.Json([float("nan")])))
        assert caught.value.parameter == 1 and caught.value.python_type is fastsess.Json
        carry_on(s, table, raw_connect)


# -- NUL characters -----------------------------------------------------------------


def test_nul_in_text(dialect, engine, text_table, raw_connect):
    value = "before\x00after"
    with engine.session_manager() as s:
        if dialect == "postgresql":
            with pytest.raises(errors.InvalidParameterValue) as caught:
                s.execute(f"INSERT INTO {text_table} (id, s) VALUES (%s, %s)", (1, value))
            err = caught.value
            assert isinstance(err, ValueError) and isinstance(err, errors.DataError)
            assert (err.parameter, err.python_type) == (1, str)
            assert "parameter 1" in str(err) and "NUL" in str(err)
            s.execute(f"INSERT INTO {text_table} (id, s) VALUES (%s, %s)", (2, "fine"))
        else:
            s.execute(f"INSERT INTO {text_table} (id, s) VALUES (%s, %s)", (1, value))
            s.execute(f"INSERT INTO {text_table} (id, s) VALUES (%s, %s)", (2, "fine"))
            assert s.execute(f"SELECT s FROM {text_table} WHERE id = 1").fetchone() == {"s": value}
    stored = raw_query(raw_connect(), f"SELECT id, s FROM {text_table} ORDER BY id")
    assert stored == ([(2, "fine")] if dialect == "postgresql" else [(1, value), (2, "fine")])


@pytest.mark.parametrize("path", ["execute_many", "insert_rows-small", "insert_rows-copy-sized"])
def test_nul_in_text_in_batches(dialect, engine, text_table, raw_connect, path):
    n = 150 if path.endswith("copy-sized") else 3
    rows = [(i, f"row {i}") for i in range(n - 1)] + [(n - 1, "a\x00b")]
    with engine.session_manager() as s:
        def run():
            if path == "execute_many":
                s.execute_many(f"INSERT INTO {text_table} (id, s) VALUES (%s, %s)", rows)
            else:
                s.insert_rows(text_table, rows, columns=["id", "s"])

        if dialect == "postgresql":
            with pytest.raises(errors.InvalidParameterValue) as caught:
                run()
            assert caught.value.python_type is str
            assert s.execute(f"SELECT count(*) AS n FROM {text_table}").fetchone()["n"] == 0
            s.execute(f"INSERT INTO {text_table} (id, s) VALUES (%s, %s)", (1000, "after"))
        else:
            run()
    stored = raw_query(raw_connect(), f"SELECT id, s FROM {text_table} ORDER BY id")
    assert stored == ([(1000, "after")] if dialect == "postgresql" else rows)


def test_nul_inside_a_dict(dialect, engine, docs_table, raw_connect):
    doc = {"s": "a\x00b"}
    with engine.session_manager() as s:
        if dialect == "postgresql":  # jsonb cannot hold \u0000
            with pytest.raises(errors.InvalidParameterValue) as caught:
                s.execute(f"INSERT INTO {docs_table} (id, jb) VALUES (%s, %s)", (1, doc))
            assert (caught.value.parameter, caught.value.python_type) == (1, dict)
        else:
            s.execute(f"INSERT INTO {docs_table} (id, j, jb, t) VALUES (%s, %s, %s, %s)",
                      (1, doc, doc, doc))
    expected = [] if dialect == "postgresql" else [(1, [doc, doc, doc])]
    assert stored_docs(raw_connect, docs_table) == expected


# -- what worked before stores what it stored before ---------------------------------

AWARE = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456,
                          tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
SAME_AS_DRIVER = {
    # column: (PostgreSQL type, MariaDB type, value)
    "ts": ("timestamptz", "DATETIME(6)", AWARE),
    "naive": ("timestamp", "DATETIME(6)", datetime.datetime(2024, 1, 2, 3, 4, 5)),
    "u": ("uuid", "CHAR(36)", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    "d": ("numeric(14,4)", "DECIMAL(14,4)", decimal.Decimal("-1234.5678")),
    "b": ("bytea", "BLOB", b"\x00\x01'\\\xff"),
    "ba": ("bytea", "BLOB", bytearray(b"ba\x00")),
    "nothing": ("int", "INT", None),
    "flag": ("boolean", "BOOL", True),
    "off": ("boolean", "BOOL", False),
    "s": ("text", "TEXT", "non-ASCII: Grüße, 日本, 😀, 'quote'"),
    "se": ("text", "VARCHAR(20)", Mood.HAPPY),
    "ie": ("int", "INT", Size.LARGE),
    "dt": ("date", "DATE", datetime.date(2024, 2, 29)),
    "tm": ("time", "TIME(6)", datetime.time(13, 14, 15, 16)),
    "td": ("interval", "TIME(6)", datetime.timedelta(hours=5, seconds=7)),
    "f": ("float8", "DOUBLE", 0.1 + 0.2),
    "big": ("bigint", "BIGINT", 2**62),
}


@pytest.fixture
def typed_table(dialect, raw_connect):
    index = 0 if dialect == "postgresql" else 1
    columns = ", ".join(f"{name} {spec[index]}" for name, spec in SAME_AS_DRIVER.items())
    yield from fresh_table(dialect, raw_connect, "pd", f"id INT PRIMARY KEY, {columns}")


@pytest.mark.parametrize("path", ["execute", "insert_rows", "execute_many"])
def test_stores_what_the_raw_driver_stores(dialect, engine, typed_table, raw_connect, path):
    names = list(SAME_AS_DRIVER)
    values = [spec[2] for spec in SAME_AS_DRIVER.values()]
    sql = (f"INSERT INTO {typed_table} (id, {', '.join(names)}) "
           f"VALUES ({', '.join(['%s'] * (len(names) + 1))})")
    raw = raw_connect()
    if dialect == "postgresql":
        raw.execute("SET TIME ZONE 'UTC'")
    raw_query(raw, sql, [1] + values)
    with engine.session_manager() as s:
        if dialect == "postgresql":
            s.execute("SET TIME ZONE 'UTC'")
        if path == "execute":
            s.execute(sql, [2] + values)
        elif path == "insert_rows":
            s.insert_rows(typed_table, [[2] + values], columns=["id"] + names)
        else:
            s.execute_many(sql, [[2] + values, [3] + values])
    stored = raw_query(raw, f"SELECT * FROM {typed_table} ORDER BY id")
    assert len(stored) >= 2
    for row in stored[1:]:
        assert row[1:] == stored[0][1:]


def test_select_echoes_what_the_raw_driver_echoes(dialect, engine, raw_connect):
    # (bytes that are not UTF-8 come back undecodable from MySQL's SELECT)
    values = [spec[2] for name, spec in SAME_AS_DRIVER.items() if name not in ("b", "ba")]
    values += [b"bytes", Mixed.TWO]
    sql = "SELECT " + ", ".join(["%s"] * len(values))
    # The (int, Enum) mix-in: mysqlclient wrote 'Mixed.TWO', psycopg its int.
    expected_raw = list(raw_query(raw_connect(), sql, values[:-1] + [2])[0])
    if dialect == "mysql":
        expected_raw[-1] = "2"  # quoted, as mysqlclient quotes an IntEnum
    with engine.session_manager() as s:
        cursor = s.connection().cursor()
        cursor.execute(sql, values)
        assert list(cursor.fetchone()) == expected_raw


def test_mysql_literals_match_mysqlclient_for_what_it_wrote_faithfully(dialect, engine,
                                                                        raw_connect):
    if dialect != "mysql":
        pytest.skip("mysqlclient literals")
    stock = raw_connect()
    values = [spec[2] for spec in SAME_AS_DRIVER.values()]
    values += [1.5, -7, "", [1, "a", None], (2, 3), collections.namedtuple("P", "x y")(1, 2)]
    with engine.session_manager() as s:
        ours = s.connection()
        for value in values:
            # (a namedtuple: mysqlclient quoted its str(); now an IN sequence)
            plain = tuple(value) if isinstance(value, tuple) else value
            assert ours.literal(value) == stock.literal(plain), value
        # What mysqlclient wrote unfaithfully: now the value, or refused.
        assert ours.literal(memoryview(b"ab")) == stock.literal(b"ab")
        assert stock.literal(memoryview(b"ab")).startswith(b"'<memory at")
        assert ours.literal(Mixed.TWO) == b"'2'" and stock.literal(Mixed.TWO) == b"'Mixed.TWO'"
        assert ours.literal({"k": 1}) == stock.literal('{"k": 1}')
        assert ours.literal(fastsess.Json([1])) == stock.literal("[1]")
        with pytest.raises(errors.UnsupportedParameter):
            ours.literal(Color.RED)


def test_memoryview_goes_in_as_its_bytes_on_both(engine, dialect, raw_connect):
    expected = raw_query(raw_connect(), "SELECT %s", (b"m\x00v",))
    with engine.session_manager() as s:
        cursor = s.connection().cursor()
        cursor.execute("SELECT %s", (memoryview(b"m\x00v"),))
        assert [tuple(cursor.fetchone())] == expected


def test_error_classes_sit_in_the_hierarchy():
    assert issubclass(errors.UnsupportedParameter, errors.FastsessError)
    assert issubclass(errors.UnsupportedParameter, TypeError)
    assert issubclass(errors.InvalidParameterValue, ValueError)
    assert issubclass(errors.InvalidParameterValue, errors.DataError)
    assert not issubclass(errors.UnsupportedParameter, ValueError)
    assert "UnsupportedParameter" in errors.__doc__ and "InvalidParameterValue" in errors.__doc__
    assert fastsess.Json is fastsess.params.Json and "Json" in fastsess.__all__
    assert fastsess.Json([1]) == fastsess.Json([1]) and fastsess.Json([1]) != fastsess.Json([2])


# -- text the connection cannot encode (a lone surrogate) -------------------------------------

UNENCODABLE = [("näme \ud800", str), ({"ü": ["x\udfff"]}, dict), (fastsess.Json(["\ud83d"]), fastsess.Json)]


@pytest.mark.parametrize("value, python_type", UNENCODABLE)
def test_unencodable_text_is_an_invalid_value_naming_the_parameter(engine, table, raw_connect,
                                                                    value, python_type):
    """A lone surrogate cannot be written in UTF-8: InvalidParameterValue naming
    the parameter, nothing sent, the session and its connection fine (psycopg
    let its UnicodeEncodeError through; mysqlclient's was a ProgrammingError)."""
    with engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "before"))
        with pytest.raises(errors.InvalidParameterValue) as caught:
            s.execute(f"INSERT INTO {table} (id, n, name) VALUES (%s, %s, %s)", (2, 5, value))
        err = caught.value
        assert err.parameter == 2 and err.python_type is python_type
        assert isinstance(err.orig, UnicodeEncodeError) and "cannot be encoded" in str(err)
        s.rollback()
        with pytest.raises(errors.InvalidParameterValue) as caught:
            s.execute(f"SELECT count(*) AS n FROM {table} WHERE name = %(name)s",
                      {"name": ["ok", "\ud800"] if python_type is str else value})
        assert caught.value.parameter == "name"
        carry_on(s, table, raw_connect)
    assert engine.pool_stats()["connections_discarded"] == 0
