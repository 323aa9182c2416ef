"""session_scope, with_session and configure_session."""

from __future__ import annotations

import contextlib
import inspect

import pytest

import fastsess
from fastsess import errors, session_scope, with_session

from .helpers_tx import ids, registered, session_settings


class Boom(Exception):
    pass


def insert(session, table, value):
    session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (value,))


# -- session_scope -----------------------------------------------------------------


def test_scope_commits_closes_and_makes_the_session_current(engine, table, raw_connect):
    with session_scope(using=engine) as s:
        assert fastsess.current_session(engine) is s
        with session_scope(using=engine) as nested:
            assert nested is s
            insert(s, table, 1)
        assert not s.closed and ids(raw_connect(), table) == []  # the nested scope did not commit
        with engine.session_manager() as joined:  # RESTAlchemy-style code joins too
            assert joined is s
    assert s.closed and engine.pool_stats()["in_use"] == 0
    assert ids(raw_connect(), table) == [1]
    with pytest.raises(fastsess.SessionNotFound, match="no session is current"):
        fastsess.current_session(engine)


def test_scope_rolls_back_and_reraises(engine, table, raw_connect):
    with pytest.raises(Boom):
        with session_scope(engine) as s:  # using= is the first parameter
            insert(s, table, 1)
            with session_scope(using=engine):
                raise Boom()  # a nested failure rolls back the whole transaction
    assert s.closed and ids(raw_connect(), table) == []


def test_auto_commit_false_keeps_only_what_the_block_committed(engine, table, raw_connect):
    with session_scope(using=engine, auto_commit=False) as s:
        insert(s, table, 1)
        s.commit()  # allowed: no atomic block is open
        insert(s, table, 2)
    assert s.closed and ids(raw_connect(), table) == [1]


def test_auto_rollback_false_still_never_commits_a_failed_block(engine, table, raw_connect):
    fastsess.reset_session_stats()
    with pytest.raises(Boom):
        with session_scope(using=engine, auto_rollback=False) as s:
            insert(s, table, 1)
            raise Boom()
    assert ids(raw_connect(), table) == []
    stats = fastsess.get_session_stats()
    assert stats["rollbacks"] == 0  # no ROLLBACK of its own: closing the session discarded the work
    assert stats["failed_transactions"] == 1
    assert engine.pool_stats()["rollbacks_on_checkin"] == 1


def test_readonly_scope_refuses_writes(engine, dialect, table, raw_connect):
    # On PostgreSQL the refused write aborts the transaction, so the scope's
    # COMMIT is refused too (TransactionAborted); MySQL fails the statement only.
    aborts = dialect == "postgresql"
    with pytest.raises(errors.TransactionAborted) if aborts else contextlib.nullcontext():
        with session_scope(using=engine, readonly=True) as s:
            assert s.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0
            with pytest.raises(errors.ReadOnlyViolation):
                insert(s, table, 1)
    # The next transaction on the same pooled connection is read-write again.
    with session_scope(using=engine) as s:
        insert(s, table, 2)
    assert ids(raw_connect(), table) == [2]
    assert engine.pool_stats()["connections_opened"] == 1


def test_given_session_is_made_current_and_left_untouched(engine, table, raw_connect):
    own = engine.get_session()
    try:
        with session_scope(session=own) as s:
            assert s is own
            with session_scope(using=engine) as nested:
                assert nested is own
                insert(own, table, 1)
            with session_scope(session=own):  # already current: nothing to do
                assert fastsess.current_session(engine) is own
        assert not own.closed and ids(raw_connect(), table) == []
        with pytest.raises(fastsess.SessionNotFound):
            fastsess.current_session(engine)
        own.commit()
    finally:
        own.close()
    assert ids(raw_connect(), table) == [1]


def test_scope_options_are_checked(engine):
    with pytest.raises(TypeError, match="cannot run itself again"):
        session_scope(using=engine, retry_attempts=2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        session_scope(using=engine, autocommit=True)
    scope = session_scope(using=engine)
    with scope:
        with pytest.raises(RuntimeError, match="already in use"):
            scope.__enter__()
    with scope:  # reusable once exited
        pass


def test_default_engine_from_the_registry(url, table, raw_connect):
    with registered(url, "default") as default:
        with session_scope() as s:
            assert s.engine is default
            insert(s, table, 1)
            assert fastsess.current_session() is s
    assert ids(raw_connect(), table) == [1]
    fastsess.destroy_engine("default")
    with pytest.raises(errors.EngineNotFound):
        with session_scope():
            pass


# -- with_session --------------------------------------------------------------------


def test_with_session_injects_the_first_argument(engine, table, raw_connect):
    @with_session(using=engine)
    def add(session, value, *, twice=False):
        insert(session, table, value)
        if twice:
            insert(session, table, value + 100)
        return session

    s = add(1)
    assert s.closed
    add(2, twice=True)
    assert add.__name__ == "add"
    # Callers (and frameworks that read signatures) see what they pass.
    assert str(inspect.signature(add)) == "(value, *, twice=False)"
    assert ids(raw_connect(), table) == [1, 2, 102]


def test_with_session_bare_decorator(url, table, raw_connect):
    with registered(url, "default"):
        @with_session
        def add(session, value):
            insert(session, table, value)

        add(1)
    assert ids(raw_connect(), table) == [1]


def test_with_session_named_parameter_and_methods(engine, table, raw_connect):
    class Repo:
        @with_session(using=engine)
        def add(self, session, value):  # found by its name, after self
            insert(session, table, value)
            return self

        @with_session(using=engine, session_arg="db")
        def add_kw(self, value, *, db):
            insert(db, table, value)

    repo = Repo()
    assert repo.add(1) is repo
    repo.add(value=2)
    repo.add_kw(3)

    @with_session(using=engine, session_arg="conn")
    def anywhere(value, conn=None):
        insert(conn, table, value)

    anywhere(4)
    anywhere(value=5)
    assert ids(raw_connect(), table) == [1, 2, 3, 4, 5]
    with pytest.raises(TypeError, match="no parameter 'nope'"):
        with_session(session_arg="nope")(lambda x: x)
    with pytest.raises(TypeError, match="no positional parameter"):
        with_session()(lambda *, x: x)


def test_caller_supplied_session_is_used_untouched(engine, table, raw_connect):
    seen = []

    @with_session(using=engine)
    def add(session, value):
        seen.append(session)
        assert fastsess.current_session(engine) is session
        insert(session, table, value)

    own = engine.get_session()
    try:
        add(own, 1)              # positionally
        add(2, session=own)      # by keyword
        add(value=3, session=own)
        assert seen == [own, own, own]
        assert not own.closed and ids(raw_connect(), table) == []  # not committed for us
        add(4, session=None)     # None: not passed, a session is injected
        assert seen[-1] is not own
        own.commit()
    finally:
        own.close()
    assert ids(raw_connect(), table) == [1, 2, 3, 4]


def test_nested_with_session_reuses_the_outer_session(engine, table, raw_connect):
    @with_session(using=engine)
    def inner(session, value):
        insert(session, table, value)
        return session

    @with_session(using=engine)
    def outer(session, fail):
        assert inner(1) is session
        assert inner(2) is session
        if fail:
            raise Boom()

    with pytest.raises(Boom):
        outer(True)
    assert ids(raw_connect(), table) == []
    outer(False)
    assert ids(raw_connect(), table) == [1, 2]


def test_with_session_options(engine, table, raw_connect):
    @with_session(using=engine, auto_commit=False)
    def not_committed(session):
        insert(session, table, 1)

    @with_session(using=engine, readonly=True)
    def reads(session):
        return session.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]

    not_committed()
    assert reads() == 0
    assert ids(raw_connect(), table) == []


def test_with_session_refuses_coroutine_functions():
    async def handler(session):
        pass

    with pytest.raises(TypeError, match="not supported yet"):
        with_session(handler)


# -- configure_session ---------------------------------------------------------------


def test_global_defaults_and_per_call_overrides(engine, table, raw_connect):
    @with_session(using=engine)
    def follows_default(session, value):
        insert(session, table, value)

    @with_session(using=engine, auto_commit=True)
    def always_commits(session, value):
        insert(session, table, value)

    with session_settings(auto_commit=False):
        follows_default(1)          # decorated before: the default is read per call
        always_commits(2)
        with session_scope(using=engine) as s:
            insert(s, table, 3)
        with session_scope(using=engine, auto_commit=True) as s:
            insert(s, table, 4)
        assert fastsess.get_session_config()["auto_commit"] is False
    assert fastsess.get_session_config()["auto_commit"] is True
    follows_default(5)
    assert ids(raw_connect(), table) == [2, 4, 5]

    with session_settings(auto_rollback=False):
        fastsess.reset_session_stats()
        with pytest.raises(Boom):
            with session_scope(using=engine) as s:
                insert(s, table, 6)
                raise Boom()
        assert fastsess.get_session_stats()["rollbacks"] == 0
    assert ids(raw_connect(), table) == [2, 4, 5]


def test_configure_session_validates_and_reports(caplog):
    config = fastsess.configure_session()
    assert config == fastsess.get_session_config()
    assert {"auto_commit", "auto_rollback", "enable_monitoring", "log_level", "retry_attempts",
            "retry_delay"} <= set(config)
    with pytest.raises(TypeError, match="unknown session option"):
        fastsess.configure_session(autocommit=False)
    for bad in ({"auto_commit": "yes"}, {"retry_attempts": -1}, {"retry_attempts": 2.5},
                {"retry_delay": -0.1}, {"retry_max_delay": float("inf")}, {"log_level": "LOUD"},
                {"leak_threshold": "soon"}):
        with pytest.raises(ValueError):
            fastsess.configure_session(**bad)
    assert fastsess.get_session_config() == config  # nothing changed
    import logging

    before = logging.getLogger("fastsess").level
    try:
        fastsess.configure_session(log_level="debug")
        assert logging.getLogger("fastsess").level == logging.DEBUG
    finally:
        fastsess.configure_session(log_level=None)
        logging.getLogger("fastsess").setLevel(before)
