"""The bench's machinery in-process: the twin copy of fastsess, skip notes, failed stacks."""

from __future__ import annotations

import os
import sys

import pytest

import fastsess
from fastsess.__main__ import main
from fastsess.bench import runner, stacks, twin
from fastsess.bench.runner import Entry, _drop
from fastsess.bench.scenarios import Impl


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
