"""What every driver adapter provides: the interface the pool and the
sessions use, with the defaults.  The database adapters subclass it
(``postgresql``, ``mysql``); ``fastsess.drivers.get_adapter`` picks one.
"""

from __future__ import annotations

from .. import _impl, errors
from ..url import DatabaseURL

_column_labels = _impl.column_labels


class DriverAdapter:
    """What the pool and the sessions need from a driver."""

    dialect: str = ""
    #: Bound parameters one statement may carry.
    max_params: int = 65535
    #: Whether a sync session runs its statements on one reused cursor
    #: (``Session.execute``): where making a cursor costs more than detaching
    #: the last result from it (psycopg: ~32,000 instructions against ~5,000;
    #: mysqlclient: ~4,000, less than the detaching).  Async sessions always
    #: reuse theirs: their results are fetched with the statement.
    reuse_cursor: bool = False
    #: Rows from which ``copy_insert`` (COPY) beats multi-row INSERTs; 0: no COPY.
    copy_min_rows: int = 0
    #: Raised by ``copy_insert`` for rows it will not COPY (the caller INSERTs them).
    CopyRefused: type = type("CopyRefused", (Exception,), {})
    #: Keys one row-value ``(a, b) IN ((..), ..)`` may list (0: no limit).
    max_row_keys: int = 0
    #: The driver's exception class(es); sessions catch them and translate.
    Error: type | tuple = Exception

    def __init__(self, url: DatabaseURL, connect_args: dict, readonly: bool = False):
        self.url = url
        self.connect_args = connect_args
        self.readonly = readonly

    def connect(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def usable(self, raw) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def socket_fd(self, raw) -> int:
        """The descriptor of ``raw``'s socket, which the pool peeks at to find
        a connection the server closed while it sat idle; -1: unknown (the
        pool then hands it out unchecked)."""
        return -1

    def idle_alive(self, raw, state: int) -> bool:
        """Whether idle ``raw`` is still usable although its socket is not
        quiet (``state`` from ``fastsess._impl.socket_state``: -1 closed or
        errored, else 1 + the first byte waiting).  Nothing may be sent."""
        return False

    def reset(self, raw, in_transaction: bool | None):  # pragma: no cover - abstract
        """Make a returned connection clean: True if nothing was needed,
        None if it was rolled back, False if it must be discarded."""
        raise NotImplementedError

    def reset_state(self, raw, in_transaction: bool | None):
        """Async adapters: what ``reset`` would do, decided without I/O:
        True nothing, None a rollback, False discarding."""
        raise NotImplementedError  # pragma: no cover - abstract

    def scrub(self, text: str) -> str:
        """``text`` with the URL's and ``connect_args``' passwords censored."""
        text = self.url.scrub(text)
        for key in ("password", "passwd", "sslpassword"):
            secret = self.connect_args.get(key)
            if isinstance(secret, str) and secret:
                text = text.replace(secret, "***")
        return text

    def close(self, raw) -> None:
        raw.close()

    def translate(self, exc: BaseException, connecting: bool = False):  # pragma: no cover
        raise NotImplementedError

    def max_statement_bytes(self, session) -> int:
        """Largest statement the server takes (0: no byte limit, only max_params)."""
        return 0

    def restore_defaults(self, raw) -> None:
        """Undo what a borrower (``Engine.get_connection``) may have changed
        that sessions rely on: autocommit off.  Other session settings a
        borrower changed stay: give such a connection back broken."""
        raise NotImplementedError

    def aborted(self, raw, error) -> bool:
        """Whether ``error``, raised in the open transaction and caught,
        ended that transaction on the server: a COMMIT now would not commit
        the work done before it.  Default: the server rolled it back."""
        return isinstance(error, errors.TransactionRollback)

    # -- batches: this database's strategy (fastsess.batch runs the plans) --

    def insert_plan(self, raw, table, columns, values, max_params, max_bytes) -> "BatchPlan":
        """How this database takes a batch INSERT of ``values`` (sequences in
        ``columns`` order).  Default: multi-row statements with bound
        parameters, chunked under ``max_params`` and ``max_bytes``."""
        dialect = self.dialect
        return BatchPlan(lambda: _impl.build_insert(dialect, table, columns, values, max_params,
                                                    max_bytes))

    def write_cursor(self, raw, statement):
        """``(cursor, statement)`` to run a built batch statement (``%s``
        placeholders, ``%%`` for a percent) with its parameters.  Default: a
        plain cursor and the statement as it is."""
        return raw.cursor(), statement

    def copy_insert(self, raw, table, columns, values) -> int:  # pragma: no cover - abstract
        """Insert with COPY (adapters whose ``insert_plan`` plans one)."""
        raise NotImplementedError

    def statement_interrupted(self, raw) -> None:
        """A statement on ``raw`` was interrupted (a cancelled task): the
        connection is discarded; an adapter may tell the server to stop it."""

    async def settle(self) -> None:
        """Wait for what ``statement_interrupted`` started (async engines' close)."""

    def description_of(self, cursor):
        """The cursor's ``description`` for a result that outlives the
        cursor's current statement: the description itself, or a callable
        that makes it when asked (when reading it costs more than keeping
        what it is made from)."""
        return cursor.description

    def column_names(self, cursor) -> tuple | None:
        """The column labels of the cursor's result, or None when the
        statement returned no result set."""
        return _column_labels(cursor.description)


class BatchPlan:
    """What a batch sends: ``statements()`` gives the ``(statement, params)``
    chunks (built only when they are needed; several run inside a
    savepoint), and ``copy``, when set, is ``(table, columns, values)`` to
    try with ``copy_insert`` first: the statements run only if it raises
    the adapter's ``CopyRefused``."""

    __slots__ = ("statements", "copy")

    def __init__(self, statements, copy=None):
        self.statements = statements
        self.copy = copy


def class_by_driver_type(exc, pairs) -> type:
    """The fastsess class paired with the first driver class ``exc`` is an
    instance of (``pairs``: (driver class, fastsess class), most specific
    first), or DatabaseError."""
    for driver_cls, ours in pairs:
        if isinstance(exc, driver_cls):
            return ours
    return errors.DatabaseError
