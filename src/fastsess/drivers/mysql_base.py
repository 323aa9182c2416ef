"""What the MySQL adapters share, with no driver imported: the server's
error numbers and what they mean, the connection settings, and the
parameter rule for drivers that write parameters into the statement on the
client (asyncmy; mysqlclient's own is in ``mysql.Connection.literal``)."""

from __future__ import annotations

import datetime
import decimal
import enum
import re
import uuid

from .. import errors
from .. import params as _params
from .base import class_by_driver_type

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


def translate(adapter, exc, connecting, driver_error, by_driver_class, params=None):
    """The fastsess error for a MySQL driver's ``exc``: by the server's error
    number, else by the driver's class (``by_driver_class``: pairs for
    ``class_by_driver_type``); ``driver_error`` is the driver's base class
    (anything else is the parameters' fault: a stray %, too few values)."""
    if isinstance(exc, UnicodeEncodeError):  # a ValueError, from the driver's escaping
        return _params.unencodable(exc, _DIALECT, params)
    if not isinstance(exc, driver_error):
        return errors.ProgrammingError(
            f"the parameters do not fit the statement: {type(exc).__name__}: {exc}", orig=exc)
    errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = exc.args[1] if len(exc.args) > 1 else str(exc)
    message = adapter.scrub(f"({errno}) {text}" if errno is not None else str(text))
    if connecting:
        return errors.ConnectionFailed(
            f"could not connect to {adapter.url.censored()}: {message}", orig=exc, errno=errno)
    cls = _BY_ERRNO.get(errno) or class_by_driver_type(exc, by_driver_class)
    if cls is errors.ConflictError:
        m = _DUPLICATE.search(str(text))
        key, value = (m.group("key"), m.group("value")) if m else (None, None)
        return errors.ConflictError(message, orig=exc, errno=errno, key=key, value=value)
    return cls(message, orig=exc, errno=errno)


def connect_settings(adapter) -> dict:
    """Connection settings both MySQL drivers take (mysqlclient's names:
    ``passwd``, ``db``), from the URL and ``connect_args``."""
    url = adapter.url
    kwargs = {"host": url.host or "localhost", "user": url.username,
              "passwd": url.password, "db": url.database or None, "port": url.port,
              "charset": "utf8mb4", "autocommit": False, "connect_timeout": 10}
    for k, v in url.query.items():
        kwargs[k] = int(v) if k in ("connect_timeout", "read_timeout", "write_timeout") else v
    kwargs.update(adapter.connect_args)
    if adapter.readonly:
        # Runs once as the connection opens, not on every checkout.
        kwargs["init_command"] = "SET SESSION TRANSACTION READ ONLY"
    return {k: v for k, v in kwargs.items() if v is not None}


# Exact types a client-side MySQL driver writes faithfully as they are.
_PLAIN = frozenset({str, int, float, bool, type(None), bytes, bytearray, decimal.Decimal,
                    datetime.datetime, datetime.date, datetime.time, datetime.timedelta})
_DIALECT = "MySQL"


def faithful(value):
    """``value`` as a client-side driver (asyncmy) must get it under the
    parameter rule (README "Parameters"): a dict or ``fastsess.Json`` as its
    JSON text, a list as a tuple (an ``IN %s`` sequence), a UUID as its
    text, subclasses of the plain types as their base value; raises
    ``errors.UnsupportedParameter`` for what has no faithful form (a set, a
    plain Enum member, an arbitrary object)."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is dict or isinstance(value, dict):
        return _params.json_text(value, _DIALECT)
    if cls is _params.Json:
        return _params.json_text(value.value, _DIALECT, value)
    if cls is tuple or cls is list or isinstance(value, (tuple, list)):
        return tuple([faithful(item) for item in value])
    if cls is uuid.UUID:
        return str(value)
    if cls is memoryview:
        return value.tobytes()
    if isinstance(value, (set, frozenset)):
        raise _params.unsupported(value, _DIALECT, "a set has no SQL value on both databases")
    if isinstance(value, enum.Enum) and not isinstance(value, (int, str)):
        raise _params.unsupported(value, _DIALECT,
                                  "an Enum member has no SQL value; pass its .value or its .name")
    if isinstance(value, str):  # a StrEnum: its text (str() would give 'Class.MEMBER')
        return str.__str__(value)
    for base in (int, float, bytes, decimal.Decimal):  # an IntEnum: its number
        if isinstance(value, base):
            return base(value)
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        return value
    raise _params.unsupported(value, _DIALECT)
