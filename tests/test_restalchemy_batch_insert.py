"""``batch_insert`` of RESTAlchemy models through the drop-in stores what stock
RESTAlchemy stores (issue 13): the same models go through a stock engine and
a drop-in engine into two tables, read back with the raw driver and compared
(the JSON text where the column keeps text, ``jsonb::text`` for jsonb, the
instants of timestamptz, UUIDs, enums, NULLs).  On PostgreSQL the drop-in's
batch goes by COPY (a spy on ``copy_insert`` says so) and falls back to
INSERT where COPY must refuse; on MariaDB it goes by the literal kernel,
never ``executemany``.  The models' values are read in bulk
(``fastsess.restalchemy.snapshots``), equal to their snapshots."""

from __future__ import annotations

import datetime
import json
import math
import uuid
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("restalchemy")

from restalchemy.dm import models, properties  # noqa: E402
from restalchemy.dm import types as ra_types  # noqa: E402
from restalchemy.storage.sql import orm  # noqa: E402

import orjson  # noqa: E402

import fastsess  # noqa: E402
from fastsess.drivers import postgresql as pg_driver  # noqa: E402
from fastsess.drivers import mysql as mysql_driver  # noqa: E402
from fastsess.restalchemy import engines as drop_in_engines  # noqa: E402
from fastsess.restalchemy import snapshots  # noqa: E402

from .restalchemy_models import make_models  # noqa: E402

UTC = datetime.timezone.utc
KINDS = ["draft", "active", "retired"]
ROWS = 250  # above copy_min_rows: the drop-in's PostgreSQL batch goes by COPY
# Not UTC: RESTAlchemy writes UTCDateTimeZ as naive text, which PostgreSQL reads
# in the session's time zone; both stacks must read it in the same one.
PG_TIME_ZONE = "Asia/Kolkata"


def model_class(dialect, table):
    """The issue's model: UUID key, int, non-ASCII name, UTCDateTimeZ, bool,
    float, nullable note, an enum and a Dict payload."""
    # PostgreSQL: the payload goes in as a dict (jsonb dumper); MySQL: as the
    # JSON-fields mixin's text, as RESTAlchemy's MySQL models store JSON.
    storable = orm.SQLStorableMixin if dialect == "postgresql" else \
        orm.SQLStorableWithJSONFieldsMixin

    class Record(models.ModelWithUUID, storable):
        __tablename__ = table
        __jsonfields__ = ["payload"]
        num = properties.property(ra_types.Integer(), default=0)
        name = properties.property(ra_types.String(max_length=64), default="")
        created_at = properties.property(ra_types.UTCDateTimeZ(), required=True)
        enabled = properties.property(ra_types.Boolean(), default=True)
        score = properties.property(ra_types.Float(), default=0.0)
        note = properties.property(ra_types.AllowNone(ra_types.String()), default=None)
        kind = properties.property(ra_types.Enum(KINDS), default="draft")
        payload = properties.property(ra_types.Dict(), default=dict)

    return Record


def ddl(dialect, table, json_type):
    if dialect == "postgresql":
        return (f"CREATE TABLE {table} (uuid uuid PRIMARY KEY, num integer NOT NULL, "
                f"name varchar(64) NOT NULL, created_at timestamptz NOT NULL, "
                f"enabled boolean NOT NULL, score double precision NOT NULL, note text, "
                f"kind varchar(16) NOT NULL, payload {json_type} NOT NULL)")
    return (f"CREATE TABLE {table} (uuid CHAR(36) PRIMARY KEY, num INT NOT NULL, "
            f"name VARCHAR(64) NOT NULL, created_at DATETIME(6) NOT NULL, "
            f"enabled BOOLEAN NOT NULL, score DOUBLE NOT NULL, note TEXT NULL, "
            f"kind VARCHAR(16) NOT NULL, payload {json_type} NOT NULL) "
            f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def payload(i, big):
    """A Dict payload: nested objects, non-ASCII and escapes, None, numbers
    near and (``big``) beyond 64 bits, floats of every scale."""
    doc = {
        "title": f"Zürich café ☕ 北京 😀 #{i}",
        "n": i, "neg": -i * 7919, "int64": 2**63 - 1 - i, "uint": 2**64 - 1 - i,
        "ratio": i / 7, "tiny": 1e-7 * (i + 1), "large": 1.5e300 / (i + 1), "whole": float(i),
        "none": None, "flags": {"on": i % 2 == 0, "off": False, "unset": None},
        "list": [1, "ü", None, {"deep": {"x": [True, 2.5, "y\ttab"]}}],
        "escapes": 'quote " backslash \\ newline \n ctrl \x01 \u2028',
        "": "empty key", "order": {"b": 1, "a": 2, "aa": 3},
    }
    if big:  # and text that reads like an escaped NUL: each payload on its own path
        doc["huge"] = 2**70 + i
        doc["huge_neg"] = -(2**80) - i
        doc["not_nul"] = "text \\u0000"
    return doc


def records(n, big):
    """Field values of ``n`` models (the same for every stack)."""
    base = datetime.datetime(2024, 3, 10, 1, 59, 59, 999999, tzinfo=UTC)  # a DST night
    out = []
    for i in range(n):
        out.append({
            "uuid": uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15),
            "num": i,
            "name": f"Имя {i} Zoë",
            "created_at": base + datetime.timedelta(hours=i * 7, microseconds=i),
            "enabled": i % 3 != 0,
            "score": i / 3 - 40.0,
            "note": None if i % 3 else f"note {i} ✓",
            "kind": KINDS[i % len(KINDS)],
            "payload": payload(i, big),
        })
    out[-1]["created_at"] = datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)
    return out


def raw_connect_to(url, dialect):
    """A plain driver connection (autocommit) to the RESTAlchemy test database."""
    u = fastsess.DatabaseURL.parse(url)
    if dialect == "postgresql":
        import psycopg

        return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                               dbname=u.database, autocommit=True)
    import MySQLdb

    return MySQLdb.connect(host=u.host, port=u.port or 3306, user=u.username,
                           passwd=u.password or "", db=u.database, charset="utf8mb4",
                           autocommit=True)


def query(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall() if cur.description else []
    cur.close()
    return [tuple(r) for r in rows]


def stored(conn, dialect, table):
    """Every row as stored, in ``num`` order: PostgreSQL gives typed values
    and the payload column's text (json: as stored; jsonb: its text form)."""
    payload_sql = "payload::text" if dialect == "postgresql" else "payload"
    return query(conn, f"SELECT uuid, num, name, created_at, enabled, score, note, kind, "
                       f"{payload_sql} FROM {table} ORDER BY num")


@pytest.fixture
def engines(ra_engine, ra_url, dialect):
    """(stock engine, drop-in engine) on the RESTAlchemy test database, their
    PostgreSQL sessions in PG_TIME_ZONE (ra_engine configures the factory the
    models ask for their tables)."""
    if dialect == "postgresql":
        config = {"min_size": 1, "max_size": 2,
                  "kwargs": {"options": f"-c TimeZone={PG_TIME_ZONE}"}}
        stock = drop_in_engines.StockPgSQLEngine(ra_url, config=dict(config))
        ours = drop_in_engines.PgSQLEngine(ra_url, config=dict(config))
    else:
        stock = drop_in_engines.StockMySQLEngine(ra_url, config={"pool_size": 1})
        ours = drop_in_engines.MySQLEngine(ra_url, config={"pool_size": 1})
    yield stock, ours
    ours.close()
    if dialect == "postgresql":
        stock.close()
    else:
        stock._pool._remove_connections()


@pytest.fixture
def tables(ra_engine, ra_url, dialect):
    """``make(json_type)``: a (stock, drop-in) pair of fresh tables; dropped after."""
    conn = raw_connect_to(ra_url, dialect)
    made = []

    def make(json_type):
        pair = tuple(f"ra_batch_{who}_{uuid.uuid4().hex[:10]}" for who in ("stock", "ours"))
        for name in pair:
            query(conn, ddl(dialect, name, json_type))
            made.append(name)
        return pair

    yield make
    for name in made:
        query(conn, f"DROP TABLE IF EXISTS {name}")
    conn.close()


@pytest.fixture
def spies(monkeypatch):
    """``watch(engine)``: what the drop-in engine's batches went by (PostgreSQL:
    copy_insert's outcomes; MySQL: the literal kernel's calls and executemany's)."""
    seen = []

    def watch(engine):
        adapter = engine._adapter
        if adapter.dialect == "postgresql":
            real = adapter.copy_insert

            def copy_insert(raw, table, columns, rows):
                try:
                    count = real(raw, table, columns, rows)
                except adapter.CopyRefused as e:
                    seen.append(("refused", str(e)))
                    raise
                seen.append(("copied", count))
                return count

            monkeypatch.setattr(adapter, "copy_insert", copy_insert)
        else:
            real_build = fastsess._impl.build_literal_insert
            real_many = mysql_driver.Cursor.executemany

            def build_literal_insert(*args):
                seen.append(("literal kernel", "fast" if args[6] else "slow"))
                return real_build(*args)

            def executemany(self, *args):
                seen.append(("executemany",))
                return real_many(self, *args)

            monkeypatch.setattr(fastsess._impl, "build_literal_insert", build_literal_insert)
            monkeypatch.setattr(mysql_driver.Cursor, "executemany", executemany)
        return seen

    return watch


def insert_both(engines, dialect, pair, values):
    """The same models into the stock table through the stock engine and into
    the drop-in table through the drop-in engine."""
    for engine, table in zip(engines, pair):
        cls = model_class(dialect, table)
        batch = [cls(**dict(v)) for v in values]
        with engine.session_manager() as session:
            session.batch_insert(batch)


CASES = [  # (dialect, payload column type, payload with ints beyond 64 bits)
    pytest.param("postgresql", "jsonb", False, id="postgresql-jsonb"),
    pytest.param("postgresql", "jsonb", True, id="postgresql-jsonb-big-ints"),
    pytest.param("postgresql", "json", True, id="postgresql-json"),
    # (RESTAlchemy's JSON-fields mixin, which MySQL models use, refuses ints
    # beyond 64 bits itself: test_big_ints_in_a_json_field_fail_as_stock)
    pytest.param("mysql", "LONGTEXT", False, id="mysql-longtext"),
    pytest.param("mysql", "JSON", False, id="mysql-json"),
]


@pytest.mark.parametrize("dialect, json_type, big", CASES, indirect=["dialect"])
def test_drop_in_stores_what_stock_stores(engines, tables, spies, ra_url, dialect, json_type, big,
                                          monkeypatch):
    pair = tables(json_type)
    seen = spies(engines[1])
    streamed = []  # dicts orjson wrote from inside COPY's row formatting
    monkeypatch.setattr(pg_driver._OrjsonDumper, "dump",
                        staticmethod(lambda obj: streamed.append(1) or orjson.dumps(obj)))
    values = records(ROWS, big)
    insert_both(engines, dialect, pair, values)

    conn = raw_connect_to(ra_url, dialect)
    try:
        stock, ours = (stored(conn, dialect, table) for table in pair)
    finally:
        conn.close()
    assert len(stock) == ROWS
    assert ours == stock
    # ... and what was stored is the models' data, not something equally wrong
    first = ours[0]
    assert str(first[0]) == str(values[0]["uuid"]) and first[2] == values[0]["name"]
    loaded, sent = json.loads(first[8]), values[0]["payload"]
    for key in ("title", "int64", "uint", "list", "flags", "escapes", "", "order"):
        assert loaded[key] == sent[key], key
    if dialect == "postgresql":
        # RESTAlchemy writes the UTC wall time without its zone: PostgreSQL reads
        # it in the session's zone, on both stacks
        zone = zoneinfo.ZoneInfo(PG_TIME_ZONE)
        assert [row[3] for row in ours] == [v["created_at"].replace(tzinfo=zone) for v in values]
        if json_type == "jsonb":
            assert seen == [("copied", ROWS)]
            # plain payloads: written by orjson as the rows go; with ints beyond
            # 64 bits: each payload's text made before COPY (json.dumps' for those)
            assert len(streamed) == (0 if big else ROWS)
        else:
            # INSERT sends jsonb, which a json column keeps as jsonb's text: COPY
            # cannot write that, so it refuses and the INSERT path stores it
            assert len(seen) == 1 and seen[0][0] == "refused" and "column payload" in seen[0][1]
            assert first[8].startswith('{"": "empty key", "n": 0, ')  # jsonb's key order
    else:
        assert seen and set(seen) == {("literal kernel", "fast")}


def test_payloads_copy_refuses_fall_back_as_stock(engines, tables, spies, ra_url, dialect):
    # NaN: stock RESTAlchemy's json.dumps writes it, which jsonb refuses (on
    # MySQL its JSON-fields mixin writes null): COPY refuses it up front, and
    # the drop-in's INSERT path fails as stock does, or stores what stock does.
    pair = tables("jsonb" if dialect == "postgresql" else "LONGTEXT")
    seen = spies(engines[1])
    values = records(ROWS, big=False)
    values[ROWS // 2]["payload"]["nan"] = [1.0, math.nan]
    failures = []
    for engine, table in zip(engines, pair):
        cls = model_class(dialect, table)
        batch = [cls(**dict(v)) for v in values]
        try:
            with engine.session_manager() as session:
                session.batch_insert(batch)
        except Exception as e:  # noqa: BLE001 - compared below
            failures.append(e)
    conn = raw_connect_to(ra_url, dialect)
    try:
        stock, ours = (stored(conn, dialect, table) for table in pair)
    finally:
        conn.close()
    assert ours == stock
    if dialect == "postgresql":
        assert len(failures) == 2 and stock == []
        assert isinstance(failures[1], type(failures[0])), failures
        assert seen[0][0] == "refused" and "column payload" in seen[0][1]
    else:
        assert failures == [] and len(stock) == ROWS
        assert set(seen) == {("literal kernel", "fast")}


@pytest.mark.parametrize("dialect", ["mysql"], indirect=True)
def test_big_ints_in_a_json_field_fail_as_stock(engines, tables, ra_url, dialect):
    pair = tables("LONGTEXT")
    values = records(ROWS, big=True)
    failures = []
    for engine, table in zip(engines, pair):
        cls = model_class(dialect, table)
        with pytest.raises(TypeError) as caught:
            with engine.session_manager() as session:
                session.batch_insert([cls(**dict(v)) for v in values])
        failures.append(caught.value)
    assert str(failures[0]) == str(failures[1])  # orjson's, from the model's snapshot


def test_a_model_with_its_own_snapshot_is_asked_for_it(engines, tables, ra_url, dialect):
    pair = tables("jsonb" if dialect == "postgresql" else "LONGTEXT")
    values = records(ROWS, big=False)
    for engine, table in zip(engines, pair):

        class Shouting(model_class(dialect, table)):
            def get_storable_snapshot(self, properties=None):
                snapshot = super().get_storable_snapshot(properties)
                snapshot["name"] = snapshot["name"].upper()
                return snapshot

        with engine.session_manager() as session:
            session.batch_insert([Shouting(**dict(v)) for v in values])
    conn = raw_connect_to(ra_url, dialect)
    try:
        stock, ours = (stored(conn, dialect, table) for table in pair)
    finally:
        conn.close()
    assert ours == stock and ours[0][2] == values[0]["name"].upper()


def test_storable_rows_equal_the_snapshots(ra_engine, dialect):
    ns = make_models(dialect)
    parent = ns.Parent(name="p")
    created = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    items = [ns.Item(name=f"i{i}", count=i, price=i / 4, created=created,
                     data={"k": [i, None, "ü"], "m": {1: "int key"}} if i % 2 else {},
                     parent=parent if i % 3 else None) for i in range(20)]
    items[3].count = 99  # a property object built before the batch reads the values
    list(items[5].properties.items())  # all of them built

    def as_dicts(columns, rows):
        return [dict(zip(columns, row)) for row in rows]

    table, columns, rows = snapshots.storable_rows(items)
    assert table == ns.Item.__tablename__
    assert as_dicts(columns, rows) == [item.get_storable_snapshot() for item in items]
    assert len(set(columns)) == len(columns) == len(items[0].get_storable_snapshot())

    records_ = [ns.Pair(a=i, b=str(i), v=i * 2) for i in range(5)]
    _, columns, rows = snapshots.storable_rows(records_)
    assert as_dicts(columns, rows) == [r.get_storable_snapshot() for r in records_]

    with pytest.raises(TypeError, match="all models must be of one type"):
        snapshots.storable_rows([items[0], parent])


def test_storable_rows_takes_the_snapshots_when_it_cannot_read_them(ra_engine, dialect,
                                                                     monkeypatch):
    ns = make_models(dialect)
    created = datetime.datetime(2024, 5, 6, tzinfo=UTC)
    fallbacks = []
    real_rows = fastsess.batch.models_as_rows

    def models_as_rows(models):
        fallbacks.append(len(models))
        return real_rows(models)

    monkeypatch.setattr(fastsess.batch, "models_as_rows", models_as_rows)
    items = [ns.Item(name=f"i{i}", created=created, data={"x": i}) for i in range(3)]
    snapshots.storable_rows(items)
    assert fallbacks == []
    # a class with its own snapshot method: every model is asked for its snapshot
    monkeypatch.setattr(ns.Item, "get_storable_snapshot",
                        lambda self, properties=None: {"name": self.name.upper()})
    _, columns, rows = snapshots.storable_rows(items)
    assert fallbacks == [3] and (columns, rows) == (["name"], [["I0"], ["I1"], ["I2"]])


_keys = st.text(max_size=5)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10)


@given(docs=st.lists(st.dictionaries(_keys | st.integers() | st.booleans(), _json_values,
                                     max_size=4), max_size=5))
@settings(max_examples=200)
def test_json_fields_text_is_the_mixins(docs):
    # The drop-in writes a JSON field's text without OPT_NON_STR_KEYS where
    # every key is a str: the same text the JSON-fields mixin writes with it.
    def outcome(f, *args):
        try:
            return f(*args)
        except TypeError as e:  # what the mixin refuses, refused alike
            return type(e), str(e)

    assert outcome(snapshots._json_fields, iter(docs)) == \
        outcome(lambda: list(map(snapshots._json_field, docs)))


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_copy_takes_restalchemys_dict_dumper_while_it_uses_json_dumps(ra_engine, dialect,
                                                                       monkeypatch):
    from psycopg.types import json as psycopg_json
    from restalchemy.storage.sql import engines as ra_engines

    adapter = ra_engine._adapter
    assert adapter.copy_takes_json(ra_engines.PgDictJsonbDumper)
    assert adapter.copy_takes_json(pg_driver._JsonbTextDumper)
    assert not adapter.copy_takes_json(psycopg_json.JsonbDumper)
    # psycopg.types.json.set_json_dumps(f) (no context) changes what RESTAlchemy's
    # dumper writes: COPY cannot vouch for it then
    monkeypatch.setattr(psycopg_json._JsonDumper, "_dumps",
                        lambda obj: json.dumps(obj, sort_keys=True))
    assert not adapter.copy_takes_json(ra_engines.PgDictJsonbDumper)
    assert adapter.copy_takes_json(pg_driver._JsonbTextDumper)  # fastsess's own: its text
