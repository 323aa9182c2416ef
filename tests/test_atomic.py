"""atomic blocks: outermost transactions, savepoints, durable blocks, on_commit."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

import fastsess
from fastsess import TransactionAborted, TransactionManagementError, atomic, errors, on_commit

from .conftest import raw_query
from .helpers_tx import ids, registered, run_threads, short_lock_waits


class Boom(Exception):
    pass


def insert(session, table, *values):
    for v in values:
        session.execute(f"INSERT INTO {table} (id) VALUES (%s)", (v,))


# -- the outermost block -------------------------------------------------------


def test_outermost_block_commits_closes_and_yields_the_session(engine, table, raw_connect):
    with atomic(using=engine) as s:
        assert isinstance(s, fastsess.Session)
        assert fastsess.current_session(engine) is s
        assert fastsess.in_atomic_block(engine)
        insert(s, table, 1)
    assert s.closed and engine.pool_stats()["in_use"] == 0
    assert not fastsess.in_atomic_block(engine)
    with pytest.raises(fastsess.SessionNotFound):
        fastsess.current_session(engine)
    assert ids(raw_connect(), table) == [1]


def test_outermost_block_rolls_back_and_reraises(engine, table, raw_connect):
    with pytest.raises(Boom):
        with atomic(using=engine) as s:
            insert(s, table, 1)
            raise Boom()
    assert s.closed and engine.pool_stats()["in_use"] == 0
    assert ids(raw_connect(), table) == []


def test_bare_and_called_decorators(url, table, raw_connect):
    with registered(url, "default"):  # what using=None means
        @atomic
        def bare(v):
            insert(fastsess.current_session(), table, v)
            return v

        @atomic()
        def called(v):
            insert(fastsess.current_session(), table, v)
            return bare(v + 1)  # nested: a savepoint in the same transaction

        assert bare(1) == 1
        assert called(10) == 11
        assert bare.__name__ == "bare"
    assert ids(raw_connect(), table) == [1, 10, 11]


def test_decorator_rolls_back_on_error(engine, table, raw_connect):
    @atomic(using=engine)
    def failing():
        insert(fastsess.current_session(engine), table, 1)
        raise Boom()

    with pytest.raises(Boom):
        failing()
    assert ids(raw_connect(), table) == []
    assert engine.pool_stats()["in_use"] == 0


def test_using_names_a_registered_engine(url, table, raw_connect):
    with registered(url, "atomic_named") as named:
        with atomic(using="atomic_named") as s:
            assert s.engine is named
            insert(s, table, 1)
    assert ids(raw_connect(), table) == [1]
    with pytest.raises(errors.EngineNotFound):
        with atomic(using="atomic_nowhere"):
            pass
    with pytest.raises(TypeError, match="engine name or an Engine"):
        with atomic(using=42):
            pass


# -- nested blocks: savepoints -------------------------------------------------


def test_inner_failure_rolls_back_only_the_inner_writes(engine, table, raw_connect):
    with atomic(using=engine) as s:
        insert(s, table, 1)
        with pytest.raises(Boom):
            with atomic(using=engine) as inner:
                assert inner is s
                insert(s, table, 2, 3)
                raise Boom()
        insert(s, table, 4)  # the outer transaction is still usable
        with atomic(using=engine):
            insert(s, table, 5)
        assert sorted(r["id"] for r in s.execute(f"SELECT id FROM {table}").fetchall()) == [1, 4, 5]
        assert ids(raw_connect(), table) == []  # nothing committed yet
    assert ids(raw_connect(), table) == [1, 4, 5]


def test_inner_database_error_leaves_the_outer_transaction_usable(engine, table, raw_connect):
    # PostgreSQL aborts the whole transaction on an error until ROLLBACK TO
    # SAVEPOINT; the inner block's rollback makes it usable again.
    with atomic(using=engine) as s:
        insert(s, table, 1)
        with pytest.raises(errors.ConflictError):
            with atomic(using=engine):
                insert(s, table, 2)
                insert(s, table, 1)  # duplicate key
        insert(s, table, 3)
    assert ids(raw_connect(), table) == [1, 3]


def test_deeper_nesting_rolls_back_to_the_right_savepoint(engine, table, raw_connect):
    with atomic(using=engine) as s:
        insert(s, table, 1)
        with atomic(using=engine):
            insert(s, table, 2)
            with pytest.raises(Boom):
                with atomic(using=engine):
                    insert(s, table, 3)
                    with atomic(using=engine):
                        insert(s, table, 4)
                    raise Boom()  # undoes 3 and the released block's 4
            insert(s, table, 5)
        with pytest.raises(Boom):
            with atomic(using=engine):
                insert(s, table, 6)
                raise Boom()
    assert ids(raw_connect(), table) == [1, 2, 5]


def test_one_hundred_nested_savepoints_leave_none_open(engine, dialect, table, raw_connect):
    names = []

    def nest(depth):
        with atomic(using=engine) as s:
            names.append(s._tx.blocks[-1][0])
            insert(s, table, depth)
            if depth < 100:
                nest(depth + 1)

    with atomic(using=engine) as s:
        nest(1)
        for i in range(101, 201):  # and 100 side by side
            with atomic(using=engine):
                names.append(s._tx.blocks[-1][0])
                insert(s, table, i)
        assert len(set(names)) == 200  # every savepoint had a name of its own
        assert s._tx.blocks == ["outermost"]
        # The server agrees: none of them exists any more.
        for name in names:
            s.execute("SAVEPOINT probe")
            with pytest.raises(errors.DatabaseError, match="(?i)savepoint"):
                s.execute(f"RELEASE SAVEPOINT {name}")
            s.execute("ROLLBACK TO SAVEPOINT probe")
            s.execute("RELEASE SAVEPOINT probe")
    assert ids(raw_connect(), table) == list(range(1, 201))
    assert engine.pool_stats()["in_use"] == 0


def test_savepoint_rollback_empties_the_query_cache(engine, table):
    with atomic(using=engine) as s:
        insert(s, table, 1)
        select = f"SELECT id FROM {table} ORDER BY id"
        with pytest.raises(Boom):
            with atomic(using=engine):
                insert(s, table, 2)
                assert s.cache.fetchall(select) == [{"id": 1}, {"id": 2}]
                assert len(s.cache) == 1
                raise Boom()
        assert len(s.cache) == 0
        assert s.cache.fetchall(select) == [{"id": 1}]


# -- savepoint=False and durable ---------------------------------------------------


def test_joined_block_commits_with_the_outer_one(engine, table, raw_connect):
    with atomic(using=engine) as s:
        with atomic(using=engine, savepoint=False) as inner:
            assert inner is s
            insert(s, table, 1)
        assert s._tx.blocks == ["outermost"]
    assert ids(raw_connect(), table) == [1]


def test_caught_failure_of_a_joined_block_aborts_the_enclosing_one(engine, table, raw_connect):
    with pytest.raises(TransactionAborted) as ei:
        with atomic(using=engine) as s:
            insert(s, table, 1)
            try:
                with atomic(using=engine, savepoint=False):
                    insert(s, table, 2)
                    raise Boom()
            except Boom:
                pass  # caught: but its write cannot be undone alone
            insert(s, table, 3)
    assert isinstance(ei.value.cause, Boom) and ei.value.retryable is False
    assert ids(raw_connect(), table) == []


def test_caught_failure_of_a_joined_block_inside_a_savepoint_block(engine, table, raw_connect):
    with atomic(using=engine) as s:
        insert(s, table, 1)
        with pytest.raises(TransactionAborted):
            with atomic(using=engine):  # savepoint
                insert(s, table, 2)
                try:
                    with atomic(using=engine, savepoint=False):
                        insert(s, table, 3)
                        raise Boom()
                except Boom:
                    pass
        # The savepoint block was rolled back; the outer one carries on.
        insert(s, table, 4)
    assert ids(raw_connect(), table) == [1, 4]


def test_durable_block_nested_raises(engine, table, raw_connect):
    with atomic(using=engine, durable=True) as s:  # outermost: fine
        insert(s, table, 1)
    with atomic(using=engine) as s:
        insert(s, table, 2)
        with pytest.raises(TransactionManagementError, match="durable"):
            with atomic(using=engine, durable=True):
                insert(s, table, 99)
        insert(s, table, 3)  # the misuse did not disturb the transaction
    with fastsess.session_scope(using=engine):
        with pytest.raises(TransactionManagementError, match="durable"):
            with atomic(using=engine, durable=True):
                pass

    @atomic(using=engine, durable=True)
    def durable_unit():
        pass

    durable_unit()
    with atomic(using=engine):
        with pytest.raises(TransactionManagementError):
            durable_unit()
    assert ids(raw_connect(), table) == [1, 2, 3]


# -- misuse inside blocks ------------------------------------------------------------


def test_commit_inside_an_atomic_block_is_refused(engine, table, raw_connect):
    with pytest.raises(TransactionManagementError, match="commit"):
        with atomic(using=engine) as s:
            insert(s, table, 1)
            s.commit()
    with atomic(using=engine) as s:
        with atomic(using=engine):
            with pytest.raises(TransactionManagementError):
                s.commit()
            insert(s, table, 2)
    assert ids(raw_connect(), table) == [2]


def test_rollback_inside_an_atomic_block_aborts_the_open_blocks(engine, table, raw_connect):
    with pytest.raises(TransactionAborted, match="rolled back"):
        with atomic(using=engine) as s:
            insert(s, table, 1)
            with pytest.raises(TransactionAborted):
                with atomic(using=engine):
                    insert(s, table, 2)
                    s.rollback()
                    insert(s, table, 3)  # must not be committed by anyone
            insert(s, table, 4)
    assert ids(raw_connect(), table) == []
    assert engine.pool_stats()["in_use"] == 0


@pytest.mark.parametrize("end", ["rollback", "close"])
def test_ending_the_transaction_inside_a_flat_block_aborts_it(engine, table, raw_connect, end):
    with pytest.raises(TransactionAborted, match="inside an atomic block"):
        with atomic(using=engine) as s:
            insert(s, table, 1)
            getattr(s, end)()
            insert(s, table, 2)  # a new transaction, which the block must not commit
    assert ids(raw_connect(), table) == []
    assert engine.pool_stats()["in_use"] == 0
    with atomic(using=engine) as s:  # the next block starts clean
        insert(s, table, 3)
    assert ids(raw_connect(), table) == [3]


def test_retry_options_on_a_with_block_raise(engine):
    with pytest.raises(TypeError, match="cannot run itself again"):
        with atomic(using=engine, retry_attempts=3):
            pass
    with pytest.raises(ValueError):
        atomic(using=engine, retry_attempts=-1)


def test_atomic_refuses_coroutine_and_generator_functions():
    async def coro():
        pass

    def gen():
        yield

    for fn in (coro, gen):
        with pytest.raises(TypeError, match="not supported yet"):
            atomic(fn)


# -- other owners of the session -----------------------------------------------------


def test_session_manager_inside_atomic_joins_its_transaction(engine, table, raw_connect):
    with pytest.raises(Boom):
        with atomic(using=engine) as s:
            with engine.session_manager() as joined:
                assert joined is s
                insert(joined, table, 1)
            assert not s.closed
            assert ids(raw_connect(), table) == []  # session_manager did not commit
            raise Boom()
    assert ids(raw_connect(), table) == []


def test_atomic_on_a_thread_stored_session_uses_a_savepoint(engine, table, raw_connect):
    storage = engine.get_session_storage()
    owner = storage.store_session(engine.get_session())
    try:
        insert(owner, table, 1)
        with atomic(using=engine) as s:
            assert s is owner
            insert(s, table, 2)
        with pytest.raises(Boom):
            with atomic(using=engine):
                insert(owner, table, 3)
                raise Boom()
        assert ids(raw_connect(), table) == []  # the owner commits, not the blocks
        owner.commit()
    finally:
        storage.pop_session().close()
    assert ids(raw_connect(), table) == [1, 2]


def test_bookkeeping_makes_no_reference_cycle(engine):
    # A session dropped without close() must be freed (and its connection
    # handed back) at once, not whenever the cyclic collector runs.
    gc.disable()
    try:
        s = engine.get_session()
        s.execute("SELECT 1")
        on_commit(lambda: None, session=s)  # gives it a Transaction
        assert s._tx is not None
        ref = weakref.ref(s)
        del s
        assert ref() is None
    finally:
        gc.enable()
    with engine.session_manager() as s2:  # the orphaned connection is adopted again
        s2.execute("SELECT 1")
    assert engine.pool_stats()["in_use"] == 0


# -- on_commit -------------------------------------------------------------------------


def test_on_commit_runs_after_the_outermost_commit_in_order(engine, table, raw_connect):
    seen = []

    def record(label):
        def callback():
            # Runs after the commit: the rows are visible to everyone.
            seen.append((label, ids(raw_connect(), table)))
        return callback

    with atomic(using=engine) as s:
        insert(s, table, 1)
        on_commit(record("outer 1"), using=engine)
        with atomic(using=engine):
            insert(s, table, 2)
            on_commit(record("released"), using=engine)
        with pytest.raises(Boom):
            with atomic(using=engine):
                on_commit(record("rolled back"), using=engine)
                with atomic(using=engine):
                    on_commit(record("rolled back with its parent"), using=engine)
                raise Boom()
        on_commit(record("outer 2"), using=engine)
        assert seen == []
    assert seen == [("outer 1", [1, 2]), ("released", [1, 2]), ("outer 2", [1, 2])]


def test_on_commit_dropped_when_the_transaction_rolls_back(engine, table):
    seen = []
    with pytest.raises(Boom):
        with atomic(using=engine):
            on_commit(lambda: seen.append(1), using=engine)
            raise Boom()
    # A later transaction on a new session does not inherit them.
    with atomic(using=engine):
        on_commit(lambda: seen.append(2), using=engine)
    assert seen == [2]


def test_on_commit_without_a_transaction_runs_at_once(engine):
    seen = []
    on_commit(lambda: seen.append(1), using=engine)
    assert seen == [1]


def test_on_commit_on_a_given_session_runs_at_its_commit(engine, table):
    seen = []
    with engine.session_manager() as s:
        insert(s, table, 1)
        on_commit(lambda: seen.append("committed"), session=s)
        assert seen == []
    assert seen == ["committed"]
    s2 = engine.get_session()
    on_commit(lambda: seen.append("never"), session=s2)
    s2.rollback()
    s2.close()
    assert seen == ["committed"]


def test_on_commit_error_propagates_after_the_commit(engine, table, raw_connect):
    seen = []

    def fails():
        raise Boom()

    with pytest.raises(Boom):
        with atomic(using=engine) as s:
            insert(s, table, 1)
            on_commit(fails, using=engine)
            on_commit(lambda: seen.append("after"), using=engine)
    assert ids(raw_connect(), table) == [1]  # committed all the same
    assert seen == []  # the rest were not run
    with atomic(using=engine) as s:
        insert(s, table, 2)
        on_commit(fails, using=engine, robust=True)
        on_commit(lambda: seen.append("after"), using=engine)
    assert seen == ["after"]
    with pytest.raises(TypeError):
        on_commit("not callable", using=engine)


def test_on_commit_callbacks_open_sessions_of_their_own(engine, table, raw_connect):
    inner = []

    def follow_up():
        with fastsess.session_scope(using=engine) as s2:
            inner.append(s2)
            insert(s2, table, 2)

    with atomic(using=engine) as s:
        insert(s, table, 1)
        on_commit(follow_up, using=engine)
    assert inner and inner[0] is not s
    assert ids(raw_connect(), table) == [1, 2]


# -- errors that end the transaction on the server -----------------------------------


def _deadlock_inside(engine, dialect, table, raw_connect, victim_body):
    """Two threads update rows 1 and 2 in opposite order inside atomic
    blocks; the server breaks the deadlock.  ``victim_body(session, err)``
    runs in the losing thread's outermost block after catching the error.
    Returns {label: outcome}."""
    raw_query(raw_connect(), f"INSERT INTO {table} (id, n) VALUES (1, 0), (2, 0)")
    barrier = threading.Barrier(2, timeout=30)
    outcome = {}

    def worker(label, first, second):
        try:
            with atomic(using=engine) as s:
                short_lock_waits(s, dialect)
                try:
                    with atomic(using=engine):  # the deadlock hits inside a savepoint
                        s.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (first,))
                        barrier.wait()
                        s.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (second,))
                except errors.DeadlockDetected as err:
                    victim_body(s, err)
                    outcome[label + " caught"] = err
            outcome[label] = "committed"
        except BaseException as e:  # noqa: BLE001 - checked by the caller
            outcome[label] = e

    run_threads(lambda: worker("A", 1, 2), lambda: worker("B", 2, 1))
    return outcome


def test_deadlock_inside_a_nested_block(engine, dialect, table, raw_connect):
    def victim_body(s, err):
        s.execute(f"INSERT INTO {table} (id, n) VALUES (3, 0)")

    outcome = _deadlock_inside(engine, dialect, table, raw_connect, victim_body)
    losers = [k[0] for k in outcome if k.endswith(" caught")]
    assert len(losers) == 1, outcome
    loser = losers[0]
    winner = "B" if loser == "A" else "A"
    assert outcome[winner] == "committed"
    rows = dict(raw_query(raw_connect(), f"SELECT id, n FROM {table}"))
    if dialect == "postgresql":
        # ROLLBACK TO SAVEPOINT undid only the block: the loser's outer
        # transaction carried on and committed its insert.
        assert outcome[loser] == "committed"
        assert rows == {1: 1, 2: 1, 3: 0}
    else:
        # MySQL rolled the loser's whole transaction back, savepoint and all:
        # its outermost block refuses to commit what came after.
        err = outcome[loser]
        assert isinstance(err, TransactionAborted), repr(err)
        assert isinstance(err.cause, errors.DeadlockDetected) and err.retryable is True
        assert rows == {1: 1, 2: 1}
    assert engine.pool_stats()["in_use"] == 0


def test_caught_deadlock_in_a_flat_block_refuses_to_commit(engine, dialect, table, raw_connect):
    raw_query(raw_connect(), f"INSERT INTO {table} (id, n) VALUES (1, 0), (2, 0)")
    barrier = threading.Barrier(2, timeout=30)
    outcome = {}

    def worker(label, first, second):
        try:
            with atomic(using=engine) as s:
                short_lock_waits(s, dialect)
                s.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (first,))
                barrier.wait()
                try:
                    s.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", (second,))
                except errors.DeadlockDetected:
                    outcome[label + " caught"] = True
                    # Carrying on: on MySQL this would run in a new
                    # transaction, on PostgreSQL in an aborted one.
                    try:
                        s.execute(f"INSERT INTO {table} (id, n) VALUES (%s, 0)", (10 + first,))
                    except errors.DatabaseError:
                        pass
            outcome[label] = "committed"
        except BaseException as e:  # noqa: BLE001
            outcome[label] = e

    run_threads(lambda: worker("A", 1, 2), lambda: worker("B", 2, 1))
    losers = [k[0] for k in outcome if k.endswith(" caught")]
    assert len(losers) == 1, outcome
    err = outcome[losers[0]]
    assert isinstance(err, TransactionAborted) and err.retryable is True, repr(err)
    # Only the winner's updates: nothing of the loser, before or after the error.
    assert dict(raw_query(raw_connect(), f"SELECT id, n FROM {table}")) == {1: 1, 2: 1}
