"""Table and column names in RESTAlchemy's ORM statements on drop-in engines.

Stock RESTAlchemy splices names into its SQL text; a name carrying the
dialect's quote character breaks out of the quotes (the control test below
shows the payloads do it on stock RESTAlchemy).  With fastsess installed,
every statement the ORM builds refuses such a name with a ``ValueError``
naming it before any SQL is sent, and ordinary names give the very
statements stock RESTAlchemy gives.
"""

from __future__ import annotations

import datetime
import types as pytypes
import uuid

import pytest

import fastsess

pytest.importorskip("restalchemy")

from restalchemy.dm import filters as dm_filters  # noqa: E402
from restalchemy.dm import models, properties  # noqa: E402
from restalchemy.dm import types as ra_types  # noqa: E402
from restalchemy.storage.sql import engines as ra_engines  # noqa: E402
from restalchemy.storage.sql import migrations, orm  # noqa: E402

import fastsess.restalchemy as fs_ra  # noqa: E402
from fastsess.restalchemy import engines as drop_in_engines  # noqa: E402
from fastsess.restalchemy import identifiers  # noqa: E402

from .restalchemy_models import make_models  # noqa: E402

QUOTE = {"postgresql": '"', "mysql": "`"}
UTC = datetime.timezone.utc


# -- tables the payloads aim at ----------------------------------------------


@pytest.fixture
def victim(ra_url, dialect):
    """A table the payloads try to write into, with two rows in it.

    Its name is 63 characters long, so a model table named after it plus a
    suffix is over-long: PostgreSQL would cut that name down to this one.
    """
    name = f"rel_victim_{uuid.uuid4().hex}".ljust(63, "v")
    uuid_type = "uuid" if dialect == "postgresql" else "CHAR(36)"
    engine = fastsess.create_engine(ra_url, max_size=1, timeout=10)
    with engine.session_manager() as s:
        s.execute(f"CREATE TABLE {name} (id INT NULL, uuid {uuid_type} NULL, "
                  f"name VARCHAR(64) NULL)")
        s.execute(f"INSERT INTO {name} (id, uuid, name) VALUES (%s, %s, %s), (%s, %s, %s)",
                  (1, str(uuid.uuid4()), "żółw 🐢", 2, str(uuid.uuid4()), None))
    ns = pytypes.SimpleNamespace(name=name, rows=lambda: _rows(engine, name))
    ns.before = ns.rows()
    assert len(ns.before) == 2
    yield ns
    with engine.session_manager() as s:
        s.execute(f"DROP TABLE IF EXISTS {name}")
    engine.close()


def _rows(engine, table):
    """Every row of ``table`` (``None`` when the table is gone), in order."""
    with engine.session_manager() as s:
        exists = s.execute(
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = %s "
            "AND table_schema = " + ("current_schema()" if engine.dialect_name == "postgresql"
                                     else "DATABASE()"), (table,)).fetchone()["n"]
        if not exists:
            return None
        return [tuple(map(str, r.values()))
                for r in s.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()]


def _home_model(dialect, table, extra=None, pk="uuid"):
    """A model of the ``home`` table; ``extra`` adds properties, ``pk`` names the key."""
    storable = orm.SQLStorableMixin if dialect == "postgresql" else \
        orm.SQLStorableWithJSONFieldsMixin
    attrs = {
        "__tablename__": table,
        "__jsonfields__": ["data"],
        pk: properties.property(ra_types.UUID(), id_property=True, read_only=True,
                                default=uuid.uuid4),
        "name": properties.property(ra_types.String(max_length=64), required=True),
        "created": properties.property(ra_types.UTCDateTimeZ(), required=True),
        "data": properties.property(ra_types.Dict(), default=dict),
        "note": properties.property(ra_types.AllowNone(ra_types.String()), default=None),
    }
    attrs.update(extra or {})
    return type("Home", (models.ModelWithID, storable), attrs)


@pytest.fixture
def home(ra_engine, dialect):
    """A normal model on its own table, with two rows; dropped after."""
    table = f"rel_home_{uuid.uuid4().hex[:12]}"
    uuid_type, json_type = ("uuid", "jsonb") if dialect == "postgresql" else \
        ("CHAR(36)", "LONGTEXT")
    ts_type = "timestamp" if dialect == "postgresql" else "DATETIME(6)"
    with ra_engine.session_manager() as s:
        s.execute(f"CREATE TABLE {table} (uuid {uuid_type} PRIMARY KEY, name VARCHAR(64) "
                  f"NOT NULL, created {ts_type} NOT NULL, data {json_type} NOT NULL, "
                  f"note TEXT NULL)")
    Home = _home_model(dialect, table)
    Home(name="Zoë", created=datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
         data={"tags": ["ünï", "📦"], "n": None, "depth": {"x": 1.5}}, note="naïve").insert()
    Home(name="Ωmega", created=datetime.datetime(1999, 12, 31, 0, 0, tzinfo=UTC)).insert()
    ns = pytypes.SimpleNamespace(table=table, Home=Home,
                                 rows=lambda: _rows(ra_engine, table))
    ns.before = ns.rows()
    yield ns
    with ra_engine.session_manager() as s:
        s.execute(f"DROP TABLE IF EXISTS {table}")


def _still_usable(engine, home):
    """A normal insert and read on ``engine`` work, and nothing is left checked out."""
    made = home.Home(name="после", created=datetime.datetime.now(UTC), data={"ok": True},
                     note=None)
    made.insert()
    got = home.Home.objects.get_one(filters={"uuid": dm_filters.EQ(made.uuid)})
    assert (got.name, got.created, got.data, got.note) == \
        ("после", made.created, {"ok": True}, None)
    got.delete()
    assert home.rows() == home.before
    assert engine.pool_stats()["in_use"] == 0


# -- what each statement kind does with a model ---------------------------------


def _run(kind, model, engine, name=None):
    """Run one statement kind of RESTAlchemy's ORM on ``model``."""
    EQ = dm_filters.EQ
    if kind == "insert":
        model(name="Zoë").insert()
    elif kind == "update":
        model(name="Zoë").update(force=True)
    elif kind == "delete":
        model(name="Zoë").delete()
    elif kind == "get_all":
        model.objects.get_all(filters={"name": dm_filters.In(["Zoë", "x"])},
                              order_by={"name": "desc"}, limit=5)
    elif kind == "get_one":
        model.objects.get_one(filters={"uuid": EQ(uuid.uuid4())})
    elif kind == "cached_get_all":
        with engine.session_manager() as s:
            model.objects.get_all(filters={"name": EQ("Zoë")}, session=s, cache=True)
    elif kind == "count":
        model.objects.count(filters={"name": dm_filters.Like("Z%")})
    elif kind == "query":
        model.objects.query(where_conditions="name = %s", where_values=("Zoë",),
                            order_by={"name": "asc"}, limit=3)
    elif kind == "batch_insert":
        with engine.session_manager() as s:
            s.batch_insert([model(name="Zoë"), model(name=None)])
    elif kind == "batch_delete":
        with engine.session_manager() as s:
            s.batch_delete([model(name="Zoë")])
    elif kind == "drop_table":
        # RESTAlchemy's migration helper, table name through engine.escape().
        with engine.session_manager() as s:
            migrations.AbstractMigrationStep._delete_table_if_exists(s, name)
    else:
        raise AssertionError(kind)


def _table_model(table):
    class Hostile(models.ModelWithUUID, orm.SQLStorableMixin):
        __tablename__ = table
        name = properties.property(ra_types.AllowNone(ra_types.String(max_length=64)))
    return Hostile


def _quote_payload(dialect, kind, victim):
    """A table name that breaks out of the quotes to write into ``victim``.

    On PostgreSQL every ``%s`` RESTAlchemy passes must still be used, hence
    the ``$n`` comparisons.
    """
    if dialect == "mysql":
        return {"insert": f"{victim}` (id) VALUES (42) -- ",
                "update": f"{victim}` SET id = 42 WHERE id = 1 -- ",
                "drop_table": f"rel_absent`, `{victim}",
                }.get(kind, f"{victim}` -- ")
    return {"insert": f'{victim}" (id) SELECT 42 WHERE $1::text <> $2::text -- ',
            "update": f'{victim}" SET id = 42 WHERE id = 1 AND $1::text <> $2::text -- ',
            "delete": f'{victim}" WHERE $1::text IS NOT NULL -- ',
            "drop_table": f'rel_absent", "{victim}',
            "batch_insert": f'{victim}" (id) SELECT 42 WHERE $1::text <> $2::text -- ',
            }.get(kind, f'{victim}" -- ')


def _table_name(payload, dialect, kind, victim):
    if payload == "quote":
        return _quote_payload(dialect, kind, victim)
    if payload == "nul":
        return f"{victim}\x00"
    return f"{victim}_x"  # over-long: PostgreSQL would cut it to the victim's name


TABLE_KINDS = ["insert", "update", "delete", "get_all", "get_one", "cached_get_all", "count",
               "query", "batch_insert", "batch_delete", "drop_table"]


@pytest.mark.parametrize("payload", ["quote", "nul", "overlong"])
@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_hostile_table_name_is_refused(ra_engine, dialect, victim, home, kind, payload):
    name = _table_name(payload, dialect, kind, victim.name)
    with pytest.raises(ValueError) as info:
        _run(kind, _table_model(name), ra_engine, name)
    assert repr(name) in str(info.value)
    if kind not in ("batch_insert", "batch_delete"):  # fastsess's own batch builder
        assert isinstance(info.value, identifiers.InvalidIdentifier)
        assert info.value.identifier == name
    rows = victim.rows()
    assert rows is not None and len(rows) == len(victim.before) == 2
    assert rows == victim.before
    _still_usable(ra_engine, home)


# -- hostile column names -------------------------------------------------------


def _column_name(payload, dialect):
    q = QUOTE[dialect]
    if payload == "quote":
        # As a key: WHERE "uuid" = "uuid" OR "uuid" = %s matches every row.
        return f"uuid{q} = {q}uuid{q} OR {q}uuid"
    if payload == "nul":
        return "uu\x00id"
    # Over the limit in bytes (PostgreSQL: 63) or in characters (MySQL: 64).
    return "ż" * (32 if dialect == "postgresql" else 65)


def _run_column(kind, Hostile, Home, engine, bad):
    known = Home.objects.get_all(order_by={"name": "asc"})[0]
    if kind == "insert":
        Hostile(name="x", created=datetime.datetime.now(UTC)).insert()
    elif kind == "update":
        obj = Hostile(name="renamed", created=known.created, data={}, note=None,
                      **{bad: known.uuid})
        obj.update(force=True)
    elif kind == "delete":
        Hostile(name="x", created=known.created, **{bad: known.uuid}).delete()
    elif kind == "get_all":
        Hostile.objects.get_all(filters={"name": dm_filters.EQ(known.name)})
    elif kind == "get_all_filter_order":
        Hostile.objects.get_all(filters={bad: dm_filters.EQ(known.uuid)}, order_by={bad: "asc"})
    elif kind == "cached_get_all":
        with engine.session_manager() as s:
            Hostile.objects.get_all(session=s, cache=True)
    elif kind == "count":
        Hostile.objects.count(filters={bad: dm_filters.EQ(known.uuid)})
    elif kind == "query":
        Hostile.objects.query(where_conditions="name = %s", where_values=(known.name,))
    elif kind == "query_order_by":
        # A normal model: only the ORDER BY name is hostile.
        Home.objects.query(where_conditions="name <> %s", where_values=("",),
                           order_by={bad: "asc"})
    else:
        raise AssertionError(kind)


COLUMN_KINDS = ["insert", "update", "delete", "get_all", "get_all_filter_order",
                "cached_get_all", "count", "query", "query_order_by"]


@pytest.mark.parametrize("payload", ["quote", "nul", "overlong"])
@pytest.mark.parametrize("kind", COLUMN_KINDS)
def test_hostile_column_name_is_refused(ra_engine, dialect, victim, home, kind, payload):
    bad = _column_name(payload, dialect)
    # The real table's key is "uuid"; the model calls it by the hostile name.
    Hostile = _home_model(dialect, home.table, pk=bad)
    with pytest.raises(identifiers.InvalidIdentifier) as info:
        _run_column(kind, Hostile, home.Home, ra_engine, bad)
    assert isinstance(info.value, ValueError)
    assert info.value.identifier == bad and repr(bad) in str(info.value)
    assert home.rows() == home.before and len(home.before) == 2
    assert victim.rows() == victim.before
    _still_usable(ra_engine, home)


def test_escape_refuses_what_quote_identifier_refuses(ra_engine, dialect):
    q = QUOTE[dialect]
    limit = 63 if dialect == "postgresql" else 64
    for bad in ["", f"a{q}b", "a\x00b", "x" * (limit + 1)]:
        with pytest.raises(identifiers.InvalidIdentifier) as info:
            ra_engine.escape(bad)
        assert info.value.identifier == bad
        with pytest.raises(ValueError) as builder:
            fastsess._impl.quote_identifier(dialect, bad)
        assert info.value.caused.args == builder.value.args
    assert ra_engine.escape("x" * limit) == q + "x" * limit + q


# -- ordinary names: the statements stock RESTAlchemy writes ---------------------


@pytest.fixture
def stock_engine(ra_engine, ra_url, dialect):
    """A stock RESTAlchemy engine on the same database (ra_engine configures the
    factory the models ask for their tables)."""
    if dialect == "postgresql":
        engine = drop_in_engines.StockPgSQLEngine(ra_url, config={"min_size": 1, "max_size": 1})
        yield engine
        engine.close()
    else:
        engine = drop_in_engines.StockMySQLEngine(ra_url, config={"pool_size": 1})
        yield engine
        engine._pool._remove_connections()


def _statements(engine, ns):
    """(statement, values) of every command kind, built for ``engine``."""
    session = pytypes.SimpleNamespace(engine=engine)  # all the builders read off it
    dialect = engine.dialect
    items, pairs = ns.Item.get_table(), ns.Pair.get_table()
    key = uuid.UUID("0b7e8c5e-62a4-4e1c-9d5e-3f1a2b3c4d5e")
    data = {"uuid": key, "name": "Zoë", "count": 3, "price": 1.5, "parent": None,
            "created": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
            "data": {"k": ["ü", None]}}
    filters = dm_filters.AND({"name": dm_filters.Like("Z%")},
                             dm_filters.OR({"count": dm_filters.GT(1)},
                                           {"parent": dm_filters.Is(None)}))
    commands = {
        "insert": dialect.insert(table=items, data=data, session=session),
        "update": dialect.update(table=items, ids={"uuid": key}, data=data, session=session),
        "delete": dialect.delete(table=items, ids={"uuid": key}, session=session),
        "delete_two_keys": dialect.delete(table=pairs, ids={"a": 1, "b": "x"}, session=session),
        "select": dialect.select(table=items, filters=filters, session=session, limit=3,
                                 order_by={"name": "desc", "count": ""}, locked=True),
        "custom_select": dialect.custom_select(
            table=items, where_conditions="name = %s", where_values=("Zoë",), session=session,
            limit=2, order_by={"created": "asc"}),
        "count": dialect.count(table=items, filters=filters, session=session),
    }
    out = {kind: (cmd.get_statement(), list(cmd.get_values())) for kind, cmd in commands.items()}
    for model in (ns.Item, ns.PrefetchedItem):  # the query builder, with and without a JOIN
        query = dialect.orm.select(model, session).where(filters=filters)
        query.order_by(property_name="created", sort_type="desc nulls last").limit(4)
        cmd = dialect.orm_command(table=model.get_table(), query=query, session=session)
        out[f"orm_select_{model.__name__}"] = (cmd.get_statement(), list(cmd.get_values()))
    return out


def test_ordinary_models_give_the_stock_statements(ra_engine, stock_engine, dialect):
    assert type(ra_engine.dialect) is not type(stock_engine.dialect)
    ns = make_models(dialect)
    ours, stock = _statements(ra_engine, ns), _statements(stock_engine, ns)
    assert ours == stock
    q = QUOTE[dialect]
    assert f"INSERT INTO {q}{ns.Item.__tablename__}{q} ({q}count{q}, " in ours["insert"][0]
    assert "LEFT JOIN" in ours["orm_select_PrefetchedItem"][0]
    for name in ["name", "Zoë ünï 📦", "a.b", "with space", "x" * 63, "select"]:
        assert ra_engine.escape(name) == stock_engine.escape(name) == q + name + q


# -- control: the payloads do break out on stock RESTAlchemy ---------------------


@pytest.fixture
def stock_factory(ra_url, dialect):
    """RESTAlchemy's factory making stock engines for the test; put back after."""
    was = fs_ra.installed()
    fs_ra.uninstall()
    config = {"min_size": 1, "max_size": 2} if dialect == "postgresql" else {"pool_size": 2}
    ra_engines.engine_factory.configure_factory(db_url=ra_url, config=config)
    engine = ra_engines.engine_factory.get_engine()
    assert not isinstance(engine, fastsess.Engine)
    yield engine
    ra_engines.engine_factory.destroy_all_engines()
    if was:
        fs_ra.install()


@pytest.mark.parametrize("kind,payload", [("insert", "quote"), ("update", "quote"),
                                          ("delete", "quote"), ("drop_table", "quote"),
                                          ("insert", "overlong")])
def test_payloads_break_out_on_stock_restalchemy(stock_factory, dialect, victim, kind, payload):
    if payload == "overlong" and dialect == "mysql":
        pytest.skip("MySQL refuses an over-long name itself; PostgreSQL cuts it short")
    name = _table_name(payload, dialect, kind, victim.name)
    _run(kind, _table_model(name), stock_factory, name)
    # Why the refusals above matter: stock RESTAlchemy changed another table.
    assert victim.rows() != victim.before
