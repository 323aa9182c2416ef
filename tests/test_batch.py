"""Batch writes on both servers: ``batch_insert``, ``batch_delete``,
``insert_rows`` and ``delete_rows`` (multi-row statements, chunking, atomicity,
identifier checks and bound values)."""

from __future__ import annotations

import logging
import uuid

import pytest

import fastsess.session as session_module
from fastsess import errors

from .conftest import KeylessModel, Model, fresh_table, raw_query

# Rows one 4-column INSERT can carry under the 65,535 parameter limit.
ROWS_PER_4_COLUMN_CHUNK = 65535 // 4  # 16383


# -- models -------------------------------------------------------------------


class TableRef:
    """What RESTAlchemy's ``get_table()`` returns: an object with a ``.name``."""

    def __init__(self, name):
        self.name = name


class TableObjectModel(Model):
    """``get_table()`` gives an object with ``.name`` instead of a string."""

    def get_table(self):
        return TableRef(self._table)


class PairModel(Model):
    """A model over ``table2`` with the composite primary key ``(a, b)``."""

    primary_key = ("a", "b")


# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture
def statements(monkeypatch):
    """Every statement any Session runs through ``execute`` during the test.

    COPY is switched off: these tests count the multi-row statements
    (test_copy_path_* cover COPY)."""
    from fastsess.drivers.postgresql import PostgreSQLAdapter

    monkeypatch.setattr(PostgreSQLAdapter, "copy_min_rows", 0)
    seen = []

    def spy(statement, params, many=False):
        # MySQL batch inserts arrive as bytes with the literals written in.
        seen.append(statement.decode("utf-8", "replace") if isinstance(statement, bytes)
                    else statement)

    # Every statement a session runs goes through the statement log: switch
    # it on and listen where the session writes to it.
    monkeypatch.setattr(session_module, "_log_statement", spy)
    log = session_module.STATEMENT_LOG
    level = log.level
    log.setLevel(logging.DEBUG)
    yield seen
    log.setLevel(level)


def inserts(seen):
    return [s for s in seen if s.lstrip().upper().startswith("INSERT")]


def deletes(seen):
    return [s for s in seen if s.lstrip().upper().startswith("DELETE")]


def row_groups(statement):
    """Rows in a multi-row INSERT: ``(%s, ..)`` groups, or on MySQL, where the
    values are written in as literals, ``(..),(..)`` groups (the test values
    contain no "),(")."""
    if "%s" in statement:
        return statement.count("(%s")
    return statement.count("),(") + 1


# On MySQL a batch INSERT carries literals, not parameters: it is chunked by
# max_allowed_packet only.  400 kB splits 20,000 four-column rows in two, as
# the parameter limit does on PostgreSQL.
SMALL_PACKET = 400_000


@pytest.fixture
def small_packet(dialect, engine, monkeypatch):
    if dialect == "mysql":
        monkeypatch.setattr(engine._adapter, "_max_packet", SMALL_PACKET)


@pytest.fixture
def table4(dialect, raw_connect):
    """A fresh table with four columns ``(id int pk, a varchar, b int, c varchar)``."""
    yield from fresh_table(dialect, raw_connect, "t4",
                           "id INT PRIMARY KEY, a VARCHAR(50), b INT, c VARCHAR(50)")


def four_column_rows(ids):
    return [(i, f"a{i}", i * 2, f"c{i}") for i in ids]


def items(table, ids, cls=Model):
    return [cls(table, id=i, name=f"item {i}", n=i * 10) for i in ids]


def rows(raw, sql, params=None):
    return sorted(raw_query(raw, sql, params))


# -- rows land ----------------------------------------------------------------


@pytest.mark.parametrize("model_cls", [Model, TableObjectModel], ids=["table-str", "table-object"])
def test_batch_insert_rows_land_and_are_visible_after_commit(engine, table, raw_connect, statements,
                                                              model_cls):
    raw = raw_connect()
    with engine.session_manager() as s:
        assert s.batch_insert(items(table, [1, 2, 3], model_cls)) == 3
        assert raw_query(raw, f"SELECT id FROM {table}") == []  # not committed yet
    assert rows(raw, f"SELECT id, name, n FROM {table}") == [
        (1, "item 1", 10), (2, "item 2", 20), (3, "item 3", 30)]
    assert len(inserts(statements)) == 1


def test_insert_rows_with_dicts_maps_values_by_key(engine, table, raw_connect):
    raw = raw_connect()
    with engine.session_manager() as s:
        # Key order differs between the dicts: values follow the column names.
        assert s.insert_rows(table, [{"id": 1, "name": "a", "n": 10},
                                     {"n": 20, "id": 2, "name": "b"}]) == 2
    assert rows(raw, f"SELECT id, name, n FROM {table}") == [(1, "a", 10), (2, "b", 20)]


def test_insert_rows_with_sequences_and_columns(engine, table, raw_connect):
    raw = raw_connect()
    with engine.session_manager() as s:
        assert s.insert_rows(table, [(5, 50), (6, 60)], columns=["id", "n"]) == 2
    assert rows(raw, f"SELECT id, name, n FROM {table}") == [(5, None, 50), (6, None, 60)]


def test_insert_rows_with_sequences_needs_columns(engine, table):
    s = engine.get_session()
    with pytest.raises(TypeError):
        s.insert_rows(table, [(1, "a", 1)])
    assert not s.has_connection
    s.close()


# -- no-ops and refusals send nothing ------------------------------------------


@pytest.mark.parametrize("op", ["batch_insert", "batch_delete", "insert_rows", "delete_rows"])
@pytest.mark.parametrize("empty", [[], ()], ids=["list", "tuple"])
def test_empty_input_is_a_noop_without_sql(engine, table, statements, op, empty):
    s = engine.get_session()
    if op in ("batch_insert", "batch_delete"):
        result = getattr(s, op)(empty)
    elif op == "insert_rows":
        result = s.insert_rows(table, empty)
    else:
        result = s.delete_rows(table, empty, ["id"])
    assert result == 0
    assert not s.has_connection
    assert statements == []
    s.close()
    assert engine.pool_stats()["checkouts"] == 0


def test_empty_generator_is_a_noop(engine, table, statements):
    s = engine.get_session()
    assert s.batch_insert(m for m in []) == 0
    assert s.insert_rows(table, iter([])) == 0
    assert not s.has_connection and statements == []
    s.close()


@pytest.mark.parametrize("op", ["batch_insert", "batch_delete"])
def test_mixed_model_types_raise_type_error_before_sql(engine, table, raw_connect, statements, op):
    mixed = [Model(table, id=1, name="a", n=1), TableObjectModel(table, id=2, name="b", n=2)]
    s = engine.get_session()
    with pytest.raises(TypeError):
        getattr(s, op)(mixed)
    assert not s.has_connection
    assert statements == []
    s.close()
    assert raw_query(raw_connect(), f"SELECT id FROM {table}") == []


def test_subclass_is_another_model_type(engine, table, statements):
    class SpecialModel(Model):
        pass

    s = engine.get_session()
    with pytest.raises(TypeError):
        s.batch_insert([Model(table, id=1, name="a", n=1), SpecialModel(table, id=2, name="b", n=2)])
    assert not s.has_connection and statements == []
    s.close()


def test_batch_delete_without_primary_key_raises_value_error_before_sql(engine, table, raw_connect,
                                                                        statements):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (1, 'keep')")
    s = engine.get_session()
    with pytest.raises(ValueError):
        s.batch_delete([KeylessModel(table, id=1, name="keep", n=None)])
    assert not s.has_connection
    assert statements == []
    s.close()
    assert raw_query(raw, f"SELECT id FROM {table}") == [(1,)]


def test_models_with_different_columns_raise_value_error_before_sql(engine, table, statements):
    s = engine.get_session()
    with pytest.raises(ValueError):
        s.batch_insert([Model(table, id=1, name="a", n=1), Model(table, id=2, name="b")])
    assert not s.has_connection and statements == []
    s.close()


QUOTE = {"postgresql": '"', "mysql": "`"}


def _quote_case(op, dialect, table):
    """A batch call whose table or column name carries the dialect's quote."""
    q = QUOTE[dialect]

    def call(s):
        if op == "table":
            return s.insert_rows(f"bad{q}name", [{"id": 1, "name": "x", "n": 1}])
        if op == "column":
            return s.batch_insert([Model(table, **{"id": 1, f"na{q}me": "x"})])
        if op == "key-column":
            return s.delete_rows(table, [1], [f"i{q}d"])
        if op == "model-table":
            return s.batch_delete([Model(f"bad{q}name", id=1, name="x", n=1)])
        raise AssertionError(op)

    return call


QUOTE_OPS = ["table", "column", "key-column", "model-table"]


@pytest.mark.parametrize("op", QUOTE_OPS)
def test_quote_in_identifier_raises_value_error(dialect, engine, table, raw_connect, op):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (1, 'keep')")
    call = _quote_case(op, dialect, table)
    with pytest.raises(ValueError, match="quote"):
        with engine.session_manager() as s:
            call(s)
    assert rows(raw, f"SELECT id, name FROM {table}") == [(1, "keep")]


@pytest.mark.parametrize("op", QUOTE_OPS)
def test_quote_in_identifier_is_refused_before_any_sql(request, dialect, engine, table, statements, op):
    s = engine.get_session()
    with pytest.raises(ValueError):
        _quote_case(op, dialect, table)(s)
    try:
        assert statements == []
        assert not s.has_connection
    finally:
        s.close()


def test_percent_in_identifier_is_literal(dialect, engine, raw_connect):
    q = QUOTE[dialect]
    name = f"pct%_{uuid.uuid4().hex[:8]}"
    raw = raw_connect()
    raw_query(raw, f"CREATE TABLE {q}{name}{q} (id INT PRIMARY KEY, {q}n%d{q} INT)")
    try:
        with engine.session_manager() as s:
            assert s.insert_rows(name, [{"id": 1, "n%d": 7}, {"id": 2, "n%d": 8}]) == 2
        assert raw_query(raw, f"SELECT id, {q}n%d{q} FROM {q}{name}{q} ORDER BY id") == [(1, 7), (2, 8)]
        with engine.session_manager() as s:
            assert s.delete_rows(name, [1], "id") == 1
        assert raw_query(raw, f"SELECT id FROM {q}{name}{q}") == [(2,)]
    finally:
        raw_query(raw, f"DROP TABLE IF EXISTS {q}{name}{q}")


# -- composite keys and deletes -----------------------------------------------


def test_composite_primary_key_insert_and_delete(engine, table2, raw_connect, statements):
    raw = raw_connect()
    models = [PairModel(table2, a=1, b="x", v=10), PairModel(table2, a=1, b="y", v=11),
              PairModel(table2, a=2, b="x", v=20), PairModel(table2, a=2, b="it's", v=21)]
    with engine.session_manager() as s:
        assert s.batch_insert(models) == 4
    assert rows(raw, f"SELECT a, b, v FROM {table2}") == [
        (1, "x", 10), (1, "y", 11), (2, "it's", 21), (2, "x", 20)]
    with engine.session_manager() as s:
        # (1, "x") and (2, "it's") exist; (3, "x") does not; (1, "y") is not asked for
        # although its parts appear in other keys.
        gone = [PairModel(table2, a=1, b="x", v=None), PairModel(table2, a=2, b="it's", v=None),
                PairModel(table2, a=3, b="x", v=None)]
        assert s.batch_delete(gone) == 2
    assert rows(raw, f"SELECT a, b, v FROM {table2}") == [(1, "y", 11), (2, "x", 20)]
    assert len(inserts(statements)) == 1 and len(deletes(statements)) == 1


def test_delete_rows_with_composite_keys_as_tuples_and_dicts(engine, table2, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table2} (a, b, v) VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3)")
    with engine.session_manager() as s:
        assert s.delete_rows(table2, [(1, "x"), {"b": "x", "a": 2}, (9, "z")], ["a", "b"]) == 2
    assert rows(raw, f"SELECT a, b FROM {table2}") == [(1, "y")]


def test_delete_rows_with_single_key(engine, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id) VALUES (1), (2), (3), (4)")
    with engine.session_manager() as s:
        assert s.delete_rows(table, [1, {"id": 3}, (4,), 99], "id") == 3
    assert rows(raw, f"SELECT id FROM {table}") == [(2,)]


def test_delete_rows_dict_without_key_column_raises_value_error(engine, table, statements):
    s = engine.get_session()
    with pytest.raises(ValueError):
        s.delete_rows(table, [{"name": "x"}], ["id"])
    assert not s.has_connection and statements == []
    s.close()


def test_batch_delete_returns_number_of_rows_deleted(engine, table, raw_connect):
    raw = raw_connect()
    with engine.session_manager() as s:
        s.batch_insert(items(table, [1, 2, 3, 4]))
    with engine.session_manager() as s:
        # 2 and 4 exist, 7 does not; key values come from the snapshot.
        assert s.batch_delete(items(table, [2, 4, 7])) == 2
        assert s.batch_delete(items(table, [2, 4])) == 0  # already gone
    assert rows(raw, f"SELECT id FROM {table}") == [(1,), (3,)]


def test_batch_delete_is_rolled_back_with_the_transaction(engine, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id) VALUES (1), (2)")
    s = engine.get_session()
    assert s.batch_delete(items(table, [1, 2])) == 2
    s.rollback()
    s.close()
    assert rows(raw, f"SELECT id FROM {table}") == [(1,), (2,)]


# -- one statement per chunk; chunking ---------------------------------------


def test_one_multi_row_statement_per_chunk(engine, table, raw_connect, statements):
    raw = raw_connect()
    with engine.session_manager() as s:
        assert s.batch_insert(items(table, range(100))) == 100
    ins = inserts(statements)
    assert len(ins) == 1
    assert row_groups(ins[0]) == 100
    assert raw_query(raw, f"SELECT count(*) FROM {table}") == [(100,)]
    del statements[:]
    with engine.session_manager() as s:
        assert s.batch_delete(items(table, range(100))) == 100
    assert len(deletes(statements)) == 1
    assert raw_query(raw, f"SELECT count(*) FROM {table}") == [(0,)]


def test_insert_rows_beyond_parameter_limit_is_chunked(dialect, engine, table4, raw_connect, statements,
                                                      small_packet):
    raw = raw_connect()
    data = four_column_rows(range(20000))  # 80,000 parameters > 65,535
    with engine.session_manager() as s:
        assert s.insert_rows(table4, data, columns=["id", "a", "b", "c"]) == 20000
    ins = inserts(statements)
    assert len(ins) == 2
    if dialect == "postgresql":
        assert row_groups(ins[0]) == ROWS_PER_4_COLUMN_CHUNK
    else:
        assert all(len(st.encode()) <= SMALL_PACKET for st in ins)
    assert row_groups(ins[0]) + row_groups(ins[1]) == 20000
    count, id_sum, b_sum = raw_query(raw, f"SELECT count(*), sum(id), sum(b) FROM {table4}")[0]
    assert (int(count), int(id_sum), int(b_sum)) == (20000, sum(range(20000)), 2 * sum(range(20000)))
    probe = [0, ROWS_PER_4_COLUMN_CHUNK - 1, ROWS_PER_4_COLUMN_CHUNK, 19999]
    got = rows(raw, f"SELECT id, a, b, c FROM {table4} WHERE id IN (%s, %s, %s, %s)", probe)
    assert got == four_column_rows(probe)


def test_batch_insert_beyond_parameter_limit_is_chunked(engine, table4, raw_connect, statements,
                                                        small_packet):
    raw = raw_connect()
    models = [Model(table4, id=i, a=f"a{i}", b=i, c=None) for i in range(20000)]
    with engine.session_manager() as s:
        assert s.batch_insert(models) == 20000
    assert len(inserts(statements)) == 2
    assert raw_query(raw, f"SELECT count(*), count(c) FROM {table4}") == [(20000, 0)]


def test_delete_rows_beyond_parameter_limit_is_chunked(dialect, engine, table, raw_connect, statements):
    raw = raw_connect()
    ids = list(range(70000))  # one key column: 70,000 parameters > 65,535
    with engine.session_manager() as s:
        assert s.insert_rows(table, [(i,) for i in ids], columns=["id"]) == 70000
    # MySQL's literal INSERT (about 560 kB) is bound by max_allowed_packet only.
    assert len(inserts(statements)) == (2 if dialect == "postgresql" else 1)
    with engine.session_manager() as s:
        assert s.delete_rows(table, ids[:-1], "id") == 69999
    assert len(deletes(statements)) == 2
    assert raw_query(raw, f"SELECT id FROM {table}") == [(69999,)]


def test_composite_delete_beyond_parameter_limit_is_chunked(request, dialect, engine, table2,
                                                            raw_connect, statements):
    raw = raw_connect()
    keys = [(i, f"k{i % 7}") for i in range(40000)]  # 2 x 40,000 = 80,000 parameters
    with engine.session_manager() as s:
        assert s.insert_rows(table2, [(a, b, a) for a, b in keys], columns=["a", "b", "v"]) == 40000
    # 3 x 40,000 parameters: chunked as well (MySQL: literals, one statement)
    assert len(inserts(statements)) == (2 if dialect == "postgresql" else 1)
    with engine.session_manager() as s:
        assert s.delete_rows(table2, keys[:-1], ["a", "b"]) == 39999
    # PostgreSQL takes at most max_row_keys composite keys per row-value IN
    # list (deeper lists overrun its stack); MySQL is bound by parameters only.
    per_statement = engine._adapter.max_row_keys or 65535 // 2
    assert len(deletes(statements)) == -(-39999 // per_statement)
    assert all(st.count("(%s, %s)") <= per_statement for st in deletes(statements))
    assert raw_query(raw, f"SELECT a, b, v FROM {table2}") == [(39999, "k1", 39999)]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_composite_batch_delete_of_ten_thousand_models(dialect, engine, table2, raw_connect):
    raw = raw_connect()
    models = [PairModel(table2, a=i, b="k", v=i) for i in range(10000)]
    with engine.session_manager() as s:
        assert s.batch_insert(models) == 10000
    with engine.session_manager() as s:
        assert s.batch_delete(models) == 10000
    assert raw_query(raw, f"SELECT count(*) FROM {table2}") == [(0,)]


# -- duplicates: atomic batches -----------------------------------------------


@pytest.mark.parametrize("ids", [[10, 11, 1, 12], [10, 11, 10, 12]],
                         ids=["clashes-with-existing", "duplicate-inside-batch"])
def test_duplicate_in_batch_insert_leaves_table_unchanged(dialect, engine, table, raw_connect, ids):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (1, 'before'), (2, 'before')")
    dup = str(1 if 1 in ids else 10)
    with pytest.raises(errors.ConflictError) as ei:
        with engine.session_manager() as s:
            s.batch_insert(items(table, ids))
    err = ei.value
    expected_key = "id" if dialect == "postgresql" else "PRIMARY"
    assert (err.key, err.value) == (expected_key, dup)
    assert rows(raw, f"SELECT id, name FROM {table}") == [(1, "before"), (2, "before")]


def test_duplicate_in_second_chunk_rolls_back_whole_batch_even_when_committed(
        dialect, engine, table4, raw_connect, statements, small_packet):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table4} (id, a) VALUES (19000, 'before')")  # in the 2nd chunk
    s = engine.get_session()
    try:
        # Work done in the same transaction before the batch must survive its failure.
        s.insert_rows(table4, [{"id": -1, "a": "same tx", "b": None, "c": None}])
        del statements[:]
        with pytest.raises(errors.ConflictError) as ei:
            s.insert_rows(table4, four_column_rows(range(20000)), columns=["id", "a", "b", "c"])
        assert len(inserts(statements)) == 2  # the first chunk did run
        err = ei.value
        assert err.value == "19000"
        assert err.key == ("id" if dialect == "postgresql" else "PRIMARY")
        # The caller swallows the error and commits: no row of the first chunk lands.
        s.commit()
        # The session is still usable afterwards.
        assert s.execute(f"SELECT count(*) AS c FROM {table4}").fetchone()["c"] == 2
        s.commit()
    finally:
        s.close()
    assert rows(raw, f"SELECT id, a FROM {table4}") == [(-1, "same tx"), (19000, "before")]
    assert engine.pool_stats()["connections_discarded"] == 0


def test_duplicate_in_second_chunk_in_session_manager_leaves_table_unchanged(
        dialect, engine, table4, raw_connect, small_packet):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table4} (id, a) VALUES (-5, 'before'), (19999, 'before')")
    models = [Model(table4, id=i, a=f"a{i}", b=i, c=f"c{i}") for i in range(20000)]
    with pytest.raises(errors.ConflictError) as ei:
        with engine.session_manager() as s:
            s.batch_insert(models)
    assert ei.value.value == "19999"
    assert rows(raw, f"SELECT id, a FROM {table4}") == [(-5, "before"), (19999, "before")]


# -- values are bound, never spliced ------------------------------------------
# (On MySQL a batch INSERT writes each value as the literal mysqlclient's own
# escaping gives, which is what cursor.execute does with parameters; see
# tests/test_mysql_literals.py.  These values must still round-trip exactly.)

TRICKY = [
    "O'Reilly",
    "''",
    'double "quoted"',
    "`backticks`",
    "back\\slash",
    "ends with backslash \\",
    "\\'",
    "100% sure",
    "%s",
    "%%",
    "%(name)s",
    "%d %",
    "'); DROP TABLE users; --",
    "tab\tnewline\ncr\r",
    "ünïcödé 日本語 🎉",
    "",
    None,
]


@pytest.mark.parametrize("via", ["insert_rows", "batch_insert"])
def test_tricky_values_round_trip_exactly(engine, table, raw_connect, via):
    raw = raw_connect()
    data = [(i, value, None if i % 2 else i) for i, value in enumerate(TRICKY)]
    with engine.session_manager() as s:
        if via == "insert_rows":
            assert s.insert_rows(table, data, columns=["id", "name", "n"]) == len(data)
        else:
            models = [Model(table, id=i, name=name, n=n) for i, name, n in data]
            assert s.batch_insert(models) == len(data)
    assert rows(raw, f"SELECT id, name, n FROM {table}") == data
    # And they delete by those values too (a text key column).
    with engine.session_manager() as s:
        deleted = s.delete_rows(table, [v for v in TRICKY if v is not None], ["name"])
    assert deleted == len([v for v in TRICKY if v is not None])
    assert raw_query(raw, f"SELECT id, name FROM {table}") == [(TRICKY.index(None), None)]


def test_tricky_composite_keys_delete(engine, table2, raw_connect):
    raw = raw_connect()
    keys = [(i, v) for i, v in enumerate(TRICKY) if v is not None and len(v) <= 20]
    with engine.session_manager() as s:
        s.batch_insert([PairModel(table2, a=a, b=b, v=a) for a, b in keys])
    assert rows(raw, f"SELECT a, b FROM {table2}") == sorted(keys)
    with engine.session_manager() as s:
        assert s.batch_delete([PairModel(table2, a=a, b=b, v=None) for a, b in keys]) == len(keys)
    assert raw_query(raw, f"SELECT a FROM {table2}") == []


# -- PostgreSQL's COPY path ------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_copy_path_for_large_batches(dialect, engine, table, raw_connect, monkeypatch):
    seen = []
    original = engine._adapter.copy_insert
    monkeypatch.setattr(engine._adapter, "copy_insert",
                        lambda *a: seen.append(len(a[3])) or original(*a))
    n = engine._adapter.copy_min_rows
    with engine.session_manager() as s:
        assert s.batch_insert(items(table, range(n))) == n
        assert s.insert_rows(table, [(i, None, None) for i in range(n, n + 5)],
                             columns=["id", "name", "n"]) == 5
    assert seen == [n]  # the small batch took the INSERT path
    assert raw_query(raw_connect(), f"SELECT count(*) FROM {table}") == [(n + 5,)]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_copy_path_duplicate_is_conflict_and_changes_nothing(dialect, engine, table, raw_connect):
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {table} (id, name) VALUES (7, 'keep')")
    n = engine._adapter.copy_min_rows
    with pytest.raises(errors.ConflictError) as ei:
        with engine.session_manager() as s:
            s.batch_insert(items(table, range(n)))
    assert (ei.value.key, ei.value.value) == ("id", "7")
    assert raw_query(raw, f"SELECT id, name FROM {table}") == [(7, "keep")]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_postgresql_batches_run_with_dollar_placeholders(dialect, engine, raw_connect, monkeypatch):
    # Built statements go to libpq with $n placeholders on a RawCursor; a %
    # in a name (doubled by the builder) must come out as one %.
    made = []
    real = engine._adapter.positional_cursor

    def cursor(raw):
        made.append(real(raw))
        return made[-1]

    monkeypatch.setattr(engine._adapter, "positional_cursor", cursor)
    raw = raw_connect()
    for table in fresh_table(dialect, raw_connect, "pct", 'id INT PRIMARY KEY, "v%s" TEXT'):
        with engine.session_manager() as s:
            assert s.insert_rows(table, [{"id": 1, "v%s": "a%sb"}, {"id": 2, "v%s": "%%"}]) == 2
            assert s.upsert_rows(table, [{"id": 2, "v%s": "100%"}], "id") == 1
            assert s.delete_rows(table, [1], "id") == 1
        assert len(made) == 3
        assert rows(raw, f'SELECT id, "v%s" FROM {table}') == [(2, "100%")]
