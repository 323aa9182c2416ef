"""Batch writes: ``insert_rows``, ``upsert_rows``, ``delete_rows``,
``batch_insert`` and ``batch_delete``, as methods every session has.

What to send is decided here and by the driver adapter, without I/O: the
input is checked (mixed model types, rows with other columns, bad table or
column names: all fail before anything is sent), turned into value
sequences, and the adapter plans how its database takes them
(``DriverAdapter.insert_plan``: COPY, multi-row statements with bound
parameters, or statements carrying the driver's own literals), the compiled
kernels building the statements.  ``run_plan`` is the sending, written once
as steps that the session's shell runs (``Session._run_steps``).
"""

from __future__ import annotations

from . import _impl
from .drivers.base import BatchPlan

_SAVEPOINT = "fastsess_batch"


class BatchWrites:
    """The batch methods of a session.  Each checks and prepares its input,
    then returns ``self._run_batch(plan_for, table, columns, composite)``:
    the session reads its statement limits, calls ``plan_for(raw,
    max_params, max_bytes)`` for a ``BatchPlan`` and runs it (a sync
    session returns the count, an async one an awaitable of it)."""

    __slots__ = ()

    def insert_rows(self, table: str, rows, columns=None):
        """Insert plain rows with multi-row INSERTs (COPY for large batches
        on PostgreSQL).

        ``rows`` are dicts (``columns`` defaults to the first dict's keys and
        every dict must have exactly those keys) or sequences in ``columns``
        order.  Returns the number of rows inserted; empty ``rows`` is a no-op.
        """
        columns, values = rows_and_columns(rows, columns)
        return self._insert(table, columns, values)

    def batch_insert(self, models):
        """Insert RESTAlchemy-style models (``get_table()``,
        ``get_storable_snapshot()``) of one type, as ``insert_rows`` does."""
        table, columns, values = models_as_rows(list(models))
        return self._insert(table, columns, values)

    def _insert(self, table, columns, values):
        adapter = self._adapter

        def plan_for(raw, max_params, max_bytes):
            return adapter.insert_plan(raw, table, columns, values, max_params, max_bytes)

        return self._run_batch(plan_for if values else None, table, columns)

    def upsert_rows(self, table: str, rows, key_columns, update_columns=None, columns=None):
        """Insert rows, updating the existing ones on a key conflict.

        ``rows`` as for ``insert_rows``.  ``key_columns`` name the unique key
        that decides a conflict (PostgreSQL's ``ON CONFLICT`` target; MySQL
        uses whichever unique key the row collides with).  ``update_columns``
        (default: every column not in the key) take the new row's values; an
        empty list leaves existing rows untouched.  Returns the driver's row
        count: PostgreSQL counts each row inserted or updated once, MySQL
        counts an updated row twice.
        """
        key_columns = [key_columns] if isinstance(key_columns, str) else list(key_columns)
        update = None if update_columns is None else list(update_columns)
        columns, values = rows_and_columns(rows, columns)
        dialect = self._adapter.dialect

        def plan_for(raw, max_params, max_bytes):
            return BatchPlan(lambda: _impl.build_upsert(
                dialect, table, columns, values, key_columns, update, max_params, max_bytes))

        return self._run_batch(plan_for if values else None, table, columns)

    def delete_rows(self, table: str, keys, key_columns):
        """Delete rows by primary key: ``keys`` are dicts, tuples (composite
        keys, in ``key_columns`` order) or scalars (one key column).
        Returns the number of rows deleted; empty ``keys`` is a no-op."""
        key_columns = [key_columns] if isinstance(key_columns, str) else list(key_columns)
        return self._delete(table, key_columns, key_values(keys, key_columns))

    def batch_delete(self, models):
        """Delete RESTAlchemy-style models of one type by their primary key
        (``get_id_properties()``; single and composite keys)."""
        table, key_columns, values = models_as_keys(list(models))
        return self._delete(table, key_columns, values)

    def _delete(self, table, key_columns, values):
        dialect = self._adapter.dialect

        def plan_for(raw, max_params, max_bytes):
            return BatchPlan(lambda: _impl.build_delete(
                dialect, table, key_columns, values, max_params, max_bytes))

        return self._run_batch(plan_for if values else None, table, key_columns,
                               len(key_columns) > 1)


def limits(adapter, table, columns, composite=False) -> int:
    """The bound parameters one statement of the batch may carry, after
    checking its identifiers: a bad name fails before anything is sent."""
    dialect = adapter.dialect
    _impl.quote_table(dialect, table)
    for column in columns:
        _impl.quote_identifier(dialect, column)
    max_params = adapter.max_params
    if composite and adapter.max_row_keys:
        # A row-value IN list of many composite keys overruns PostgreSQL's stack.
        max_params = min(max_params, adapter.max_row_keys * len(columns))
    return max_params


def run_plan(session, plan):
    """Send ``plan`` (a ``BatchPlan``): steps for the session's shell to run
    (``(method name, *args)``; each result is sent back, each error thrown
    in).  Returns the row count.  Several statements run inside a
    savepoint, so a failure leaves none of them applied."""
    if plan.copy is not None:
        try:
            return (yield ("_copy", *plan.copy))
        except session._adapter.CopyRefused:
            pass  # a value COPY would store differently: the statements take it
    chunks = plan.statements()
    if not chunks:
        return 0
    if len(chunks) == 1:
        return (yield ("_write", *chunks[0])).rowcount
    yield ("execute", "SAVEPOINT " + _SAVEPOINT)
    total = 0
    try:
        for statement, params in chunks:
            total += (yield ("_write", statement, params)).rowcount
    except BaseException:
        if session._pc is not None and not session._pc.broken:
            try:
                yield ("execute", "ROLLBACK TO SAVEPOINT " + _SAVEPOINT)
                yield ("execute", "RELEASE SAVEPOINT " + _SAVEPOINT)
            except Exception:
                # A deadlock already rolled the whole transaction back (and
                # the savepoint with it): the first error is the news.
                pass
        raise
    yield ("execute", "RELEASE SAVEPOINT " + _SAVEPOINT)
    return total


def rows_and_columns(rows, columns):
    """(columns, value sequences) of plain rows: dicts with the same keys, or
    sequences in ``columns`` order."""
    rows = list(rows)
    if not rows:
        return columns, []
    if isinstance(rows[0], dict):
        if columns is None:
            columns = list(rows[0])
        columns = list(columns)
        wanted = set(columns)
        values = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or row.keys() != wanted:
                raise ValueError(f"row {i} does not have exactly the columns {columns}")
            values.append([row[c] for c in columns])
        return columns, values
    if columns is None:
        raise TypeError("columns are required when rows are sequences")
    return list(columns), rows


def key_values(keys, key_columns) -> list:
    """Value sequences in ``key_columns`` order of ``keys``: dicts, tuples or
    lists (composite keys), or scalars (one key column)."""
    values = []
    for i, key in enumerate(keys):
        if isinstance(key, dict):
            try:
                values.append([key[c] for c in key_columns])
            except KeyError as e:
                raise ValueError(f"key {i} lacks the key column {e.args[0]!r}") from None
        elif isinstance(key, (tuple, list)):
            values.append(key)
        else:
            values.append((key,))
    return values


def models_as_rows(models):
    """(table, columns, value sequences) of models to insert."""
    if not models:
        return None, [], []
    table = model_table(models)
    columns = None
    values = []
    for i, model in enumerate(models):
        snapshot = model.get_storable_snapshot()
        if columns is None:
            columns = list(snapshot)
            wanted = snapshot.keys()
        elif snapshot.keys() != wanted:
            raise ValueError(f"model {i} stores other columns than the first model")
        values.append([snapshot[c] for c in columns])
    return table, columns, values


def models_as_keys(models):
    """(table, key columns, key value sequences) of models to delete."""
    if not models:
        return None, [], []
    table = model_table(models)
    key_columns = list(models[0].get_id_properties())
    if not key_columns:
        raise ValueError(f"{type(models[0]).__name__} has no primary key; cannot delete by key")
    values = []
    for model in models:
        snapshot = model.get_storable_snapshot()
        values.append([snapshot[c] for c in key_columns])
    return table, key_columns, values


def model_table(models) -> str:
    """The table name of ``models``, after checking they are all of one type."""
    model_type = type(models[0])
    for model in models:
        if type(model) is not model_type:
            raise TypeError(
                f"all models must be of one type: got {type(model).__name__} "
                f"among {model_type.__name__}")
    table = models[0].get_table()
    name = table if isinstance(table, str) else getattr(table, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"{model_type.__name__}.get_table() must give a table name or an "
                        f"object with a .name, got {type(table).__name__}")
    return name
