"""Upserts: the statement builder on both implementations, and upsert_rows on the servers."""

from __future__ import annotations

import pytest

from .conftest import raw_query, twin


@pytest.mark.parametrize("dialect_name, expected", [
    ("postgresql", 'INSERT INTO "t" ("id", "v") VALUES (%s, %s), (%s, %s) '
                   'ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v"'),
    ("mysql", "INSERT INTO `t` (`id`, `v`) VALUES (%s, %s), (%s, %s) "
              "ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"),
])
def test_build_upsert_statement(kernels, dialect_name, expected):
    assert kernels.build_upsert(dialect_name, "t", ["id", "v"], [(1, "a"), (2, "b")], ["id"], None,
                                65535) == [(expected, [1, "a", 2, "b"])]


@pytest.mark.parametrize("name", ["é", "ĉ", "日本", "😀"])
def test_build_upsert_non_ascii_columns(kernels, name):
    # The conflict clause names the columns too: any str kind, not only ASCII.
    got = kernels.build_upsert("postgresql", "t", ["id", name], [(1, "a"), (2, "b")], ["id"], None, 100)
    assert got == [(f'INSERT INTO "t" ("id", "{name}") VALUES (%s, %s), (%s, %s) '
                    f'ON CONFLICT ("id") DO UPDATE SET "{name}" = EXCLUDED."{name}"', [1, "a", 2, "b"])]
    got = kernels.build_upsert("mysql", "t", [name, "v"], [(1, "a")], [name], [], 100)
    assert got == [(f"INSERT INTO `t` (`{name}`, `v`) VALUES (%s, %s) "
                    f"ON DUPLICATE KEY UPDATE `{name}` = `{name}`", [1, "a"])]


def test_build_upsert_do_nothing_and_errors(kernels):
    pg = kernels.build_upsert("postgresql", "t", ["a", "b", "v"], [(1, 2, 3)], ["a", "b"], [], 100)
    assert pg[0][0].endswith(' ON CONFLICT ("a", "b") DO NOTHING')
    my = kernels.build_upsert("mysql", "t", ["a", "v"], [(1, 3)], ["a"], [], 100)
    assert my[0][0].endswith(" ON DUPLICATE KEY UPDATE `a` = `a`")
    with pytest.raises(ValueError, match="at least one key column"):
        kernels.build_upsert("mysql", "t", ["a"], [(1,)], [], None, 100)
    with pytest.raises(ValueError, match="key column 'k' is not among the inserted columns"):
        kernels.build_upsert("mysql", "t", ["a"], [(1,)], ["k"], None, 100)
    with pytest.raises(ValueError, match="update column 'u' is not among the inserted columns"):
        kernels.build_upsert("postgresql", "t", ["a"], [(1,)], ["a"], ["u"], 100)


def test_build_upsert_chunks_like_insert(kernels):
    rows = [(i, i) for i in range(5)]
    ups = kernels.build_upsert("postgresql", "t", ["id", "v"], rows, ["id"], None, 4)
    ins = twin.build_insert("postgresql", "t", ["id", "v"], rows, 4)
    assert [p for _, p in ups] == [p for _, p in ins]
    assert all(s.startswith(i) and "ON CONFLICT" in s for (s, _), (i, _) in zip(ups, ins))


def test_upsert_rows_inserts_and_updates(engine, table, raw_connect):
    with engine.session_manager() as s:
        s.insert_rows(table, [{"id": 1, "name": "old", "n": 1}, {"id": 2, "name": "keep", "n": 2}])
    with engine.session_manager() as s:
        s.upsert_rows(table, [{"id": 1, "name": "new", "n": 10}, {"id": 3, "name": "added", "n": 3}],
                      key_columns="id", update_columns=["name"])
    assert raw_query(raw_connect(), f"SELECT id, name, n FROM {table} ORDER BY id") == [
        (1, "new", 1), (2, "keep", 2), (3, "added", 3)]


def test_upsert_rows_do_nothing(engine, table, raw_connect):
    with engine.session_manager() as s:
        s.insert_rows(table, [{"id": 1, "name": "old", "n": 1}])
        s.upsert_rows(table, [(1, "ignored", 9), (2, "added", 2)], key_columns=["id"],
                      update_columns=[], columns=["id", "name", "n"])
    assert raw_query(raw_connect(), f"SELECT id, name, n FROM {table} ORDER BY id") == [
        (1, "old", 1), (2, "added", 2)]


def test_upsert_rows_composite_key_and_cache(engine, table2, raw_connect):
    with engine.session_manager() as s:
        s.insert_rows(table2, [{"a": 1, "b": "x", "v": 1}])
        before = s.cache.fetchall(f"SELECT v FROM {table2} WHERE a = %s", (1,))
        s.upsert_rows(table2, [{"a": 1, "b": "x", "v": 5}, {"a": 1, "b": "y", "v": 6}], ["a", "b"])
        after = s.cache.fetchall(f"SELECT v FROM {table2} WHERE a = %s", (1,))
        assert before == [{"v": 1}] and sorted(r["v"] for r in after) == [5, 6]
    assert raw_query(raw_connect(), f"SELECT a, b, v FROM {table2} ORDER BY b") == [(1, "x", 5), (1, "y", 6)]


def test_upsert_rows_empty_is_a_no_op(engine, table):
    s = engine.get_session()
    assert s.upsert_rows(table, [], key_columns="id") == 0
    assert not s.has_connection
    s.close()
