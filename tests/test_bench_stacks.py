"""The bench's machinery in-process: the twin copy of fastsess, skip notes, failed stacks."""

from __future__ import annotations

import json
import os
import sys

import pytest

import fastsess
from fastsess.__main__ import main
from fastsess.bench import aio, base, runner, scenarios, stacks, twin
from fastsess.bench.runner import Entry, _drop
from fastsess.bench.scenarios import Impl

from .conftest import URLS


def test_twin_package_runs_the_pure_kernels_beside_the_compiled_ones():
    before = {k: os.environ.get(k) for k in ("FASTSESS_PURE_PYTHON", "FASTSESS_REQUIRE_EXTENSION")}
    package = twin.twin_package()
    assert package.__impl__ == "python"
    assert twin.twin_package() is package  # loaded once
    assert {k: os.environ.get(k) for k in before} == before
    assert fastsess.__impl__ in ("cython", "python")  # untouched
    if fastsess.__impl__ == "python":
        assert package is fastsess and twin.native_missing_reason()
        return
    assert package is not fastsess and package.Engine is not fastsess.Engine
    assert twin.native_missing_reason() == ""
    loaded = [m for m in sys.modules if m.startswith(twin.TWIN_PACKAGE + ".")]
    assert f"{twin.TWIN_PACKAGE}._speedups" not in loaded
    # Everything the copy runs on is the twin, base classes included.
    import fastsess._speedups_py as reference

    impl = sys.modules[f"{twin.TWIN_PACKAGE}._impl"]
    assert impl._k.__name__ == f"{twin.TWIN_PACKAGE}._speedups_py"
    assert impl.rows_to_dicts.__code__.co_filename == reference.__file__
    for module in loaded:
        for value in vars(sys.modules[module]).values():
            if isinstance(value, type):
                assert not any(base.__module__ == "fastsess._speedups" for base in value.__mro__)


def test_twin_engine_reads_rows(url):
    package = twin.twin_package()
    engine = package.create_engine(url, max_size=1)
    try:
        with engine.session_manager() as s:
            assert s.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
    finally:
        engine.close()


def _run(argv, capsys):
    status = main(["bench", "--quick", "--rounds", "1", "--no-progress"] + argv)
    return status, capsys.readouterr()


def _args(dialect, url):
    return ["--only", dialect, "--pg-url" if dialect == "postgresql" else "--mysql-url", url]


def test_missing_packages_are_skipped_with_a_note(dialect, url, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    monkeypatch.setitem(sys.modules, "restalchemy.storage.sql.engines", None)
    status, out = _run(_args(dialect, url) + ["--scenarios", "cycle,mix"], capsys)
    assert status == 0, out.err
    assert "  - SQLAlchemy Core: not run: SQLAlchemy is not installed" in out.out
    assert "  - RESTAlchemy: not run: RESTAlchemy is not installed" in out.out
    assert "  - RESTAlchemy on fastsess: not run: RESTAlchemy is not installed" in out.out
    assert "  raw driver " in out.out and "  fastsess pure " in out.out


def test_integration_module_missing_is_a_note(dialect, url, monkeypatch, capsys):
    pytest.importorskip("restalchemy")
    monkeypatch.setitem(sys.modules, "fastsess.restalchemy", None)
    status, out = _run(_args(dialect, url) + ["--scenarios", "cycle", "--stacks", "ra,ra-fastsess"],
                       capsys)
    assert status == 0, out.err
    assert "  - RESTAlchemy on fastsess: not run: fastsess.restalchemy is not importable" in out.out
    assert "  RESTAlchemy" in out.out


def test_a_stack_with_a_different_result_is_dropped_and_fails_the_run(dialect, url, monkeypatch,
                                                                     capsys):
    real = stacks.FastsessStack.impl

    def wrong(self, key):
        impl = real(self, key)
        if self.key == "fastsess":
            impl.outcome = lambda result: (0, [])
        return impl

    monkeypatch.setattr(stacks.FastsessStack, "impl", wrong)
    if fastsess.__impl__ != "cython":
        pytest.skip("the compiled stack does not run in a pure-Python process")
    status, out = _run(_args(dialect, url) + ["--scenarios", "cycle", "--stacks", "fastsess,pure"],
                       capsys)
    assert status == 1
    assert "  - fastsess: result differs from the raw driver's: item 0: 0 instead of 100" in out.out
    assert "FAILED: " in out.err and "fastsess pure" in out.out


def test_a_stack_that_raises_is_dropped_and_fails_the_run(dialect, url, monkeypatch, capsys):
    real = stacks.FastsessStack.impl

    def broken(self, key):
        impl = real(self, key)
        if self.key == "pure":
            def run():
                raise RuntimeError("boom")
            impl.run = run
        return impl

    monkeypatch.setattr(stacks.FastsessStack, "impl", broken)
    status, out = _run(_args(dialect, url) + ["--scenarios", "fetch", "--stacks", "pure"], capsys)
    assert status == 1
    assert "  - fastsess pure: failed in the warm-up: RuntimeError: boom" in out.out


def _entries():
    nothing = Impl(lambda: None)
    return [
        Entry("raw driver", nothing, stack="raw"),
        Entry("fastsess", nothing, stack="fastsess"),
        Entry("RA", nothing, floor="floor RA", stack="ra"),
        Entry("floor RA", nothing, floor="floor RA"),
        Entry("SA", nothing, floor="floor SA", stack="sqlalchemy"),
        Entry("floor SA", nothing, floor="floor SA"),
    ]


@pytest.mark.parametrize("failing, gone, noted", [
    ("fastsess", {"fastsess"}, {"fastsess"}),  # the shared floor stays
    ("RA", {"RA", "floor RA"}, {"RA"}),
    ("floor SA", {"SA", "floor SA"}, {"SA"}),
    ("raw driver", None, {"raw driver", "fastsess", "RA", "SA"}),
])
def test_drop_takes_what_cannot_be_compared_without_it(failing, gone, noted):
    entries = _entries()
    names = [e.name for e in entries]
    rows = [{"name": n} for n in names]
    failed = {}
    _drop(entries, rows, failed, failing, "boom")
    gone = set(names) if gone is None else gone
    assert [e.name for e in entries] == [n for n in names if n not in gone]
    assert [r["name"] for r in rows] == [n for n in names if n not in gone]
    assert set(failed) == noted


def test_stack_names_are_the_table_order():
    assert list(stacks.STACKS) == ["raw", "fastsess", "pure", "ra", "ra-fastsess", "sqlalchemy"]
    assert runner.FLOOR == "raw driver"
    assert list(base.ASYNC_STACKS) == ["araw", "afastsess", "asqlalchemy", "asyncpg"]
    assert base.ALL_STACKS["araw"] == "raw async driver"
    # The pytest-benchmark files run the sync and the async scenarios apart.
    assert not set(scenarios.SCENARIOS) & set(scenarios.ASYNC_SCENARIOS)
    assert list(scenarios.ALL_SCENARIOS) == list(scenarios.SCENARIOS) + list(scenarios.ASYNC_SCENARIOS)


# -- the async scenarios (issue 12) --------------------------------------------------------

ASYNC = "acycle,apoint,afetch"


def test_async_scenarios_without_their_packages_say_why(dialect, url, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    status, out = _run(_args(dialect, url) + ["--scenarios", ASYNC, "--stacks", "asqlalchemy,asyncpg"],
                       capsys)
    assert status == 0, out.err
    assert out.out.count("  - SQLAlchemy async: not run: SQLAlchemy is not installed") == 3
    assert "fastsess async" not in out.out  # not asked for
    asyncpg = "not applicable: asyncpg speaks PostgreSQL only" if dialect == "mysql" \
        else "not run: asyncpg is not installed"
    assert out.out.count(f"  - asyncpg: {asyncpg}") == 3
    # Without fastsess async the floor runs on a connection of the bench's own.
    assert out.out.count("  raw async driver ") == 3


@pytest.mark.db
def test_async_floor_without_asyncmy_skips_the_mysql_scenarios(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "asyncmy", None)
    # Imported by an earlier test, fastsess's asyncmy adapter would still load.
    monkeypatch.delitem(sys.modules, "fastsess.drivers.mysql_async", raising=False)
    status, out = _run(_args("mysql", URLS["mysql"]) + ["--scenarios", "acycle", "--stacks",
                                                    "afastsess,asqlalchemy"], capsys)
    assert status == 0, out.err
    assert "  - raw async driver: not run: the async driver is not installed" in out.out
    assert "  - SQLAlchemy async: not run: asyncmy is not installed" in out.out
    assert "  stack " not in out.out  # nothing timed


def test_async_stack_with_a_different_result_fails_the_run(dialect, url, monkeypatch, capsys):
    pytest.importorskip("sqlalchemy")
    real = aio.AsyncSQLAlchemyStack.batch

    def wrong(self, key):
        batch, outcome = real(self, key)
        return batch, lambda result: (0, [])

    monkeypatch.setattr(aio.AsyncSQLAlchemyStack, "batch", wrong)
    status, out = _run(_args(dialect, url) + ["--scenarios", "acycle", "--stacks", "asqlalchemy"],
                       capsys)
    assert status == 1
    assert ("  - SQLAlchemy async: result differs from the raw async driver's: item 0: 0 "
            "instead of 100") in out.out
    assert "  raw async driver " in out.out


def test_drop_with_the_async_floor():
    nothing = Impl(lambda: None)
    entries = [Entry("raw async driver", nothing, floor="raw async driver", stack="araw"),
               Entry("fastsess async", nothing, floor="raw async driver", stack="afastsess"),
               Entry("SA", nothing, floor="floor SA", stack="asqlalchemy"),
               Entry("floor SA", nothing, floor="floor SA")]
    rows = [{"name": e.name} for e in entries]
    failed = {}
    _drop(entries, rows, failed, "fastsess async", "boom", "raw async driver")
    assert [e.name for e in entries] == ["raw async driver", "SA", "floor SA"]
    _drop(entries, rows, failed, "raw async driver", "boom", "raw async driver")
    assert entries == [] and rows == [] and set(failed) == {"fastsess async", "raw async driver",
                                                            "SA"}


def test_async_impls_run_on_the_workload_loop(url):
    """Every async floor and stack gives the floor's result, on one loop the caller owns."""
    import asyncio

    from fastsess.bench.scenarios import Workload

    loop = asyncio.new_event_loop()
    w = Workload(url, quick=True, loop=loop)
    opened = []
    try:
        lender = aio.RawAsyncLender(w)
        opened.append(lender)
        for key in ("acycle", "apoint", "afetch"):
            with lender.borrow() as conn:
                floor = aio.afloor_impl(key, w, lambda: conn)
                expected = floor.outcome(floor.run())
            for skey in ("asqlalchemy", "asyncpg", "afastsess"):
                try:
                    stack = next((s for s in opened if s.key == skey), None) \
                        or aio.open_async_stack(skey, w)
                except stacks.Unavailable:
                    continue
                if stack not in opened:
                    opened.append(stack)
                impl = stack.impl(key)
                assert impl.outcome(impl.run()) == expected, (key, skey)
    finally:
        for stack in reversed(opened):
            stack.close()
        w.close()
    assert not loop.is_closed()  # the caller's loop stays open
    loop.close()


# -- the realistic rows (issue 13) ----------------------------------------------------------


def test_rows_are_realistic_and_read_back_as_written(url):
    """What the floor reads back is ``make_row``'s values: non-ASCII text, NULLs, the JSON
    payload and the aware timestamp survive the round trip; a stack that decodes the
    payload other than its driver documents fails the check."""
    from fastsess.bench.scenarios import ROW_COLUMNS, Workload, floor_impl, make_row

    w = Workload(url, quick=True)
    try:
        floor = floor_impl("fetch", w, lambda: w.admin)
        got = sorted(floor.outcome(floor.run()), key=lambda r: r["num"])
        expected = [w.canonical(dict(zip(ROW_COLUMNS, make_row(i))), json_text=False)
                    for i in range(w.n_rows)]
        assert got == expected
        assert any(r["note"] is None for r in got) and any(r["note"] for r in got)
        assert any(not r["name"].isascii() for r in got) and "🦩" in "".join(r["name"] for r in got)
        assert all(r["created_at"].tzinfo is not None for r in got)
        assert any(r["created_at"].microsecond for r in got)
        assert got[5]["payload"]["tags"] == ["café", "東京", "🚀", "sale", "naïve"]
        # The payload as the driver gives it: decoded by psycopg, text from mysqlclient.
        raw = w.admin.cursor()
        raw.execute(w.sql["point"], (w.key(make_row(7)[0]),))
        row = dict(zip(ROW_COLUMNS, raw.fetchone()))
        raw.close()
        assert w.canonical(row) == expected[7]
        if w.dialect == "postgresql":
            with pytest.raises(TypeError):  # json.loads of a dict: text claimed, dict given
                w.canonical(row, json_text=True)
        else:
            assert w.canonical(row, json_text=False) != expected[7]  # text left undecoded
    finally:
        w.close()


def test_insert_digest_compares_values_not_text(url):
    """The insert scenarios' outcome: equal for JSON written with other spacing and escapes,
    different for a changed value or instant."""
    from fastsess.bench.scenarios import Workload, floor_impl

    w = Workload(url, quick=True)
    try:
        floor = floor_impl("insert", w, lambda: w.admin)
        floor.prepare()
        floor.run()
        count, digest = w.insert_digest()
        assert count == len(w.insert_data)
        key = w.insert_data[3][0]
        table = w.insert_table

        def change(sql, params):
            cur = w.admin.cursor()
            cur.execute(f"UPDATE {table} SET {sql} WHERE uuid = %s", params + (key,))
            cur.close()
            return w.insert_digest()

        # The same payload as ASCII-escaped, spaced JSON (MariaDB keeps the text as sent).
        same = json.dumps(w.insert_data[3][-1], ensure_ascii=True, indent=2)
        assert change("payload = %s", (same,)) == (count, digest)
        assert change("score = score + 1", ()) != (count, digest)
        change("score = score - 1", ())
        assert w.insert_digest() == (count, digest)
        assert change("created_at = created_at + INTERVAL '1' SECOND"
                      if w.dialect == "postgresql" else
                      "created_at = created_at + INTERVAL 1 SECOND", ()) != (count, digest)
    finally:
        w.close()
