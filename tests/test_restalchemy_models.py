"""RESTAlchemy models on fastsess (drop-in mode), on PostgreSQL and MySQL."""

from __future__ import annotations

import datetime
import uuid

import pytest

pytest.importorskip("restalchemy")

from restalchemy.dm import filters as dm_filters  # noqa: E402
from restalchemy.storage import exceptions as ra_exc  # noqa: E402

from fastsess.restalchemy import sessions as drop_in_sessions  # noqa: E402


def _names(objs):
    return sorted(o.name for o in objs)


def test_sessions_are_fastsess_drop_in_sessions(ra_engine, dialect):
    with ra_engine.session_manager() as s:
        assert isinstance(s, (drop_in_sessions.PgSQLSession, drop_in_sessions.MySQLSession))
        assert s.engine is ra_engine


def test_crud(ra_models):
    Item = ra_models.Item
    created = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
    item = Item(name="one", count=3, price=1.5, created=created, data={"k": [1, "x"], "n": None})
    item.insert()

    got = Item.objects.get_one(filters={"uuid": dm_filters.EQ(item.uuid)})
    assert got == item and got is not item
    assert (got.name, got.count, got.price, got.created, got.data) == \
        ("one", 3, 1.5, created, {"k": [1, "x"], "n": None})
    assert isinstance(got.uuid, uuid.UUID)

    got.count = 4
    got.data = {"k": "changed"}
    got.save()
    again = Item.objects.get_one(filters={"name": dm_filters.EQ("one")})
    assert (again.count, again.data) == (4, {"k": "changed"})

    again.delete()
    assert Item.objects.get_one_or_none(filters={"name": dm_filters.EQ("one")}) is None
    with pytest.raises(ra_exc.RecordNotFound):
        Item.objects.get_one(filters={"name": dm_filters.EQ("one")})


def test_update_of_an_unchanged_row_counts_it(ra_models, ra_engine):
    # mysql-connector (the stock MySQL driver) reports matched rows, not
    # changed ones; RESTAlchemy's update() reads that count.
    item = ra_models.Item(name="same", count=1)
    item.insert()
    with ra_engine.session_manager() as s:
        result = s.execute(f"UPDATE {ra_models.Item.__tablename__} SET count = %s "
                           f"WHERE name = %s", (1, "same"))
        assert result.rowcount == 1
    item.update(force=True)  # no MultipleUpdatesDetected, no RecordNotFound


def test_filters_order_and_limit(ra_models):
    Item = ra_models.Item
    for i, name in enumerate(["a1", "a2", "b1", "b2", "c%"]):
        Item(name=name, count=i, price=i / 2).insert()
    get = Item.objects.get_all
    assert _names(get(filters={"count": dm_filters.GT(2)})) == ["b2", "c%"]
    assert _names(get(filters={"count": dm_filters.GE(2), "price": dm_filters.LT(2)})) == \
        ["b1", "b2"]
    assert _names(get(filters={"count": dm_filters.LE(0)})) == ["a1"]
    assert _names(get(filters={"name": dm_filters.NE("a1"), "count": dm_filters.LT(2)})) == ["a2"]
    assert _names(get(filters={"name": dm_filters.In(["a1", "c%", "zz"])})) == ["a1", "c%"]
    assert _names(get(filters={"name": dm_filters.In([])})) == []
    assert _names(get(filters={"name": dm_filters.NotIn(["a1", "a2", "b1"])})) == ["b2", "c%"]
    assert _names(get(filters={"name": dm_filters.Like("a%")})) == ["a1", "a2"]
    assert _names(get(filters={"name": dm_filters.Like("c\\%")})) == ["c%"]
    assert _names(get(filters={"name": dm_filters.NotLike("%1")})) == ["a2", "b2", "c%"]
    assert _names(get(filters={"parent": dm_filters.Is(None), "count": dm_filters.EQ(1)})) == ["a2"]
    assert _names(get(filters={"parent": dm_filters.IsNot(None)})) == []
    assert _names(get(filters=dm_filters.OR({"name": dm_filters.EQ("a1")},
                                            {"count": dm_filters.EQ(4)}))) == ["a1", "c%"]
    ordered = get(order_by={"count": "desc"}, limit=2)
    assert [o.name for o in ordered] == ["c%", "b2"]
    assert Item.objects.count() == 5
    assert Item.objects.count(filters={"name": dm_filters.Like("b%")}) == 2
    found = Item.objects.query(where_conditions="count >= %s AND name LIKE %s",
                               where_values=(1, "a%"))
    assert _names(found) == ["a2"]


def test_get_all_with_and_without_cache(ra_models, ra_engine):
    Item = ra_models.Item
    Item(name="cached").insert()
    with ra_engine.session_manager() as s:
        first = Item.objects.get_one(session=s, cache=True)
        assert Item.objects.get_one(session=s, cache=True) is first
        assert Item.objects.get_one(session=s, cache=False) is not first
        assert Item.objects.get_all(session=s, cache=True, filters={
            "name": dm_filters.EQ("cached")})[0] is not first  # other filters: other entry
        # A write through the session empties its cache: never stale.
        Item(name="second").insert(session=s)
        assert len(Item.objects.get_all(session=s, cache=True)) == 2
        found = Item.objects.query(where_conditions="name = %s", where_values=("second",),
                                   session=s, cache=True)
        assert Item.objects.query(where_conditions="name = %s", where_values=("second",),
                                  session=s, cache=True) is found


def test_batch_insert_and_delete_one_primary_key(ra_models, ra_engine):
    Item = ra_models.Item
    items = [Item(name=f"n{i}", count=i, data={"i": i}) for i in range(5)]
    with ra_engine.session_manager() as s:
        assert s.batch_insert(items) == 5
        assert s.batch_insert([]) == 0
    assert Item.objects.count() == 5
    with ra_engine.session_manager() as s:
        assert s.batch_delete(items[:3]) == 3
        assert s.batch_delete([]) == 0
    assert _names(Item.objects.get_all()) == ["n3", "n4"]
    assert {o.data["i"] for o in Item.objects.get_all()} == {3, 4}


def test_batch_insert_and_delete_two_primary_keys(ra_models, ra_engine):
    Pair = ra_models.Pair
    pairs = [Pair(a=i % 3, b=f"b{i}", v=i) for i in range(9)]
    with ra_engine.session_manager() as s:
        s.batch_insert(pairs)
    with ra_engine.session_manager() as s:
        assert s.batch_delete([p for p in pairs if p.a == 1]) == 3
    assert sorted((p.a, p.b) for p in Pair.objects.get_all()) == \
        sorted((p.a, p.b) for p in pairs if p.a != 1)


def test_large_batch_insert(ra_models, ra_engine):
    # 300 rows: PostgreSQL takes the COPY path where it stores the same
    # values (the dicts go through RESTAlchemy's JSONB dumper either way).
    Item = ra_models.Item
    items = [Item(name=f"big{i}", count=i, price=i * 0.25, data={"i": i}) for i in range(300)]
    with ra_engine.session_manager() as s:
        assert s.batch_insert(items) == 300
    got = {o.name: o for o in Item.objects.get_all()}
    assert len(got) == 300
    assert (got["big7"].count, got["big7"].price, got["big7"].data) == (7, 1.75, {"i": 7})
    assert got["big7"].created == items[7].created


def test_batch_insert_duplicate_key_raises_conflict_records(ra_models, ra_engine, dialect):
    Item = ra_models.Item
    dup = uuid.uuid4()
    items = [Item(uuid=dup, name="x1"), Item(name="x2"), Item(uuid=dup, name="x3")]
    with pytest.raises(ra_exc.ConflictRecords) as info:
        with ra_engine.session_manager() as s:
            s.batch_insert(items)
    assert info.value.key == ("PRIMARY" if dialect == "mysql" else "uuid")
    assert info.value.value == str(dup)
    assert Item.objects.get_all() == []  # nothing half-inserted

    with pytest.raises(ra_exc.ConflictRecords) as info:
        with ra_engine.session_manager() as s:
            s.batch_insert([Item(name="same"), Item(name="same")])
    assert info.value.value == "same"
    # MySQL names the index: a UNIQUE column's index is named after it.
    assert info.value.key == "name"


def test_batch_of_mixed_models_is_refused_before_sql(ra_models, ra_engine):
    with ra_engine.session_manager() as s:
        with pytest.raises(TypeError):
            s.batch_insert([ra_models.Item(name="i"), ra_models.Parent(name="p")])


def test_insert_duplicate_key_raises_conflict_records(ra_models, dialect):
    Item = ra_models.Item
    Item(name="taken").insert()
    with pytest.raises(ra_exc.ConflictRecords) as info:
        Item(name="taken").insert()
    assert info.value.value == "taken"
    if dialect == "postgresql":
        assert info.value.key == "name"
    assert Item.objects.count() == 1


def test_relationships_and_prefetch(ra_models):
    Parent, Item, Prefetched = ra_models.Parent, ra_models.Item, ra_models.PrefetchedItem
    p1, p2 = Parent(name="p1"), Parent(name="p2")
    p1.insert()
    p2.insert()
    for i in range(4):
        Item(name=f"c{i}", parent=p1 if i % 2 else p2).insert()
    Item(name="orphan").insert()

    by_name = {o.name: o for o in Item.objects.get_all()}
    assert by_name["c1"].parent == p1 and isinstance(by_name["c1"].parent, Parent)
    assert by_name["c2"].parent.name == "p2"
    assert by_name["orphan"].parent is None
    children = Item.objects.get_all(filters={"parent": dm_filters.EQ(p1)})
    assert _names(children) == ["c1", "c3"]

    prefetched = {o.name: o for o in Prefetched.objects.get_all()}
    assert prefetched["c3"].parent.name == "p1"
    assert prefetched["c0"].parent == p2
    assert prefetched["orphan"].parent is None


def test_session_manager_rolls_back_on_error(ra_models, ra_engine):
    Item = ra_models.Item
    with pytest.raises(RuntimeError):
        with ra_engine.session_manager() as s:
            Item(name="gone").insert(session=s)
            raise RuntimeError("boom")
    assert Item.objects.get_all() == []
    with ra_engine.session_manager() as s:
        Item(name="kept").insert(session=s)
        # A nested session_manager with the session yields it untouched.
        with ra_engine.session_manager(session=s) as inner:
            assert inner is s
    assert _names(Item.objects.get_all()) == ["kept"]


def test_conflict_caught_inside_session_manager_is_stock_behaviour(ra_models, ra_engine,
                                                                     dialect):
    # RESTAlchemy's own tests (and code) catch ConflictRecords inside
    # session_manager() and leave the block normally.  On PostgreSQL the
    # error aborted the transaction and the stock stack's COMMIT ends it as a
    # rollback, quietly; MySQL undoes only the failed statement.
    Item = ra_models.Item
    dup = uuid.uuid4()
    with ra_engine.session_manager() as s:
        Item(name="before").insert(session=s)
        with pytest.raises(ra_exc.ConflictRecords):
            s.batch_insert([Item(uuid=dup, name="d1"), Item(uuid=dup, name="d2")])
    kept = [] if dialect == "postgresql" else ["before"]
    assert _names(Item.objects.get_all()) == kept
    with ra_engine.session_manager() as s:  # the engine is fine afterwards
        Item(name="after").insert(session=s)
    assert _names(Item.objects.get_all()) == sorted(kept + ["after"])
