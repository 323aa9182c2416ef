"""Errors of drop-in sessions: fastsess errors that RESTAlchemy also recognises.

RESTAlchemy 16 recognises a failed statement by the class its stock driver
raises.  On PostgreSQL it catches psycopg's classes (``UniqueViolation``,
``DeadlockDetected``, ...).  On MySQL it catches mysql-connector's
``DatabaseError`` and reads ``errno``, ``msg`` and ``sqlstate``, and its
session turns errno 1213 (deadlock) into its own storage ``DeadLock`` at once.
fastsess talks to MySQL through mysqlclient, whose errors are
``(errno, message)`` tuples, so those classes are never raised there.

A drop-in session therefore raises one exception that is both: the fastsess
error (``ConflictError`` with ``key``/``value``, ``retryable``, ``orig``) and
the class the stock session would have raised for the same server error, with
the attributes RESTAlchemy reads.  RESTAlchemy's own handlers then turn it into
``ConflictRecords``, ``DeadLock``, ... exactly as they do on the stock stack.
Errors that do not come from the driver (``PoolTimeout``, ``SessionClosed``)
are raised unchanged.  Each side imports its driver's classes when it first
translates an error, so importing this module needs neither driver.
"""

from __future__ import annotations

import sys
import threading

from restalchemy.common import exceptions as ra_common_exc
from restalchemy.storage import exceptions as ra_storage_exc

from .. import errors as fs_errors

# (fastsess class, driver class) -> the class deriving from both.
_COMBINED: dict = {}
_COMBINED_LOCK = threading.Lock()

_MYSQL_DEADLOCK = 1213


def combined_class(fs_cls: type, driver_cls: type) -> type:
    """The exception class that is a ``fs_cls`` and a ``driver_cls``.

    Made once per pair and kept as an attribute of this module (so instances
    pickle); its name joins the two, e.g. ``ConflictError_UniqueViolation``.
    """
    cls = _COMBINED.get((fs_cls, driver_cls))
    if cls is not None:
        return cls
    with _COMBINED_LOCK:
        cls = _COMBINED.get((fs_cls, driver_cls))
        if cls is None:
            name = f"{fs_cls.__name__}_{driver_cls.__name__}"
            cls = type(name, (fs_cls, driver_cls), {
                "__module__": __name__,
                "__qualname__": name,
                "__doc__": f"A fastsess {fs_cls.__name__} that is also a "
                           f"{driver_cls.__module__}.{driver_cls.__qualname__}.",
                "__reduce__": _make_reduce(fs_cls, driver_cls),
            })
            globals()[name] = cls
            _COMBINED[(fs_cls, driver_cls)] = cls
    return cls


def _make_reduce(fs_cls, driver_cls):
    """``__reduce__`` for a combined class: the state as the driver class
    pickles it (psycopg turns its result into a dict and drops the
    connection), rebuilt from the two importable classes, so it unpickles in
    a process that has not made the combined class yet."""
    driver_reduce = driver_cls.__reduce__

    def __reduce__(self):
        reduced = driver_reduce(self)
        state = reduced[2] if len(reduced) > 2 and isinstance(reduced[2], dict) else vars(self)
        return _rebuild, (fs_cls, driver_cls, self.args, dict(state))

    return __reduce__


def _rebuild(fs_cls, driver_cls, args, state):
    cls = combined_class(fs_cls, driver_cls)
    new = cls.__new__(cls)
    new.args = args
    new.__dict__.update(state)
    return new


def _fastsess_state(new, err) -> None:
    """Copy what the fastsess error carries (orig, key, value, ...) onto
    ``new``, leaving the driver-side errno/sqlstate it already has."""
    for name, value in vars(err).items():
        if name in ("errno", "sqlstate") and getattr(new, name, None) is not None:
            continue
        setattr(new, name, value)


def as_psycopg_error(err):
    """``err`` (a fastsess error from a psycopg error) as an exception that
    is also of the psycopg error's class, with its ``diag``, ``sqlstate``
    and message (``str()`` keeps the server's DETAIL line, which
    RESTAlchemy's ``ConflictRecords`` parses)."""
    import psycopg  # loaded already: only PostgreSQL sessions call this

    orig = getattr(err, "orig", None)
    if not isinstance(orig, psycopg.Error) or isinstance(err, type(orig)):
        return err
    cls = combined_class(type(err), type(orig))
    new = cls.__new__(cls)
    new.args = err.args
    new.__dict__.update(vars(orig))  # _info, _encoding, _pgconn: diag, pgresult
    new.__dict__.update(vars(err))   # orig, sqlstate, errno, key, value
    return new


def as_connector_error(err, raw, scrub):
    """``err`` (a fastsess error from a mysqlclient error) as
    mysql-connector would have raised it: a ``mysql.connector.errors`` class
    with ``errno``, ``msg`` and ``sqlstate``, or RESTAlchemy's storage
    ``DeadLock`` for a deadlock, as its stock MySQL session raises.

    ``raw`` is the session's mysqlclient connection (asked for the SQLSTATE
    of the last error; None if unknown); ``scrub`` censors secrets in text.
    """
    if not isinstance(err, fs_errors.DatabaseError):
        return err
    # Only MySQL sessions call this: RESTAlchemy's MySQL code catches
    # mysql-connector's classes, so it is installed there.
    from mysql.connector import errors as connector_errors

    orig = getattr(err, "orig", None)
    args = getattr(orig, "args", ())
    errno = args[0] if args and type(args[0]) is int else None
    if errno is not None and len(args) > 1:
        text = scrub(str(args[1]))
    else:
        text = str(err)
    if errno == _MYSQL_DEADLOCK:
        cls = combined_class(type(err), ra_storage_exc.DeadLock)
        new = cls.__new__(cls)
        ra_common_exc.RestAlchemyException.__init__(new, msg=text)
        _fastsess_state(new, err)
        new.errno = errno
        return new
    if errno is None:
        # Not the server's: mysqlclient's own check of the parameters
        # (mysql-connector raises ProgrammingError for those).
        driver_cls = connector_errors.ProgrammingError
        sqlstate = None
    else:
        sqlstate = _last_sqlstate(raw)
        driver_cls = type(connector_errors.get_mysql_exception(errno, text, sqlstate))
    if isinstance(err, driver_cls):
        return err
    cls = combined_class(type(err), driver_cls)
    new = cls.__new__(cls)
    connector_errors.Error.__init__(new, msg=text, errno=errno, sqlstate=sqlstate)
    _fastsess_state(new, err)
    return new


def _last_sqlstate(raw):
    """The SQLSTATE of the last error on a mysqlclient connection, or None."""
    if raw is None:
        return None
    try:
        state = raw.sqlstate()
    except Exception:  # a closed or broken connection cannot say
        return None
    return state if state and state != "00000" else None


def conflict_text(err) -> str:
    """The message RESTAlchemy's ``ConflictRecords`` parses ``key`` and
    ``value`` from: mysql-connector's ``msg`` on MySQL, ``str()`` of the
    psycopg error on PostgreSQL."""
    msg = getattr(err, "msg", None)
    # An error can only be mysql-connector's if mysql-connector is loaded;
    # a PostgreSQL process need not have it.
    connector_errors = sys.modules.get("mysql.connector.errors")
    if connector_errors is not None and isinstance(err, connector_errors.Error) \
            and isinstance(msg, str):
        return msg
    return str(err)
