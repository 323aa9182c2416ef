"""What drop-in sessions keep of the stock drivers' behaviour: errors, MySQL
placeholders and row counts, PostgreSQL connection set-up, value types."""

from __future__ import annotations

import datetime
import pickle
import re
import threading
import uuid

import pytest

pytest.importorskip("restalchemy")

import psycopg  # noqa: E402
from mysql.connector import errors as connector_errors  # noqa: E402
from restalchemy.dm import filters as dm_filters  # noqa: E402
from restalchemy.storage import exceptions as ra_exc  # noqa: E402
from restalchemy.storage.sql import engines as ra_engines  # noqa: E402

from fastsess import errors  # noqa: E402
from fastsess.restalchemy import placeholders  # noqa: E402

from .restalchemy_models import SMALL_POOL  # noqa: E402


@pytest.fixture
def table(ra_engine):
    """A fresh ``(id int primary key, name varchar(50))`` table."""
    name = f"drv_{uuid.uuid4().hex[:12]}"
    with ra_engine.session_manager() as s:
        s.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, name VARCHAR(50))")
    yield name
    with ra_engine.session_manager() as s:
        s.execute(f"DROP TABLE IF EXISTS {name}")


def test_unique_violation_is_fastsess_and_stock_driver_error(ra_engine, table, dialect):
    with ra_engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "a"))
    with pytest.raises(errors.ConflictError) as info:
        with ra_engine.session_manager() as s:
            s.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "b"))
    err = info.value
    assert err.value == "1" and err.retryable is False
    if dialect == "postgresql":
        assert isinstance(err, psycopg.errors.UniqueViolation)
        assert err.key == "id" and err.sqlstate == "23505"
        assert err.diag.message_detail == "Key (id)=(1) already exists."
        assert "DETAIL:  Key (id)=(1) already exists." in str(err)
    else:
        assert isinstance(err, connector_errors.IntegrityError)
        assert (err.errno, err.sqlstate) == (1062, "23000")
        assert err.msg == "Duplicate entry '1' for key 'PRIMARY'"
        assert str(err) == "1062 (23000): Duplicate entry '1' for key 'PRIMARY'"
    assert isinstance(err.orig, (psycopg.Error, Exception)) and err.__cause__ is err.orig
    # Picklable, class and all.
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and str(again) == str(err) and again.value == "1"


def test_other_errors_keep_both_classes(ra_engine, dialect):
    with pytest.raises(errors.ProgrammingError) as info:
        with ra_engine.session_manager() as s:
            s.execute("SELECT * FROM no_such_table_here")
    if dialect == "postgresql":
        assert isinstance(info.value, psycopg.errors.UndefinedTable)
    else:
        assert isinstance(info.value, connector_errors.ProgrammingError)
        assert (info.value.errno, info.value.sqlstate) == (1146, "42S02")
    if dialect == "mysql":
        # mysqlclient's own parameter check: mysql-connector's class too.
        with pytest.raises(errors.ProgrammingError) as info:
            with ra_engine.session_manager() as s:
                s.execute("SELECT %s, %s", (1,))
        assert isinstance(info.value, connector_errors.ProgrammingError)


def test_model_write_errors_become_restalchemy_exceptions(ra_models):
    Item = ra_models.Item
    first = Item(name="a")
    first.insert()
    second = Item(name="b")
    second.insert()
    second.name = "a"
    with pytest.raises(ra_exc.ConflictRecords) as info:
        second.update()
    assert info.value.value == "a"


def _deadlock(ra_engine, table):
    """Two sessions lock two rows in opposite orders; returns the error the
    server's victim got."""
    with ra_engine.session_manager() as s:
        s.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'a'), (2, 'b')")
    barrier = threading.Barrier(2, timeout=20)
    caught = []

    def worker(first, second):
        try:
            with ra_engine.session_manager() as s:
                s.execute(f"UPDATE {table} SET name = 'x' WHERE id = %s", (first,))
                barrier.wait()
                s.execute(f"UPDATE {table} SET name = 'y' WHERE id = %s", (second,))
        except Exception as e:  # noqa: BLE001 - the test inspects it
            caught.append(e)

    threads = [threading.Thread(target=worker, args=(1, 2)),
               threading.Thread(target=worker, args=(2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(caught) == 1, caught
    return caught[0]


def test_deadlock(ra_engine, table, dialect):
    err = _deadlock(ra_engine, table)
    assert isinstance(err, errors.DeadlockDetected) and err.retryable
    if dialect == "postgresql":
        # psycopg's class: RESTAlchemy's dialect turns it into its DeadLock.
        assert isinstance(err, psycopg.errors.DeadlockDetected)
    else:
        # RESTAlchemy's stock MySQL session raises its storage DeadLock itself.
        assert isinstance(err, ra_exc.DeadLock)
        assert str(err).startswith("Deadlock found when trying to get lock. Original message: ")
        assert err.errno == 1213


def test_deadlock_through_a_model_is_restalchemy_deadlock(ra_models, ra_engine):
    Item = ra_models.Item
    a, b = Item(name="a"), Item(name="b")
    a.insert()
    b.insert()
    barrier = threading.Barrier(2, timeout=20)
    caught = []

    def worker(first, second):
        try:
            with ra_engine.session_manager() as s:
                first.count += 1
                first.update(session=s)
                barrier.wait()
                second.count += 1
                second.update(session=s)
        except Exception as e:  # noqa: BLE001
            caught.append(e)

    a2 = Item.objects.get_one(filters={"name": dm_filters.EQ("a")})
    b2 = Item.objects.get_one(filters={"name": dm_filters.EQ("b")})
    threads = [threading.Thread(target=worker, args=(a, b)),
               threading.Thread(target=worker, args=(b2, a2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(caught) == 1 and isinstance(caught[0], ra_exc.DeadLock), caught


def _connector_render(statement, params):
    """What mysql-connector sends: each "%s" (or "%(name)s") replaced, every
    other "%" kept, nothing replaced for empty parameters."""
    if not params:
        return statement
    if isinstance(params, dict):
        for key, value in params.items():
            statement = statement.replace(f"%({key})s", f"'{value}'")
        return statement
    values = iter(params)
    return re.sub("%s", lambda m: f"'{next(values)}'", statement)


def _mysqlclient_render(statement, params):
    """What mysqlclient sends: Python's % formatting, none for None."""
    if params is None:
        return statement
    if isinstance(params, dict):
        return statement % {k: f"'{v}'" for k, v in params.items()}
    return statement % tuple(f"'{v}'" for v in params)


@pytest.mark.parametrize("statement, params", [
    ("SELECT '%%' AS a", None),
    ("SELECT '%%' AS a", ()),
    ("SELECT '%' AS a", ()),
    ("SELECT '%' AS a", []),
    ("SELECT '%' AS a", {}),
    ("SELECT %s AS a", ("x",)),
    ("SELECT CONCAT('%', %s, '%%') AS a", ("x",)),
    ("SELECT CONCAT('%', %s, '%%s') AS a", ("x", "y")),
    ("SELECT DATE_FORMAT(NOW(), '%Y-%m') AS d, %s AS b", ("x",)),
    ("SELECT CONCAT('%', %(v)s, '%%', %(w)s) AS a", {"v": "y", "w": "z"}),
])
def test_mysql_percent_signs_read_as_mysql_connector_reads_them(statement, params):
    converted = placeholders.for_mysqlclient(statement, params)
    assert _mysqlclient_render(*converted) == _connector_render(statement, params)


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_mysql_statements_on_the_server(ra_engine, table, dialect):
    with ra_engine.session_manager() as s:
        assert s.execute("SELECT '%%' AS a", ()).fetchall() == [{"a": "%%"}]
        assert s.execute("SELECT '%' AS a", ()).fetchall() == [{"a": "%"}]
        assert s.execute("SELECT CONCAT('%', %s) AS a", ("x",)).fetchall() == [{"a": "%x"}]
        s.execute_many(f"INSERT INTO {table} (id, name) VALUES (%s, CONCAT(%s, '%'))",
                       [(1, "a"), (2, "b")])
        rows = s.execute(f"SELECT name FROM {table} WHERE id IN %s ORDER BY id",
                         ([1, 2, 3],)).fetchall()
        assert rows == [{"name": "a%"}, {"name": "b%"}] and isinstance(rows, list)
        assert s.execute(f"SELECT id FROM {table} WHERE id IN %s", ([None],)).fetchall() == []
        # Matched rows, as mysql-connector counts them (RESTAlchemy reads it).
        assert s.execute(f"UPDATE {table} SET name = name WHERE id = %s", (1,)).rowcount == 1


def test_rows_are_fresh_dicts_with_restalchemy_value_types(ra_engine, dialect):
    name = f"vals_{uuid.uuid4().hex[:12]}"
    if dialect == "postgresql":
        ddl = (f"CREATE TABLE {name} (u uuid, t timestamp, tz timestamptz, j jsonb, s text, "
               f"i int, f double precision)")
    else:
        ddl = (f"CREATE TABLE {name} (u CHAR(36), t DATETIME(6), tz DATETIME(6), j LONGTEXT, "
               f"s TEXT, i INT, f DOUBLE)")
    u = uuid.uuid4()
    t = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)
    with ra_engine.session_manager() as s:
        s.execute(ddl)
        try:
            s.execute(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s, %s, %s)",
                      (str(u), t, t, {"a": [1, 2]} if dialect == "postgresql" else '{"a": [1, 2]}',
                       "text", 7, 0.5))
            rows = s.execute(f"SELECT * FROM {name}").fetchall()
            again = s.execute(f"SELECT * FROM {name}").fetchall()
        finally:
            s.execute(f"DROP TABLE {name}")
    row = rows[0]
    assert row is not again[0] and row == again[0]
    row["extra"] = 1  # mutable
    assert row["t"] == t and row["t"].tzinfo is None  # naive
    assert (row["s"], row["i"], row["f"]) == ("text", 7, 0.5)
    if dialect == "postgresql":
        assert row["u"] == u and row["j"] == {"a": [1, 2]}
    else:
        assert row["u"] == str(u) and row["j"] == '{"a": [1, 2]}'  # JSON text


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_postgresql_connection_setup(drop_in, ra_url, dialect):
    configured = []
    engine = ra_engines.PgSQLEngine(
        ra_url, config={"min_size": 1, "max_size": 2, "open": True,
                        "kwargs": {"application_name": "fsra-test"},
                        "configure": configured.append, "num_workers": 2})
    try:
        assert len(configured) == 1  # min_size opened at once, as psycopg_pool does
        with engine.session_manager() as s:
            assert s.execute("SHOW application_name").fetchone() == \
                {"application_name": "fsra-test"}
            # dicts are dumped as JSONB, as RESTAlchemy's stock engine does
            assert s.execute("SELECT pg_typeof(%s)::text AS t", ({"a": 1},)).fetchone() == \
                {"t": "jsonb"}
    finally:
        engine.close()
    with pytest.raises(TypeError, match="close_returns"):
        ra_engines.PgSQLEngine(ra_url, config={"close_returns": True})


def test_readonly_engines(drop_in, ra_url, dialect, ra_engine):
    name = f"ro_{uuid.uuid4().hex[:12]}"
    with ra_engine.session_manager() as s:
        s.execute(f"CREATE TABLE {name} (id INT)")
    cls = ra_engines.PgSQLEngine if dialect == "postgresql" else ra_engines.MySQLEngine
    engine = cls(ra_url, config=dict(SMALL_POOL[dialect]), readonly=True)
    try:
        assert engine.readonly
        with engine.session_manager() as s:
            assert s.execute(f"SELECT count(*) AS n FROM {name}").fetchone() == {"n": 0}
        with pytest.raises(errors.ReadOnlyViolation) as info:
            with engine.session_manager() as s:
                s.execute(f"INSERT INTO {name} VALUES (1)")
        assert re.search("read.only", str(info.value), re.I)
    finally:
        engine.close()
        with ra_engine.session_manager() as s:
            s.execute(f"DROP TABLE {name}")


def test_connection_overrides_are_honoured(ra_engine, dialect):
    # RESTAlchemy's functional tests switch off prepared statements by
    # wrapping get_connection on the instance; sessions must go through it.
    handed = []
    get_connection = ra_engine.get_connection
    close_connection = ra_engine.close_connection

    def get_connection_without_prepare():
        conn = get_connection()
        if dialect == "postgresql":
            conn.prepare_threshold = None
        handed.append(conn)
        return conn

    returned = []

    def close(conn):
        returned.append(conn)
        close_connection(conn)

    ra_engine.get_connection = get_connection_without_prepare
    ra_engine.close_connection = close
    try:
        for _ in range(8):
            with ra_engine.session_manager() as s:
                assert s.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
                if dialect == "postgresql":
                    assert s.connection().prepare_threshold is None
        assert len(handed) == 8 and returned == handed
        if dialect == "postgresql":
            with ra_engine.session_manager() as s:
                n = s.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
            assert n == {"n": 0}
    finally:
        del ra_engine.get_connection, ra_engine.close_connection
    assert ra_engine.pool_stats()["in_use"] == 0


def test_borrowed_connection_gets_its_defaults_back(ra_engine, dialect):
    raw = ra_engine.get_connection()
    if dialect == "postgresql":
        raw.autocommit = True
    else:
        raw.autocommit(True)
    ra_engine.close_connection(raw)
    with ra_engine.session_manager() as s:
        conn = s.connection()
        assert conn is raw  # the same connection, back from the pool
        assert (conn.autocommit if dialect == "postgresql" else conn.get_autocommit()) is False


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_mysql_config_translation(drop_in, ra_url, dialect):
    engine = ra_engines.MySQLEngine(ra_url, config={
        "pool_size": 2, "pool_name": "ignored", "connection_timeout": 5,
        "charset": "utf8mb4"})
    try:
        assert engine.pool_stats()["max_size"] == 2
        assert engine.pool_stats()["size"] == 0  # nothing opened until needed
        with engine.session_manager() as s:
            assert s.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        engine._pool._remove_connections()  # mysql-connector's name for closing
        assert engine.closed
    finally:
        engine.close()
    with pytest.raises(TypeError, match="pool_wat"):
        ra_engines.MySQLEngine(ra_url, config={"pool_wat": 1})


def test_secrets_stay_out_of_reprs_and_errors(drop_in, dialect):
    secret = "s3cr3t-pa55"
    if dialect == "postgresql":
        url = f"postgresql://nobody_{uuid.uuid4().hex[:6]}:{secret}@127.0.0.1:5432/nowhere"
        engine = ra_engines.PgSQLEngine(url, config={"min_size": 0, "max_size": 1, "timeout": 5})
    else:
        url = f"mysql://nobody_{uuid.uuid4().hex[:6]}:{secret}@127.0.0.1:3306/nowhere"
        engine = ra_engines.MySQLEngine(url, config={"pool_size": 1, "timeout": 5})
    try:
        assert secret not in repr(engine) and secret not in str(engine)
        with pytest.raises(errors.ConnectionFailed) as info:
            with engine.session_manager() as s:
                s.execute("SELECT 1")
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert "***" in str(info.value)
    finally:
        engine.close()
