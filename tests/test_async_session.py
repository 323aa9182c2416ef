"""Async sessions (issue 12) on both servers: the API of ``Session`` with ``await``.

The centrepiece is a differential test: one script of statements, batches and
failing operations runs through a sync ``Session`` and through an
``AsyncSession`` on twin tables, and both must see the same results, the same
errors (class, key, value, parameter, row) and leave the same rows behind.
The other tests pin what the async shell adds: buffered results, lazy
checkout, the query cache, multi-statement batches inside a savepoint, a
closed session, and the session counters.

No pytest-asyncio: each test is a coroutine run by ``run_async`` (tests/conftest.py),
which makes its async engine on the running loop.
"""

from __future__ import annotations

import datetime
import inspect
import json
import uuid
from decimal import Decimal

import pytest

import fastsess
from fastsess import Json, errors
from fastsess.result import Result

from .conftest import KeylessModel, Model, async_backend_id, async_engine, raw_query, run_async

NS = uuid.UUID("8d3c7f9e-3b0a-4c55-9a43-1f0c2a6b7e10")
AWARE = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456,
                          tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
COLUMNS = ["id", "name", "created", "doc", "tags", "amount", "note"]

SCHEMA = {
    "postgresql": {
        "items": "id UUID PRIMARY KEY, name VARCHAR(200) NOT NULL, created TIMESTAMPTZ, "
                 "doc JSONB, tags JSONB, amount NUMERIC(12, 4), note TEXT",
        "links": "id INT PRIMARY KEY, item_id UUID NOT NULL REFERENCES {items} (id)",
        "auto": "id SERIAL PRIMARY KEY, label TEXT",
    },
    "mysql": {
        "items": "id CHAR(36) PRIMARY KEY, name VARCHAR(200) NOT NULL, created DATETIME(6), "
                 "doc JSON, tags JSON, amount DECIMAL(12, 4), note TEXT",
        "links": "id INT PRIMARY KEY, item_id CHAR(36) NOT NULL, "
                 "FOREIGN KEY (item_id) REFERENCES {items} (id)",
        "auto": "id INT AUTO_INCREMENT PRIMARY KEY, label VARCHAR(50)",
    },
}


def key(i: int) -> uuid.UUID:
    return uuid.uuid5(NS, str(i))


def item(i: int, **changes) -> dict:
    """A realistic row: UUID key, non-ASCII text, an aware datetime, a JSON
    dict, a JSON list (``Json``), a Decimal, and a NULL every third row."""
    row = {"id": key(i), "name": f"näme {i} ✓ 日本語 😀", "created": AWARE + datetime.timedelta(minutes=i),
           "doc": {"i": i, "ünï": ["çø", None, True, 1.5], "q": "it's \"q\""},
           "tags": Json([i, "é", {"k": None}]), "amount": Decimal(f"{i}.0125"),
           "note": None if i % 3 == 0 else f"nöte {i}"}
    row.update(changes)
    return row


def values(row: dict) -> tuple:
    return tuple(row[c] for c in COLUMNS)


class OtherModel(Model):
    pass


def make_schema(dialect, raw, prefix):
    """Tables ``items``, ``links`` (FK to items) and ``auto`` with unique names."""
    suffix = uuid.uuid4().hex[:10]
    names = {kind: f"{prefix}_{kind}_{suffix}" for kind in ("items", "links", "auto")}
    tail = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if dialect == "mysql" else ""
    for kind in ("items", "links", "auto"):
        columns = SCHEMA[dialect][kind].format(**names)
        raw_query(raw, f"CREATE TABLE {names[kind]} ({columns}){tail}")
    return names


def drop_schema(dialect, raw, names):
    raw_query(raw, "SET lock_timeout = '30s'" if dialect == "postgresql"
              else "SET SESSION lock_wait_timeout = 30")
    for kind in ("links", "auto", "items"):
        raw_query(raw, f"DROP TABLE IF EXISTS {names[kind]}")


@pytest.fixture
def twin_schemas(dialect, raw_connect):
    """Two identical schemas: one for the sync session, one for the async one."""
    raw = raw_connect()
    made = [make_schema(dialect, raw, "asx"), make_schema(dialect, raw, "asy")]
    yield made
    for names in made:
        drop_schema(dialect, raw, names)


@pytest.fixture
def schema(twin_schemas):
    return twin_schemas[1]


# -- the differential test: sync Session and AsyncSession side by side ----------------------


async def _do(value):
    """``value``, awaited when it is awaitable (the same script drives both sessions)."""
    return await value if inspect.isawaitable(value) else value


def seen(result, dialect) -> dict:
    """Everything a caller can read off a statement's result."""
    assert isinstance(result, Result)
    names = None if result.description is None else [d[0] for d in result.description]
    out = {"names": names, "rowcount": result.rowcount}
    if names is None:
        with pytest.raises(errors.ProgrammingError):
            result.fetchall()  # no result set: the same error on both
        out["rows"] = None
    else:
        out["rows"] = result.fetchall()
    if dialect == "mysql":
        out["lastrowid"] = result.lastrowid
    return out


def failure(exc) -> dict:
    """What a caller can read off an error (not the driver's own ``orig``)."""
    return {"error": type(exc), "key": getattr(exc, "key", None),
            "value": getattr(exc, "value", None), "parameter": getattr(exc, "parameter", None),
            "python_type": getattr(exc, "python_type", None), "row": getattr(exc, "row", None),
            "retryable": getattr(exc, "retryable", None)}


async def script(s, t, dialect) -> list:
    """The same operations through sync or async session ``s`` on schema ``t``;
    returns what each one showed."""
    items, links, auto = t["items"], t["links"], t["auto"]
    ins = (f"INSERT INTO {items} (id, name, created, doc, tags, amount, note) "
           "VALUES (%s, %s, %s, %s, %s, %s, %s)")
    log = []

    async def attempt(label, call):
        """Run an operation expected to fail; the transaction then rolls back."""
        try:
            value = await _do(call())
        except errors.FastsessError as e:
            log.append((label, failure(e)))
        except (TypeError, ValueError) as e:  # batch input checks (not FastsessErrors)
            log.append((label, {"error": type(e), "text": str(e)}))
        else:
            log.append((label, "no error", seen(value, dialect) if isinstance(value, Result)
                        else value))
        await _do(s.rollback())

    # Writes, committed together.
    log.append(seen(await _do(s.execute(ins, values(item(0)))), dialect))
    log.append(seen(await _do(s.execute_many(ins, [values(item(i)) for i in (1, 2, 3)])), dialect))
    # 150 rows: COPY on PostgreSQL, sync and async alike; 600 rows of JSON: COPY inside
    # a savepoint; a float into NUMERIC: COPY refuses it, multi-row INSERTs take the rows.
    log.append(await _do(s.insert_rows(items, [item(i) for i in range(10, 160)])))
    log.append(await _do(s.insert_rows(items, [item(i) for i in range(1000, 1600)])))
    log.append(await _do(s.insert_rows(items, [item(i, amount=i + 0.5)
                                               for i in range(2000, 2120)])))
    log.append(await _do(s.insert_rows(items, [values(item(i)) for i in (4, 5)], columns=COLUMNS)))
    log.append(await _do(s.batch_insert([Model(items, **item(i)) for i in range(200, 205)])))
    log.append(await _do(s.upsert_rows(items, [item(0, name="üpdated ✓"), item(300)], "id")))
    log.append(await _do(s.delete_rows(items, [key(i) for i in range(10, 20)], key_columns="id")))
    log.append(await _do(s.batch_delete([Model(items, **item(i)) for i in (200, 201)])))
    # Some rows already have a NULL note: matched rows and changed rows differ.
    log.append(seen(await _do(s.execute(
        f"UPDATE {items} SET note = NULL WHERE amount < %s", (Decimal("40"),))), dialect))
    log.append(seen(await _do(s.execute(
        f"UPDATE {items} SET doc = %s WHERE id = %s", ({"new": "dïct", "n": [1, 2]}, key(1)))),
        dialect))
    returning = " RETURNING id" if dialect == "postgresql" else ""
    log.append(seen(await _do(s.execute(
        f"INSERT INTO {auto} (label) VALUES (%s){returning}", ("ä",))), dialect))
    log.append(seen(await _do(s.execute(
        f"INSERT INTO {auto} (label) VALUES (%s), (%s){returning}", ("b", None))), dialect))
    log.append(seen(await _do(s.execute(
        f"INSERT INTO {links} (id, item_id) VALUES (%s, %s)", (1, key(0)))), dialect))
    # Reading a result piece by piece.
    result = await _do(s.execute(f"SELECT id, name, amount, note FROM {items} "
                                 "WHERE amount < %s ORDER BY amount", (Decimal("30"),)))
    pieces = [result.rowcount, result.fetchone(), result.fetchmany(2),
              [row for _, row in zip(range(3), result)], result.fetchall(), result.fetchone(),
              result.fetchmany(5)]
    log.append(pieces)
    log.append(await _do(s.commit()))

    # Failures, each rolled back.
    await attempt("duplicate key", lambda: s.execute(ins, values(item(1))))
    await attempt("duplicate in a batch", lambda: s.batch_insert(
        [Model(items, **item(i)) for i in (500, 501, 2)]))
    await attempt("duplicate in a COPY batch", lambda: s.insert_rows(
        items, [item(i) for i in range(3000, 3150)] + [item(1)]))
    await attempt("foreign key", lambda: s.execute(
        f"INSERT INTO {links} (id, item_id) VALUES (%s, %s)", (2, key(999))))
    await attempt("referenced row deleted", lambda: s.execute(
        f"DELETE FROM {items} WHERE id = %s", (key(0),)))
    await attempt("syntax error", lambda: s.execute("SELEC 1"))
    await attempt("unknown table", lambda: s.execute(f"SELECT * FROM {items}_missing"))
    await attempt("set parameter", lambda: s.execute(
        f"UPDATE {items} SET note = %s WHERE id = %s", ({"a", "b"}, key(1))))
    await attempt("object parameter", lambda: s.execute(
        f"UPDATE {items} SET note = %(note)s WHERE id = %(id)s", {"note": object(), "id": key(1)}))
    await attempt("NUL in text", lambda: s.execute(
        f"UPDATE {items} SET note = %s WHERE id = %s", ("nul\x00here", key(1))))
    await attempt("dict into a text column", lambda: s.execute(
        f"UPDATE {items} SET note = %s WHERE id = %s", ({"ü": [1, None]}, key(1))))
    # (A refused parameter set in execute_many: test_execute_many_refuses_before_sending_any.)
    # (A refused parameter in a batch: test_refused_parameter_in_a_batch_is_named_alike.)
    await attempt("set in upsert_rows", lambda: s.upsert_rows(
        items, [item(600), item(601, note={"x"})], "id"))
    await attempt("mixed model types", lambda: s.batch_insert(
        [Model(items, **item(700)), OtherModel(items, **item(701))]))
    await attempt("model without a key", lambda: s.batch_delete([KeylessModel(items, **item(1))]))
    await attempt("bad identifier", lambda: s.delete_rows('bad"`name', [key(1)], "id"))
    await attempt("too few parameters", lambda: s.execute(
        f"SELECT * FROM {items} WHERE id = %s AND name = %s", (key(1),)))

    # What is left.
    final = await _do(s.execute(f"SELECT {', '.join(COLUMNS)} FROM {items} ORDER BY id"))
    log.append(final.fetchall())
    log.append((await _do(s.execute(f"SELECT id, item_id FROM {links} ORDER BY id"))).fetchall())
    log.append((await _do(s.execute(f"SELECT id, label FROM {auto} ORDER BY id"))).fetchall())
    await _do(s.commit())
    return log


def count_copies(engine, monkeypatch, outcomes):
    """Record in ``outcomes`` how each of ``engine``'s COPY attempts ended."""
    adapter = engine._adapter
    real = adapter.copy_insert

    def note(outcome):
        outcomes.append(outcome)

    if inspect.iscoroutinefunction(real):
        async def copy_insert(*args):
            try:
                n = await real(*args)
            except BaseException as e:
                note(type(e).__name__)
                raise
            note(n)
            return n
    else:
        def copy_insert(*args):
            try:
                n = real(*args)
            except BaseException as e:
                note(type(e).__name__)
                raise
            note(n)
            return n
    monkeypatch.setattr(adapter, "copy_insert", copy_insert)


@run_async
async def test_sync_and_async_sessions_show_the_same_rows_and_errors(dialect, url, twin_schemas,
                                                                     raw_connect, monkeypatch):
    sync_schema, async_schema = twin_schemas
    sync_copies, async_copies = [], []
    sync_engine = fastsess.create_engine(url, max_size=2, timeout=5)
    count_copies(sync_engine, monkeypatch, sync_copies)
    try:
        with sync_engine.session_manager() as s:
            expected = await script(s, sync_schema, dialect)
    finally:
        sync_engine.close()
    async with async_engine(url, max_size=2) as engine:
        count_copies(engine, monkeypatch, async_copies)
        async with engine.session_manager() as s:
            assert isinstance(s, fastsess.AsyncSession)
            got = await script(s, async_schema, dialect)
        assert engine.pool_stats()["in_use"] == 0

    # Both went by COPY on PostgreSQL, with the same outcomes; MySQL has no COPY.
    assert async_copies == sync_copies == ([150, 600, "CopyRefused", "UniqueViolation"]
                                           if dialect == "postgresql" else [])
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a == b, f"step {i}: async {a!r} != sync {b!r}"

    # And what both showed is right, not merely equal.
    by_label = {entry[0]: entry[1] for entry in got if isinstance(entry, tuple)}
    pg = dialect == "postgresql"
    assert by_label["duplicate key"]["error"] is errors.ConflictError
    assert (by_label["duplicate key"]["key"], by_label["duplicate key"]["value"]) == \
        (("id", str(key(1))) if pg else ("PRIMARY", str(key(1))))
    assert by_label["duplicate in a batch"]["error"] is errors.ConflictError
    assert by_label["duplicate in a batch"]["value"] == str(key(2))
    assert by_label["duplicate in a COPY batch"]["error"] is errors.ConflictError
    assert by_label["duplicate in a COPY batch"]["value"] == str(key(1))
    assert by_label["foreign key"]["error"] is errors.ForeignKeyViolation
    assert by_label["referenced row deleted"]["error"] is errors.ForeignKeyViolation
    assert by_label["syntax error"]["error"] is errors.ProgrammingError
    assert issubclass(by_label["unknown table"]["error"], errors.ProgrammingError)
    assert by_label["set parameter"] == failure(errors.UnsupportedParameter("x", parameter=0,
                                                                           python_type=set))
    assert (by_label["object parameter"]["error"], by_label["object parameter"]["parameter"],
            by_label["object parameter"]["python_type"]) == (errors.UnsupportedParameter, "note",
                                                             object)
    if pg:
        assert (by_label["NUL in text"]["error"], by_label["NUL in text"]["parameter"]) == \
            (errors.InvalidParameterValue, 0)
    else:
        assert by_label["NUL in text"] == "no error"
    assert by_label["dict into a text column"] == "no error"
    assert (by_label["set in upsert_rows"]["error"], by_label["set in upsert_rows"]["parameter"],
            by_label["set in upsert_rows"]["python_type"]) == (errors.UnsupportedParameter, 13, set)
    assert by_label["mixed model types"]["error"] is TypeError
    assert by_label["model without a key"]["error"] is ValueError
    assert by_label["bad identifier"]["error"] is ValueError
    assert by_label["too few parameters"]["error"] is errors.ProgrammingError

    inserted = {0, 1, 2, 3, 4, 5, *range(20, 160), *range(1000, 1600), *range(2000, 2120),
                202, 203, 204, 300}
    final_items, final_links, final_auto = got[-3:]
    ident = (lambda i: key(i)) if pg else (lambda i: str(key(i)))
    assert sorted(str(r["id"]) for r in final_items) == sorted(str(key(i)) for i in inserted)
    by_id = {r["id"]: r for r in final_items}
    assert by_id[ident(0)]["name"] == "üpdated ✓"
    assert by_id[ident(300)]["name"] == "näme 300 ✓ 日本語 😀"
    assert by_id[ident(300)]["amount"] == Decimal("300.0125")
    assert by_id[ident(300)]["note"] is None  # 300 % 3 == 0
    assert by_id[ident(2001)]["amount"] == Decimal("2001.5")  # refused by COPY, INSERTed
    doc = by_id[ident(1599)]["doc"]  # from the 600-row COPY of JSON
    assert (doc if pg else json.loads(doc)) == item(1599)["doc"]
    doc = by_id[ident(1)]["doc"]
    assert (doc if pg else json.loads(doc)) == {"new": "dïct", "n": [1, 2]}
    tags = by_id[ident(5)]["tags"]
    assert (tags if pg else json.loads(tags)) == [5, "é", {"k": None}]
    created = by_id[ident(5)]["created"]
    if pg:
        assert created == AWARE + datetime.timedelta(minutes=5)
    assert final_links == [{"id": 1, "item_id": ident(0)}]
    assert [r["label"] for r in final_auto] == ["ä", "b", None]
    # The rows the raw driver reads match what the sessions read back.
    count = raw_query(raw_connect(), f"SELECT count(*) FROM {async_schema['items']}")[0][0]
    assert count == len(inserted)


# -- results -------------------------------------------------------------------------------


@run_async
async def test_buffered_result_reads_like_a_cursor(dialect, url, schema):
    items, auto = schema["items"], schema["auto"]
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            n = await s.insert_rows(items, [item(i) for i in range(1, 8)])
            assert n == 7
            result = await s.execute(f"SELECT id, name, note FROM {items} WHERE amount > %s "
                                     "ORDER BY amount", (Decimal("1.5"),))
            assert type(result).__name__ == "BufferedResult"
            assert result.rowcount == 6
            assert [d[0] for d in result.description] == ["id", "name", "note"]
            assert result.keys() == ["id", "name", "note"]
            ident = (lambda i: key(i)) if dialect == "postgresql" else (lambda i: str(key(i)))
            expected = [{"id": ident(i), "name": f"näme {i} ✓ 日本語 😀",
                         "note": None if i % 3 == 0 else f"nöte {i}"} for i in range(2, 8)]
            assert result.fetchone() == expected[0]
            assert result.fetchmany(2) == expected[1:3]
            assert next(iter(result)) == expected[3]
            assert result.fetchall() == expected[4:]
            assert result.fetchone() is None and result.fetchall() == [] and list(result) == []
            # Fresh dicts: changing one does not change what a second fetch gives.
            again = await s.execute(f"SELECT name FROM {items} WHERE id = %s", (key(2),))
            first = again.fetchall()
            first[0]["name"] = "changed"
            assert list(again) == []

            write = await s.execute(f"INSERT INTO {auto} (label) VALUES (%s)", ("x",))
            assert write.rowcount == 1 and write.description is None
            with pytest.raises(errors.ProgrammingError):
                write.fetchone()
            if dialect == "mysql":
                assert isinstance(write.lastrowid, int) and write.lastrowid >= 1
                second = await s.execute(f"INSERT INTO {auto} (label) VALUES ('y')")
                assert second.lastrowid == write.lastrowid + 1
            else:
                assert write.lastrowid is None
            empty = await s.execute(f"SELECT id FROM {items} WHERE 1 = 0")
            assert (empty.rowcount, empty.fetchall(), empty.fetchone()) == (0, [], None)
            # %% is a literal percent when there are parameters.
            pct = await s.execute("SELECT %s AS a, '100%%' AS b", ("x",))
            assert pct.fetchall() == [{"a": "x", "b": "100%"}]


# -- lazy checkout, close, SessionClosed -----------------------------------------------------


@run_async
async def test_lazy_checkout_and_close(dialect, url, schema, raw_connect):
    async with async_engine(url, max_size=2) as engine:
        s = engine.get_session()
        assert isinstance(s, fastsess.AsyncSession)
        stats = engine.pool_stats()
        assert (stats["checkouts"], stats["in_use"], stats["size"]) == (0, 0, 0)
        assert not s.has_connection and not s.closed
        await s.commit()  # nothing to commit: still no connection
        await s.rollback()
        assert engine.pool_stats()["checkouts"] == 0
        first = await async_backend_id(s)
        assert s.has_connection
        stats = engine.pool_stats()
        assert (stats["checkouts"], stats["in_use"], stats["size"]) == (1, 1, 1)
        await s.close()
        await s.close()  # idempotent
        assert s.closed and not s.has_connection
        assert engine.pool_stats()["in_use"] == 0
        # A closed async session is not taken up again.
        with pytest.raises(errors.SessionClosed):
            await s.execute("SELECT 1")
        assert engine.pool_stats()["checkouts"] == 1
        # The connection went back clean and serves the next session.
        async with engine.session_manager() as s2:
            assert await async_backend_id(s2) == first
        stats = engine.pool_stats()
        # The first was closed inside the transaction its SELECT began (PostgreSQL;
        # on MySQL a SELECT that reads no table begins none): rolled back on
        # checkin; the scope committed the second.  One connection served both.
        rolled_back = 1 if dialect == "postgresql" else 0
        assert (stats["connections_opened"], stats["rollbacks_on_checkin"], stats["in_use"]) == \
            (1, rolled_back, 0)
        # Committed first: nothing to roll back on checkin.
        s3 = engine.get_session()
        await s3.execute("SELECT 1")
        await s3.commit()
        await s3.close()
        assert engine.pool_stats()["rollbacks_on_checkin"] == rolled_back
        # `async with session` closes it (the write's transaction rolled back on checkin).
        async with engine.get_session() as s4:
            await s4.execute(f"INSERT INTO {schema['auto']} (label) VALUES ('never')")
        assert s4.closed
        stats = engine.pool_stats()
        assert (stats["in_use"], stats["rollbacks_on_checkin"], stats["connections_opened"]) == \
            (0, rolled_back + 1, 1)
    assert raw_query(raw_connect(), f"SELECT count(*) FROM {schema['auto']}") == [(0,)]


@run_async
async def test_session_of_a_closed_engine_raises_session_closed(dialect, url):
    async with async_engine(url) as engine:
        s = engine.get_session()
        await engine.close()
        with pytest.raises(errors.SessionClosed):
            await s.execute("SELECT 1")
        with pytest.raises(errors.EngineClosed):
            engine.get_session()


# -- the query cache -----------------------------------------------------------------------


@run_async
async def test_query_cache_hits_and_is_emptied_by_writes(dialect, url, schema):
    items = schema["items"]
    sql = f"SELECT id, name FROM {items} WHERE amount > %s ORDER BY amount"
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            await s.insert_rows(items, [item(1), item(2)])
            cache = s.cache
            assert s.cache is cache
            first = await cache.fetchall(sql, (Decimal(0),))
            assert [r["name"] for r in first] == ["näme 1 ✓ 日本語 😀", "näme 2 ✓ 日本語 😀"]
            assert cache.hits == 0
            again = await cache.fetchall(sql, (Decimal(0),))
            assert again == first and cache.hits == 1
            # Other parameters: another entry, a miss.
            assert len(await cache.fetchall(sql, (Decimal(2),))) == 1 and cache.hits == 1
            # A write through execute empties the cache: the new row is seen.
            await s.execute(f"INSERT INTO {items} (id, name, amount) VALUES (%s, %s, %s)",
                            (key(3), "thrée", Decimal(3)))
            third = await cache.fetchall(sql, (Decimal(0),))
            assert cache.hits == 1 and [r["name"] for r in third][-1] == "thrée"
            assert await cache.fetchall(sql, (Decimal(0),)) == third and cache.hits == 2
            # So does a batch write, and a rollback.
            await s.delete_rows(items, [key(3)], "id")
            assert len(await cache.fetchall(sql, (Decimal(0),))) == 2 and cache.hits == 2
            await s.rollback()
            assert await cache.fetchall(sql, (Decimal(0),)) == [] and cache.hits == 2
            # A locking read is never cached.
            lock = f"SELECT id FROM {items} WHERE amount > %s FOR UPDATE"
            await cache.fetchall(lock, (Decimal(0),))
            await cache.fetchall(lock, (Decimal(0),))
            assert cache.hits == 2


# -- batches of several statements run inside a savepoint ------------------------------------


@run_async
async def test_batch_of_several_statements_fails_whole_and_the_transaction_goes_on(
        dialect, url, schema, raw_connect):
    items = schema["items"]
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {items} (id, name) VALUES (%s, 'before')", (str(key(37)),))
    async with async_engine(url) as engine:
        # 7 columns and at most 14 parameters a statement: 2 rows a chunk.
        engine._adapter.max_params = 14
        async with engine.session_manager() as s:
            await s.execute(f"INSERT INTO {items} (id, name) VALUES (%s, %s)", (key(-1), "same tx"))
            assert await s.insert_rows(items, [item(i) for i in range(1, 8)]) == 7  # 4 statements
            with pytest.raises(errors.ConflictError) as caught:
                await s.insert_rows(items, [item(i) for i in range(30, 40)])  # 37: 4th statement
            assert caught.value.value == str(key(37))
            # The savepoint undid the batch's first three statements, nothing else.
            count = (await s.execute(f"SELECT count(*) AS n FROM {items}")).fetchone()["n"]
            assert count == 1 + 1 + 7
            assert await s.delete_rows(items, [key(i) for i in range(1, 8)], "id") == 7
    assert sorted(raw_query(raw, f"SELECT name FROM {items}")) == [("before",), ("same tx",)]


# -- the session counters ------------------------------------------------------------------


async def counted(run):
    """The session counters' deltas over ``await run()``."""
    fastsess.reset_session_stats()
    await run()
    stats = fastsess.get_session_stats()
    return {name: stats[name] for name in ("session_count", "committed_transactions",
                                           "failed_transactions", "total_transactions",
                                           "rollbacks")}


@run_async
async def test_session_stats_count_async_sessions_and_transactions(dialect, url, schema):
    items = schema["items"]
    insert = f"INSERT INTO {items} (id, name) VALUES (%s, %s)"
    async with async_engine(url) as engine:
        active_before = fastsess.get_session_stats()["active_sessions"]

        async def sessions():
            # 1: committed by the scope
            async with engine.session_manager() as s:
                await s.execute(insert, (key(1), "a"))
            # 2: failed (the block raised): rolled back
            with pytest.raises(RuntimeError):
                async with engine.session_manager() as s:
                    await s.execute(insert, (key(2), "b"))
                    raise RuntimeError("roll back")
            # 3: two commits and a rollback asked for, in one session
            s = engine.get_session()
            await s.execute(insert, (key(3), "c"))
            await s.commit()
            await s.execute(insert, (key(4), "d"))
            await s.commit()
            await s.execute(insert, (key(5), "e"))
            await s.rollback()
            await s.commit()  # nothing ran since: no transaction to count
            assert fastsess.get_session_stats()["active_sessions"] == active_before + 1
            await s.close()
            # 4: nothing ran: no transaction
            async with engine.session_manager():
                pass
            # 5: a refused parameter is caught; nothing was sent, the scope commits
            async with engine.session_manager() as s:
                with pytest.raises(errors.UnsupportedParameter):
                    await s.execute(insert, (key(6), {1}))
                await s.execute(insert, (key(6), "f"))

        assert await counted(sessions) == {
            "session_count": 5, "committed_transactions": 4, "failed_transactions": 1,
            "total_transactions": 5, "rollbacks": 2}
        assert fastsess.get_session_stats()["active_sessions"] == active_before
        assert engine.pool_stats()["in_use"] == 0


@run_async
async def test_session_stats_of_a_refused_commit_match_a_sync_session(dialect, url, schema):
    """A duplicate key caught, then commit(): PostgreSQL refuses the commit
    (the error aborted the transaction), MySQL commits the rest.  The async
    session counts exactly what a sync one counts."""
    items = schema["items"]
    insert = f"INSERT INTO {items} (id, name) VALUES (%s, %s)"

    async def run(engine, k):
        s = engine.get_session()
        try:
            await _do(s.execute(insert, (key(k), "first")))
            with pytest.raises(errors.ConflictError):
                await _do(s.execute(insert, (key(k), "again")))
            if dialect == "postgresql":
                with pytest.raises(errors.TransactionAborted):
                    await _do(s.commit())
            else:
                await _do(s.commit())
        finally:
            await _do(s.close())

    sync_engine = fastsess.create_engine(url, max_size=1)
    try:
        sync_counts = await counted(lambda: run(sync_engine, 1))
    finally:
        sync_engine.close()
    async with async_engine(url) as engine:
        async_counts = await counted(lambda: run(engine, 2))
    assert async_counts == sync_counts
    assert async_counts["session_count"] == 1
    assert async_counts["committed_transactions"] == (0 if dialect == "postgresql" else 1)


# -- parameters refused before anything is sent ---------------------------------------------


@pytest.mark.parametrize("session_kind", ["sync", "async"])
@run_async
async def test_execute_many_refuses_before_sending_any(dialect, url, schema, raw_connect,
                                                       session_kind):
    """README "Parameters": execute_many checks every parameter set first;
    the error names the parameter and the set (``.row``), nothing is stored
    and the transaction goes on and can commit."""
    items = schema["items"]
    raw = raw_connect()
    raw_query(raw, f"INSERT INTO {items} (id, name) VALUES (%s, 'a'), (%s, 'b')",
              (str(key(1)), str(key(2))))
    update = f"UPDATE {items} SET name = %s WHERE id = %s"
    if session_kind == "sync":
        engine = fastsess.create_engine(url, max_size=1)
    else:
        engine = fastsess.create_async_engine(url, max_size=1)
    try:
        s = engine.get_session()
        try:
            with pytest.raises(errors.UnsupportedParameter) as caught:
                await _do(s.execute_many(update, [("changed", key(1)), (frozenset({1}), key(2))]))
            await _do(s.execute(update, ("after", key(2))))
            await _do(s.commit())
        finally:
            await _do(s.close())
    finally:
        await _do(engine.close())
    # Nothing of the refused execute_many was stored, although the session committed.
    assert sorted(raw_query(raw, f"SELECT name FROM {items}")) == [("a",), ("after",)]
    err = caught.value
    assert (err.parameter, err.row, err.python_type) == (0, 1, frozenset)


BATCHES = {
    "insert_rows": lambda s, t: s.insert_rows(t, [item(1), item(2, note={"x"})]),
    "batch_insert": lambda s, t: s.batch_insert([Model(t, **item(1)), Model(t, **item(2, note={"x"}))]),
    "upsert_rows": lambda s, t: s.upsert_rows(t, [item(1), item(2, note={"x"})], "id"),
    "delete_rows": lambda s, t: s.delete_rows(t, [key(1), {"x"}], "id"),
}


@pytest.mark.parametrize("batch", sorted(BATCHES))
@run_async
async def test_refused_parameter_in_a_batch_is_named_alike(dialect, url, schema,
                                                           raw_connect, batch):
    """The same refused value in the same batch gives the same error in a sync
    and an async session: README "Parameters" — in a batch statement its
    position there, in MySQL's batch INSERTs its column and the row's index."""
    items = schema["items"]
    seen_errors = []
    sync_engine = fastsess.create_engine(url, max_size=1)
    try:
        with sync_engine.session_manager() as s:
            with pytest.raises(errors.UnsupportedParameter) as caught:
                BATCHES[batch](s, items)
            seen_errors.append(failure(caught.value))
    finally:
        sync_engine.close()
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            with pytest.raises(errors.UnsupportedParameter) as caught:
                await BATCHES[batch](s, items)
            seen_errors.append(failure(caught.value))
            # Nothing was sent: the transaction goes on and commits.
            await s.execute(f"INSERT INTO {items} (id, name) VALUES (%s, 'after')", (key(9),))
    assert seen_errors[1] == seen_errors[0]
    assert seen_errors[1]["python_type"] is set
    assert raw_query(raw_connect(), f"SELECT name FROM {items}") == [("after",)]


# -- a read-only engine ------------------------------------------------------------------------


@run_async
async def test_readonly_async_engine_refuses_writes(dialect, url, schema, raw_connect):
    items = schema["items"]
    raw_query(raw_connect(), f"INSERT INTO {items} (id, name) VALUES (%s, 'there')",
              (str(key(1)),))
    async with async_engine(url, readonly=True) as engine:
        for _ in range(2):  # each transaction, on the same connection
            async with engine.session_manager() as s:
                rows = (await s.execute(f"SELECT name FROM {items}")).fetchall()
                assert rows == [{"name": "there"}]
                with pytest.raises(errors.ReadOnlyViolation):
                    await s.insert_rows(items, [item(2)])
                await s.rollback()
        assert engine.pool_stats()["connections_opened"] == 1
    assert raw_query(raw_connect(), f"SELECT count(*) FROM {items}") == [(1,)]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
@run_async
async def test_commit_that_raises_is_translated_and_counted_as_failed(dialect, url, raw_connect):
    """A deferred unique check fails at COMMIT: the error is the same
    ConflictError as at INSERT time, the transaction counts as failed, nothing
    is stored and the connection (not lost) is kept."""
    name = f"asd_{uuid.uuid4().hex[:10]}"
    raw = raw_connect()
    raw_query(raw, f"CREATE TABLE {name} (id INT, k UUID, "
                   f"CONSTRAINT {name}_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)")
    try:
        async with async_engine(url) as engine:
            fastsess.reset_session_stats()
            with pytest.raises(errors.ConflictError) as caught:
                async with engine.session_manager() as s:
                    await s.execute(f"INSERT INTO {name} (id, k) VALUES (1, %s), (2, %s)",
                                    (key(1), key(1)))
            err = caught.value
            assert not isinstance(err, errors.CommitOutcomeUnknown)
            assert (err.key, err.value) == ("k", str(key(1)))
            stats = fastsess.get_session_stats()
            assert (stats["committed_transactions"], stats["failed_transactions"]) == (0, 1)
            pool = engine.pool_stats()
            assert (pool["in_use"], pool["idle"], pool["connections_discarded"]) == (0, 1, 0)
        assert raw_query(raw, f"SELECT count(*) FROM {name}") == [(0,)]
    finally:
        raw_query(raw, f"DROP TABLE IF EXISTS {name}")


@run_async
async def test_a_server_warning_costs_no_round_trip_and_no_log(dialect, url, caplog):
    """asyncmy would send SHOW WARNINGS after a statement the server warned
    about and log each warning; fastsess's cursor does neither (as mysqlclient)."""
    if dialect != "mysql":
        pytest.skip("asyncmy's SHOW WARNINGS round trip is MySQL's")
    status = "SHOW SESSION STATUS LIKE 'Com_show_warnings'"
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            before = int((await s.execute(status)).fetchone()["Value"])
            with caplog.at_level("WARNING"):
                got = (await s.execute("SELECT CAST(%s AS SIGNED) AS n", ("12ab",))).fetchall()
                warned = (await s.execute("SHOW WARNINGS")).fetchall()
            after = int((await s.execute(status)).fetchone()["Value"])
    assert got == [{"n": 12}]
    assert [w["Code"] for w in warned] == [1292]  # the server did warn
    assert after - before == 1  # our own SHOW WARNINGS only
    assert not [r for r in caplog.records if r.name.startswith("asyncmy")]


@run_async
async def test_unencodable_text_is_an_invalid_value_in_async_sessions(dialect, url):
    """As in sync sessions (tests/test_parameters.py): a lone surrogate is an
    InvalidParameterValue naming its parameter, and the session goes on."""
    async with async_engine(url) as engine:
        async with engine.session_manager() as s:
            for value in ("näme \ud800", {"ü": "\udfff"}):
                with pytest.raises(errors.InvalidParameterValue) as caught:
                    await s.execute("SELECT %s AS a, %s AS b", (1, value))
                assert caught.value.parameter == 1
                assert isinstance(caught.value.orig, UnicodeEncodeError)
            assert (await s.execute("SELECT 1 AS one")).fetchall() == [{"one": 1}]
        assert engine.pool_stats()["connections_discarded"] == 0
