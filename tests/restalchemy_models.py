"""RESTAlchemy models, tables and fixtures for the tests of fastsess.restalchemy.

A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``), so its
fixtures reach every test module without being imported by name.  It imports
RESTAlchemy only inside its fixtures and helpers: the suite loads it without
RESTAlchemy installed, and a test that needs RESTAlchemy skips there.

RESTAlchemy tests run in a database of their own per dialect, made for this
test session and dropped after it: RESTAlchemy's migrations keep a fixed
``ra_migrations`` table, and colleagues' runs share the servers.  Model
classes are built per test with uniquely named tables.
"""

from __future__ import annotations

import datetime
import types as pytypes
import uuid

import pytest

import fastsess
import fastsess.restalchemy as fs_ra  # imports no RESTAlchemy

from .conftest import URLS, raw_query

# Small pools: tests open several engines at once on shared servers.
SMALL_POOL = {"postgresql": {"min_size": 0, "max_size": 4, "timeout": 10},
              "mysql": {"pool_size": 4, "timeout": 10}}


def admin_execute(dialect, sql) -> None:
    """Run ``sql`` outside any transaction on the server's test database."""
    engine = fastsess.create_engine(URLS[dialect], max_size=1, timeout=10)
    try:
        raw = engine.get_connection()
        try:
            if dialect == "postgresql":
                raw.autocommit = True
            raw_query(raw, sql)
            if dialect == "postgresql":
                raw.autocommit = False
        finally:
            engine.close_connection(raw)
    finally:
        engine.close()


def url_with_database(dialect, name) -> str:
    base = URLS[dialect]
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def ra_databases():
    """dialect -> URL of a database made for this session's RESTAlchemy tests."""
    made = {}

    class Databases(dict):
        def __missing__(self, dialect):
            name = f"fsra_{uuid.uuid4().hex[:12]}"
            admin_execute(dialect, f"CREATE DATABASE {name}")
            made[dialect] = name
            self[dialect] = url_with_database(dialect, name)
            return self[dialect]

    yield Databases()
    for dialect, name in made.items():
        force = " WITH (FORCE)" if dialect == "postgresql" else ""
        admin_execute(dialect, f"DROP DATABASE IF EXISTS {name}{force}")


@pytest.fixture
def ra_url(dialect, ra_databases):
    """URL of this session's RESTAlchemy database on ``dialect``."""
    return ra_databases[dialect]


def ra_engines_module():
    """RESTAlchemy's engines module; skips the test without RESTAlchemy."""
    return pytest.importorskip("restalchemy.storage.sql.engines")


@pytest.fixture
def drop_in():
    """fastsess.restalchemy installed for the test, put back as found after."""
    ra_engines = ra_engines_module()
    was = fs_ra.installed()
    fs_ra.install()
    yield
    ra_engines.engine_factory.destroy_all_engines()
    if not was:
        fs_ra.uninstall()


@pytest.fixture
def ra_engine(drop_in, ra_url, dialect):
    """The RESTAlchemy factory's default engine, fastsess-backed."""
    ra_engines = ra_engines_module()
    ra_engines.engine_factory.configure_factory(db_url=ra_url, config=dict(SMALL_POOL[dialect]))
    return ra_engines.engine_factory.get_engine()


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def make_models(dialect):
    """Model classes on fresh table names, and the DDL to create/drop them."""
    from restalchemy.dm import models, properties, relationships
    from restalchemy.dm import types as ra_types
    from restalchemy.storage.sql import orm

    suffix = uuid.uuid4().hex[:10]
    # PostgreSQL stores dicts as jsonb (dumped by RESTAlchemy's JSONB
    # dumper); MySQL as JSON text, through RESTAlchemy's JSON-fields mixin.
    storable = orm.SQLStorableMixin if dialect == "postgresql" else \
        orm.SQLStorableWithJSONFieldsMixin

    class Parent(models.ModelWithUUID, orm.SQLStorableMixin):
        __tablename__ = f"ra_parent_{suffix}"
        name = properties.property(ra_types.String(max_length=64), required=True)

    class Item(models.ModelWithUUID, storable):
        __tablename__ = f"ra_item_{suffix}"
        __jsonfields__ = ["data"]
        name = properties.property(ra_types.String(max_length=64), required=True)
        count = properties.property(ra_types.Integer(), default=0)
        price = properties.property(ra_types.Float(), default=0.0)
        created = properties.property(ra_types.UTCDateTimeZ(), default=_now)
        data = properties.property(ra_types.Dict(), default=dict)
        parent = relationships.relationship(Parent)

    class PrefetchedItem(models.ModelWithUUID, storable):
        # The same table, its parent fetched by a JOIN.
        __tablename__ = Item.__tablename__
        __jsonfields__ = ["data"]
        name = properties.property(ra_types.String(max_length=64), required=True)
        count = properties.property(ra_types.Integer(), default=0)
        price = properties.property(ra_types.Float(), default=0.0)
        created = properties.property(ra_types.UTCDateTimeZ(), default=_now)
        data = properties.property(ra_types.Dict(), default=dict)
        parent = relationships.relationship(Parent, prefetch=True)

    class Pair(models.ModelWithID, orm.SQLStorableMixin):
        __tablename__ = f"ra_pair_{suffix}"
        a = properties.property(ra_types.Integer(), id_property=True, required=True)
        b = properties.property(ra_types.String(max_length=20), id_property=True, required=True)
        v = properties.property(ra_types.Integer(), default=0)

    if dialect == "postgresql":
        uuid_type, ts_type, json_type = "uuid", "timestamp", "jsonb"
    else:
        uuid_type, ts_type, json_type = "CHAR(36)", "DATETIME(6)", "LONGTEXT"
    create = [
        f"CREATE TABLE {Parent.__tablename__} (uuid {uuid_type} PRIMARY KEY, "
        f"name VARCHAR(64) NOT NULL)",
        f"CREATE TABLE {Item.__tablename__} (uuid {uuid_type} PRIMARY KEY, "
        f"name VARCHAR(64) NOT NULL UNIQUE, count INT NOT NULL, price DOUBLE PRECISION NOT NULL, "
        f"created {ts_type} NOT NULL, data {json_type} NOT NULL, parent {uuid_type} NULL)",
        f"CREATE TABLE {Pair.__tablename__} (a INT NOT NULL, b VARCHAR(20) NOT NULL, "
        f"v INT NOT NULL, PRIMARY KEY (a, b))",
    ]
    drop = [f"DROP TABLE IF EXISTS {m.__tablename__}" for m in (Item, Parent, Pair)]
    return pytypes.SimpleNamespace(Parent=Parent, Item=Item, PrefetchedItem=PrefetchedItem,
                                   Pair=Pair, create=create, drop=drop)


@pytest.fixture
def ra_models(ra_engine, dialect):
    """Fresh model classes with their tables created (dropped after)."""
    ns = make_models(dialect)
    with ra_engine.session_manager() as s:
        for sql in ns.create:
            s.execute(sql)
    yield ns
    with ra_engine.session_manager() as s:
        for sql in ns.drop:
            s.execute(sql)
