"""MySQL and MariaDB through mysqlclient (``MySQLdb``, the C driver)."""

from __future__ import annotations

import re

import MySQLdb
from MySQLdb import converters

from .. import _impl, errors
from . import DriverAdapter, class_by_driver_type

# "Duplicate entry '1-2' for key 'PRIMARY'" (MySQL 8 says 'table.PRIMARY').
_DUPLICATE = re.compile(r"Duplicate entry '(?P<value>.*)' for key '(?P<key>[^']*)'", re.S)

# Server and client error numbers -> fastsess error class.
_BY_ERRNO = {
    1062: errors.ConflictError,        # ER_DUP_ENTRY
    1586: errors.ConflictError,        # ER_DUP_ENTRY_WITH_KEY_NAME
    1216: errors.ForeignKeyViolation,  # ER_NO_REFERENCED_ROW
    1217: errors.ForeignKeyViolation,  # ER_ROW_IS_REFERENCED
    1451: errors.ForeignKeyViolation,  # ER_ROW_IS_REFERENCED_2
    1452: errors.ForeignKeyViolation,  # ER_NO_REFERENCED_ROW_2
    1213: errors.DeadlockDetected,     # ER_LOCK_DEADLOCK
    1020: errors.SerializationFailure,  # ER_CHECKREAD (MariaDB innodb_snapshot_isolation)
    1205: errors.LockTimeout,          # ER_LOCK_WAIT_TIMEOUT
    1792: errors.ReadOnlyViolation,    # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    1290: errors.ReadOnlyViolation,    # ER_OPTION_PREVENTS_STATEMENT (--read-only)
    1053: errors.ConnectionLost,       # ER_SERVER_SHUTDOWN
    1927: errors.ConnectionLost,       # ER_CONNECTION_KILLED (MariaDB)
    2006: errors.ConnectionLost,       # CR_SERVER_GONE_ERROR
    2013: errors.ConnectionLost,       # CR_SERVER_LOST
    2055: errors.ConnectionLost,       # CR_SERVER_LOST_EXTENDED
    4031: errors.ConnectionLost,       # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
}
_BY_DRIVER_CLASS = (
    (MySQLdb.IntegrityError, errors.IntegrityError),
    (MySQLdb.ProgrammingError, errors.ProgrammingError),
    (MySQLdb.DataError, errors.DataError),
    (MySQLdb.OperationalError, errors.OperationalError),
)


class MySQLAdapter(DriverAdapter):
    dialect = "mysql"
    # mysqlclient interpolates parameters client-side, so the real limit is
    # max_allowed_packet; this bounds one statement's parameter list as well.
    max_params = 65535
    # mysqlclient formats parameters into the statement with Python's % and
    # lets its ValueError/KeyError/TypeError escape (a stray %, a missing
    # named parameter, too few values); they are the statement's fault.
    Error = (MySQLdb.Error, ValueError, KeyError, TypeError)

    def __init__(self, url, connect_args, readonly=False):
        super().__init__(url, connect_args, readonly)
        self._max_packet = 0

    def connect(self):
        url = self.url
        kwargs = {"host": url.host or "localhost", "user": url.username,
                  "passwd": url.password, "db": url.database or None, "port": url.port,
                  "charset": "utf8mb4", "autocommit": False, "connect_timeout": 10}
        for k, v in url.query.items():
            kwargs[k] = int(v) if k in ("connect_timeout", "read_timeout", "write_timeout") else v
        kwargs.update(self.connect_args)
        if self.readonly:
            # Runs once as the connection opens, not on every checkout.
            kwargs["init_command"] = "SET SESSION TRANSACTION READ ONLY"
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            return MySQLdb.connect(**kwargs)
        except MySQLdb.Error as e:
            raise self.translate(e, connecting=True) from None

    def usable(self, raw) -> bool:
        return bool(raw.open)

    def reset(self, raw, in_transaction):
        # mysqlclient does not expose the server's in-transaction flag, so
        # the session says whether it ran anything since its last
        # commit/rollback (None: unknown, assume it did).  A plain SELECT
        # counts: under REPEATABLE READ it holds a snapshot open.
        if in_transaction is False:
            return True
        raw.rollback()
        return None

    def restore_defaults(self, raw) -> None:
        if raw.open and raw.get_autocommit():
            raw.autocommit(False)

    def translate(self, exc, connecting=False):
        if not isinstance(exc, MySQLdb.Error):
            return errors.ProgrammingError(
                f"the parameters do not fit the statement: {type(exc).__name__}: {exc}", orig=exc)
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = exc.args[1] if len(exc.args) > 1 else str(exc)
        message = self.scrub(f"({errno}) {text}" if errno is not None else str(text))
        if connecting:
            return errors.ConnectionFailed(
                f"could not connect to {self.url.censored()}: {message}", orig=exc, errno=errno)
        cls = _BY_ERRNO.get(errno)
        if cls is None:
            cls = class_by_driver_type(exc, _BY_DRIVER_CLASS)
        if cls is errors.ConflictError:
            m = _DUPLICATE.search(str(text))
            key, value = (m.group("key"), m.group("value")) if m else (None, None)
            return errors.ConflictError(message, orig=exc, errno=errno, key=key, value=value)
        return cls(message, orig=exc, errno=errno)

    # mysqlclient has no server-side binding: cursor.execute() escapes every
    # parameter with the connection's literal() and splices it into the
    # statement on the client, one Python call per value.  A batch INSERT
    # writes the very same literals in one kernel call instead (the str
    # escaping still goes through the connection's string_literal, which
    # knows its character set and SQL mode): 0.6x of executemany.
    builds_literals = True

    def insert_statements(self, raw, table, columns, values, max_bytes) -> list:
        encoders = raw.encoders
        # The fixed int/float/NULL literals are only right while the
        # connection uses mysqlclient's own encoders for those types.
        fast = (encoders.get(int) is converters.Thing2Str
                and encoders.get(float) is converters.Float2Str
                and encoders.get(type(None)) is converters.None2NULL)
        statements = _impl.build_literal_insert(table, columns, values, raw.literal,
                                                raw.string_literal, raw.encoding, fast, max_bytes)
        return [(statement, None) for statement in statements]

    def max_statement_bytes(self, session) -> int:
        if not self._max_packet:
            row = session.execute("SELECT @@max_allowed_packet").fetchone()
            # Leave room for the packet header and our own estimate's slack.
            self._max_packet = int(next(iter(row.values()))) - 1024
        return self._max_packet
