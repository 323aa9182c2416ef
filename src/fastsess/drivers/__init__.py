"""Driver adapters: everything that differs between PostgreSQL and MySQL.

An adapter connects, tells whether a connection is still usable without a
round trip, resets a returned connection, knows its dialect's statement
limits, and translates its driver's exceptions into ``fastsess.errors``.
Drivers are imported lazily, so a MySQL-only user needs no psycopg and the
other way round.
"""

from __future__ import annotations

from .. import errors
from ..url import DatabaseURL


class DriverAdapter:
    """What the pool and the sessions need from a driver."""

    dialect: str = ""
    #: Bound parameters one statement may carry.
    max_params: int = 65535
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

    #: A cursor class taking the database's own positional placeholders
    #: (``$1``), for the batch builders' statements; None: ``raw.cursor()``.
    positional_cursor = None

    #: Whether ``insert_statements`` writes the values into the statements
    #: itself (drivers that interpolate on the client anyway).
    builds_literals: bool = False

    def insert_statements(self, raw, table, columns, values, max_bytes) -> list:
        """``(statement, None)`` per chunk of a multi-row INSERT with the
        values written as the driver's own literals (``builds_literals``)."""
        raise NotImplementedError

    def column_names(self, cursor) -> tuple | None:
        """The column labels of the cursor's result, or None when the
        statement returned no result set."""
        description = cursor.description
        if description is None:
            return None
        return tuple([d[0] for d in description])


def class_by_driver_type(exc, pairs) -> type:
    """The fastsess class paired with the first driver class ``exc`` is an
    instance of (``pairs``: (driver class, fastsess class), most specific
    first), or DatabaseError."""
    for driver_cls, ours in pairs:
        if isinstance(exc, driver_cls):
            return ours
    return errors.DatabaseError


def get_adapter(url: DatabaseURL, connect_args: dict, readonly: bool = False) -> DriverAdapter:
    if url.dialect == "postgresql":
        from .postgresql import PostgreSQLAdapter as cls
    else:
        from .mysql import MySQLAdapter as cls
    return cls(url, connect_args, readonly)
