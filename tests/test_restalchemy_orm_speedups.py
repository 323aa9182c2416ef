"""fastsess.restalchemy.orm: the patched ORM read path gives what stock gives.

Each test reads the same rows through the same drop-in engine twice, once
with the patches reverted (RESTAlchemy's own functions) and once applied,
and compares the models (values with their types and time zones, the
first values kept for mutable ones, saved flags) or the errors.
"""

from __future__ import annotations

import datetime
import uuid

import pytest

pytestmark = pytest.mark.db



@pytest.fixture
def orm_mod(drop_in):
    """fastsess.restalchemy.orm, applied (install() did it)."""
    from fastsess.restalchemy import orm

    yield orm
    orm.apply()


def _models(dialect):
    """Model classes on fresh tables, and their DDL."""
    from restalchemy.dm import models, properties, relationships
    from restalchemy.dm import types as ra_types
    from restalchemy.storage.sql import orm as ra_orm

    suffix = uuid.uuid4().hex[:10]
    json_mixin = ra_orm.SQLStorableMixin if dialect == "postgresql" else \
        ra_orm.SQLStorableWithJSONFieldsMixin

    class Owner(models.ModelWithUUID, ra_orm.SQLStorableMixin):
        __tablename__ = f"sp_owner_{suffix}"
        name = properties.property(ra_types.String(max_length=64), required=True)

    class Thing(models.ModelWithUUID, ra_orm.SQLStorableMixin):
        __tablename__ = f"sp_thing_{suffix}"
        name = properties.property(ra_types.String(max_length=64), required=True)
        note = properties.property(ra_types.AllowNone(ra_types.String()), default=None)
        count = properties.property(ra_types.Integer(), default=7)
        flag = properties.property(ra_types.Boolean(), default=True)
        score = properties.property(ra_types.AllowNone(ra_types.Float()))
        at = properties.property(ra_types.UTCDateTimeZ(), required=True)
        kind = properties.property(ra_types.Enum(["a", "b"]), default="a")
        ref = properties.property(ra_types.AllowNone(ra_types.UUID()))
        owner = relationships.relationship(Owner)

    class Short(models.ModelWithUUID, ra_orm.SQLStorableMixin):
        # Thing's table read with narrower rules: a name too long, a NULL
        # where a value is required.
        __tablename__ = Thing.__tablename__
        name = properties.property(ra_types.String(max_length=3), required=True)
        note = properties.property(ra_types.String(), required=True)

    class Checked(models.ModelWithUUID, ra_orm.SQLStorableMixin):
        __tablename__ = Thing.__tablename__
        name = properties.property(ra_types.String(max_length=64), required=True)
        seen = []

        def validate(self):
            Checked.seen.append(self.name)
            if self.name == "boom":
                from restalchemy.common import exceptions as ra_exc

                raise ra_exc.PropertyRequired(name="name")

    class Hooked(models.ModelWithUUID, ra_orm.SQLStorableMixin):
        __tablename__ = Thing.__tablename__
        name = properties.property(ra_types.String(max_length=64), required=True)

        @classmethod
        def restore_row(cls, row, pour=None):
            obj = super().restore_row(row, pour)
            obj.hooked = True
            return obj

    class Prefetched(models.ModelWithUUID, ra_orm.SQLStorableMixin):
        __tablename__ = Thing.__tablename__
        name = properties.property(ra_types.String(max_length=64), required=True)
        owner = relationships.relationship(Owner, prefetch=True)

    class Doc(models.ModelWithUUID, json_mixin):
        __tablename__ = f"sp_doc_{suffix}"
        __jsonfields__ = ["data", "tags"]
        data = properties.property(ra_types.Dict(), default=dict, mutable=True)
        tags = properties.property(ra_types.List(), default=list)
        title = properties.property(ra_types.String(), default="")

    pg = dialect == "postgresql"
    uuid_t = "uuid" if pg else "CHAR(36)"
    ts_t = "timestamptz" if pg else "DATETIME(6)"
    json_t = "jsonb" if pg else "LONGTEXT"
    list_t = "text[]" if pg else "LONGTEXT"
    create = [
        f"CREATE TABLE {Owner.__tablename__} (uuid {uuid_t} PRIMARY KEY, name VARCHAR(64) NOT NULL)",
        f"CREATE TABLE {Thing.__tablename__} (uuid {uuid_t} PRIMARY KEY, name VARCHAR(64) NOT NULL,"
        f" note VARCHAR(255) NULL, count INT NULL, flag BOOLEAN NULL, score DOUBLE PRECISION NULL,"
        f" at {ts_t} NOT NULL, kind VARCHAR(8) NULL, ref {uuid_t} NULL, owner {uuid_t} NULL)",
        f"CREATE TABLE {Doc.__tablename__} (uuid {uuid_t} PRIMARY KEY, data {json_t} NULL,"
        f" tags {list_t} NULL, title VARCHAR(64) NULL)",
    ]
    drop = [f"DROP TABLE IF EXISTS {m.__tablename__}" for m in (Thing, Owner, Doc)]
    return dict(Owner=Owner, Thing=Thing, Short=Short, Checked=Checked, Hooked=Hooked,
                Prefetched=Prefetched, Doc=Doc, create=create, drop=drop)


@pytest.fixture
def m(ra_engine, dialect):
    """Fresh models and tables, seeded with awkward rows (dropped after)."""
    ns = _models(dialect)
    with ra_engine.session_manager() as s:
        for sql in ns["create"]:
            s.execute(sql)
    owners = [ns["Owner"](name=f"owner {i} ☃") for i in range(3)]
    for owner in owners:
        owner.insert()
    at = datetime.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=datetime.timezone.utc)
    for i in range(12):
        ns["Thing"](
            name=f"thing {i} — ünïcode ✓",
            note=None if i % 3 == 0 else f"note {i} 日本",
            count=i * 1000,
            flag=i % 2 == 0,
            score=None if i % 4 == 0 else i / 3,
            at=at + datetime.timedelta(days=i, microseconds=i),
            kind="b" if i % 2 else "a",
            ref=None if i % 2 else uuid.UUID(int=i + 1),
            owner=owners[i % 3] if i % 5 else None,
        ).insert()
        ns["Doc"](data={"k": i, "nested": {"list": [1, 2.5, None, "ß"]}, "none": None},
                  tags=[str(i), "x ÿ", ""], title=f"doc {i} ✓").insert()
    with ra_engine.session_manager() as s:
        # NULLs where a default stands in, written past the model.
        s.execute(f"UPDATE {ns['Thing'].__tablename__} SET count = NULL, flag = NULL, kind = NULL"
                  " WHERE name LIKE %s", ("thing 1%",))
        s.execute(f"UPDATE {ns['Doc'].__tablename__} SET title = NULL"
                  " WHERE title = %s", ("doc 3 ✓",))
    yield ns
    with ra_engine.session_manager() as s:
        for sql in ns["drop"]:
            s.execute(sql)


def _snapshot(obj):
    """What a restored model is made of, types and time zones included."""
    manager = obj.__dict__["properties"]
    values = {name: (type(v).__name__, repr(v)) for name, v in manager._values.items()}
    first = {name: repr(v) for name, v in manager._first_values.items()}
    extra = sorted(k for k in obj.__dict__ if k != "properties")
    return (type(obj).__name__, values, first, sorted(manager._properties), extra,
            obj._saved, obj.is_dirty(), repr(sorted((k, repr(v)) for k, v in obj.items())))


def _outcome(fn):
    try:
        return ("ok", [_snapshot(o) for o in fn()])
    except Exception as e:  # noqa: BLE001 - the error is the answer compared
        return ("error", type(e).__name__, str(e))


def _both(orm_mod, fn):
    """fn's outcome with RESTAlchemy's own functions, then with ours."""
    orm_mod.revert()
    stock = _outcome(fn)
    orm_mod.apply()
    ours = _outcome(fn)
    return stock, ours


def _filters():
    from restalchemy.dm import filters as dm_filters

    return dm_filters


def test_collection_same(orm_mod, m):
    Thing = m["Thing"]
    stock, ours = _both(orm_mod, lambda: Thing.objects.get_all(order_by={"count": "asc"}))
    assert stock[0] == "ok" and len(stock[1]) == 12
    assert ours == stock


def test_relationships_preloaded_same(orm_mod, m):
    Thing = m["Thing"]

    def read():
        things = Thing.objects.get_all(order_by={"name": "asc"})
        # The relationship objects the page preloaded, as stock finds them.
        return things + [t.owner for t in things if t.owner is not None]

    stock, ours = _both(orm_mod, read)
    assert stock[0] == "ok"
    assert ours == stock


def test_one_and_filtered_same(orm_mod, m):
    Thing = m["Thing"]
    f = _filters()
    for filters in ({"ref": f.EQ(uuid.UUID(int=1))}, {"name": f.EQ("thing 4 — ünïcode ✓")},
                    {"kind": f.In(["b"])}, {"note": f.Is(None)}):
        stock, ours = _both(orm_mod, lambda: Thing.objects.get_all(filters=filters))
        assert stock[0] == "ok" and stock[1], filters
        assert ours == stock
    stock, ours = _both(orm_mod, lambda: [Thing.objects.get_one(filters={"ref": f.EQ(uuid.UUID(int=3))})])
    assert ours == stock
    stock, ours = _both(orm_mod, lambda: Thing.objects.get_all(filters={"count": f.EQ(-1)}))
    assert ours == stock == ("ok", [])


def test_json_and_mutable_same(orm_mod, m, ra_engine):
    Doc = m["Doc"]
    stock, ours = _both(orm_mod, lambda: Doc.objects.get_all(order_by={"title": "asc"}))
    assert stock[0] == "ok" and len(stock[1]) == 12, stock
    assert ours == stock
    # Whether a value changed in place makes the model dirty: as stock says.
    dirty = []
    for install in (orm_mod.revert, orm_mod.apply):
        install()
        doc = Doc.objects.get_all(order_by={"title": "desc"})[0]
        before = doc.is_dirty()
        doc.data["new"] = 1
        doc.tags.append("more")
        dirty.append((before, doc.is_dirty()))
    assert dirty[0] == dirty[1]
    # A stored NULL in a JSON column: stock's loader refuses it, and so do we.
    with ra_engine.session_manager() as s:
        s.execute(f"UPDATE {Doc.__tablename__} SET data = NULL WHERE title IS NULL")
    stock, ours = _both(orm_mod, lambda: Doc.objects.get_all(order_by={"title": "asc"}))
    assert stock[0] == "error" and ours == stock


def test_errors_same(orm_mod, m):
    stock, ours = _both(orm_mod, lambda: m["Short"].objects.get_all())
    assert stock[0] == "error"
    assert ours == stock
    f = _filters()
    # A NULL where a value is required.
    stock, ours = _both(orm_mod, lambda: m["Short"].objects.get_all(
        filters={"name": f.EQ("thing 0 — ünïcode ✓")}))
    assert stock[0] == "error"
    assert ours == stock


def test_overrides_same(orm_mod, m, ra_engine):
    Checked = m["Checked"]
    for model in (Checked, m["Hooked"], m["Prefetched"]):
        Checked.seen.clear()
        stock, ours = _both(orm_mod, lambda: model.objects.get_all(order_by={"name": "asc"}))
        assert stock[0] == "ok" and len(stock[1]) == 12, model
        assert ours == stock
    assert Checked.seen == []  # the last model read is not Checked
    with ra_engine.session_manager() as s:
        s.execute(f"UPDATE {Checked.__tablename__} SET name = 'boom' WHERE name LIKE %s",
                  ("thing 7%",))
    Checked.seen.clear()
    stock, ours = _both(orm_mod, lambda: Checked.objects.get_all(order_by={"name": "asc"}))
    assert stock[0] == "error" and ours == stock
    half = len(Checked.seen) // 2
    assert Checked.seen[:half] == Checked.seen[half:]


def test_rows_same(orm_mod, m, ra_engine):
    """get_rows: the rows themselves, from ORM selects and custom ones."""
    Thing, Prefetched = m["Thing"], m["Prefetched"]

    def rows(model):
        with ra_engine.session_manager() as s:
            result = model.get_table().select(engine=ra_engine, filters=None, session=s,
                                              order_by={"name": "asc"})
            got = result.rows
            assert result.rows is got
            return got

    for model in (Thing, Prefetched):
        orm_mod.revert()
        stock = rows(model)
        orm_mod.apply()
        ours = rows(model)
        assert [repr(sorted((k, repr(v)) for k, v in r.items())) for r in ours] == \
            [repr(sorted((k, repr(v)) for k, v in r.items())) for r in stock]
        assert [type(r) for r in ours] == [type(r) for r in stock]
        assert [list(r) for r in ours] == [list(r) for r in stock]
    stock, ours = _both(orm_mod, lambda: Thing.objects.query(
        where_conditions="count >= %s", where_values=(3000,), order_by={"count": "asc"}))
    assert stock[0] == "ok" and ours == stock


def test_apply_revert(drop_in):
    from restalchemy.storage.sql import orm as ra_orm
    from restalchemy.storage.sql.dialect import base as ra_base

    import fastsess.restalchemy as fs_ra
    from fastsess.restalchemy import orm

    assert ra_base.BaseOrmProcessResult.get_rows is orm.get_rows
    fs_ra.uninstall()
    try:
        assert ra_base.BaseOrmProcessResult.get_rows is orm.STOCK_GET_ROWS
        assert ra_orm.SQLStorableMixin.__dict__["restore_many_from_storage"] \
            is orm.STOCK_RESTORE_MANY
    finally:
        fs_ra.install()
    assert ra_orm.SQLStorableMixin.restore_many_from_storage.__func__ \
        is orm.restore_many_from_storage.__func__
