"""Statements logged at DEBUG on "fastsess.statements", parameter values redacted by default."""

from __future__ import annotations

import logging

import pytest

import fastsess

from .helpers_tx import session_settings

SECRET = "hunter2-secret"
LOGGER = "fastsess.statements"


def logged(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def debug_log(caplog):
    """Statement logging on (DEBUG), records captured."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def test_nothing_is_logged_or_formatted_when_debug_is_off(engine, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr(fastsess.session, "_log_statement",
                        lambda *a, **k: pytest.fail("formatted a statement with DEBUG off"))
    with engine.session_manager() as s:
        assert s._log is False
        s.execute("SELECT %s AS v", (SECRET,))
        s.execute_many("SELECT %s", [(1,), (2,)])
    assert logged(caplog) == []


def test_statements_are_logged_with_parameters_redacted(engine, table, debug_log):
    with engine.session_manager() as s:
        s.execute("SELECT %s AS a, %s AS b", (SECRET, 42))
        s.execute(f"SELECT count(*) AS n FROM {table}")
        s.execute_many(f"INSERT INTO {table} (id, name) VALUES (%s, %s)",
                       [(1, SECRET), (2, SECRET), (3, SECRET)])
        s.execute(f"SELECT id FROM {table} WHERE name = %(name)s", {"name": SECRET})
    lines = logged(debug_log)
    assert lines == [
        "SELECT %s AS a, %s AS b  -- parameters redacted: 2 values",
        f"SELECT count(*) AS n FROM {table}",
        f"INSERT INTO {table} (id, name) VALUES (%s, %s)  -- parameters redacted: 3 rows",
        f"SELECT id FROM {table} WHERE name = %(name)s  -- parameters redacted: 1 value",
    ]
    assert SECRET not in debug_log.text


def test_batch_statements_are_redacted_too(engine, dialect, table, debug_log):
    with engine.session_manager() as s:
        s.insert_rows(table, [{"id": i, "name": SECRET, "n": i} for i in range(3)])
        s.insert_rows(table, [{"id": i, "name": SECRET, "n": i} for i in range(100, 250)])
        s.delete_rows(table, [0, 1], "id")
    lines = logged(debug_log)
    assert SECRET not in debug_log.text
    assert any(line.startswith("INSERT INTO") and "redacted" in line for line in lines), lines
    if dialect == "postgresql":  # 150 rows go by COPY
        assert f"COPY {table} (id, name, n) FROM STDIN  -- parameters redacted: 150 rows" in lines
    assert any(line.startswith("DELETE FROM") for line in lines), lines


def test_parameters_shown_when_the_user_opts_in(engine, debug_log):
    with session_settings(log_parameters=True):
        with engine.session_manager() as s:
            s.execute("SELECT %s AS a, %s AS b", (SECRET, 42))
    assert logged(debug_log) == [f"SELECT %s AS a, %s AS b  -- parameters: ('{SECRET}', 42)"]


def test_scopes_log_their_savepoints(engine, debug_log):
    with fastsess.atomic(using=engine) as s:
        with fastsess.atomic(using=engine):
            s.execute("SELECT 1")
    lines = logged(debug_log)
    assert lines[0].startswith("SAVEPOINT fastsess_sp_") and lines[1] == "SELECT 1"
    assert lines[2].startswith("RELEASE SAVEPOINT fastsess_sp_")


def test_log_level_option_and_when_the_level_is_read(engine, caplog):
    caplog.set_level(logging.NOTSET)
    root = logging.getLogger("fastsess")
    before = root.level
    try:
        root.setLevel(logging.INFO)
        s = engine.get_session()
        s.execute("SELECT 1 AS before_debug")
        fastsess.configure_session(log_level="DEBUG")
        # The level is read when a session takes its connection, not per statement.
        s.execute("SELECT 2 AS same_checkout")
        s.close()
        s.execute("SELECT 3 AS next_checkout")
        s.close()
    finally:
        fastsess.configure_session(log_level=None)
        root.setLevel(before)
    assert logged(caplog) == ["SELECT 3 AS next_checkout"]
