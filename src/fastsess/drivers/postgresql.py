"""PostgreSQL through psycopg 3 (its C implementation when installed)."""

from __future__ import annotations

import codecs
import re

import psycopg
from psycopg import pq

from .. import errors
from . import DriverAdapter, class_by_driver_type

_IDLE = pq.TransactionStatus.IDLE
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

# "Key (a, b)=(1, 2) already exists."
_UNIQUE_DETAIL = re.compile(r"^Key \((?P<key>.+?)\)=\((?P<value>.*)\) already exists\.?$", re.S)

# SQLSTATE -> fastsess error class; classes of codes by their first two characters.
_BY_SQLSTATE = {
    "23505": errors.ConflictError,
    "23503": errors.ForeignKeyViolation,
    "40P01": errors.DeadlockDetected,
    "40001": errors.SerializationFailure,
    "55P03": errors.LockTimeout,
    "25006": errors.ReadOnlyViolation,
    "57P01": errors.ConnectionLost,  # admin_shutdown
    "57P02": errors.ConnectionLost,  # crash_shutdown
    "57P03": errors.ConnectionLost,  # cannot_connect_now
}
_BY_CLASS = {
    "23": errors.IntegrityError,
    "40": errors.TransactionRollback,
    "08": errors.ConnectionLost,
    "42": errors.ProgrammingError,
    "22": errors.DataError,
}
_BY_DRIVER_CLASS = (
    (psycopg.ProgrammingError, errors.ProgrammingError),
    (psycopg.DataError, errors.DataError),
    (psycopg.IntegrityError, errors.IntegrityError),
    (psycopg.OperationalError, errors.OperationalError),
)


class PostgreSQLAdapter(DriverAdapter):
    dialect = "postgresql"
    max_params = 65535
    # PostgreSQL expands a row-value IN list into nested expressions; around
    # 10,000 composite keys it overruns max_stack_depth (2 MB by default).
    max_row_keys = 2000
    Error = psycopg.Error

    def __init__(self, url, connect_args, readonly=False):
        super().__init__(url, connect_args, readonly)
        # Column labels are read straight off the PGresult (psycopg's
        # description objects cost several times more); they arrive in the
        # client encoding, UTF8 unless the user chose another.
        encoding = connect_args.get("client_encoding") or url.query.get("client_encoding") or "utf8"
        self._names_codec = _python_codec(encoding)

    def connect(self):
        url = self.url
        kwargs = {"dbname": url.database or None, "user": url.username,
                  "password": url.password, "host": url.host, "port": url.port,
                  "connect_timeout": 10, "client_encoding": "utf8"}
        kwargs.update(url.query)
        kwargs.update(self.connect_args)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            raw = psycopg.Connection.connect(autocommit=False, **kwargs)
        except psycopg.Error as e:
            raise self.translate(e, connecting=True) from None
        if self.readonly:
            raw.read_only = True  # BEGIN READ ONLY: no extra round trip
        return raw

    def column_names(self, cursor):
        res = cursor.pgresult
        if res is None or res.status != _TUPLES_OK:
            return None
        fname = res.fname
        codec = self._names_codec
        return tuple([fname(i).decode(codec) for i in range(res.nfields)])

    def usable(self, raw) -> bool:
        return not raw.closed and not raw.broken

    def reset(self, raw, in_transaction):
        # libpq knows the transaction status client-side: no round trip
        # unless there really is a transaction to end.
        status = raw.pgconn.transaction_status
        if status == _IDLE:
            return True
        if status in _IN_TRANSACTION:
            raw.rollback()
            return None
        return False  # ACTIVE (a result still streaming) or UNKNOWN (broken)

    def translate(self, exc, connecting=False):
        message = self.scrub(str(exc).strip())
        sqlstate = getattr(exc, "sqlstate", None)
        if connecting:
            return errors.ConnectionFailed(
                f"could not connect to {self.url.censored()}: {message}", orig=exc, sqlstate=sqlstate)
        cls = _BY_SQLSTATE.get(sqlstate) or (_BY_CLASS.get(sqlstate[:2]) if sqlstate else None)
        if cls is None:
            # No SQLSTATE (a broken socket, a client-side check): go by the
            # driver's class.  The session turns it into ConnectionLost when
            # the connection turns out to be unusable afterwards.
            cls = class_by_driver_type(exc, _BY_DRIVER_CLASS)
        if cls is errors.ConflictError:
            key = value = None
            detail = getattr(getattr(exc, "diag", None), "message_detail", None)
            m = _UNIQUE_DETAIL.match(detail or "")
            if m:
                key, value = m.group("key"), m.group("value")
            return errors.ConflictError(message, orig=exc, sqlstate=sqlstate, key=key, value=value)
        return cls(message, orig=exc, sqlstate=sqlstate)



def _python_codec(pg_encoding: str) -> str:
    """The Python codec of a PostgreSQL client encoding name."""
    name = pg_encoding.lower().replace("-", "").replace("_", "")
    known = {"utf8": "utf-8", "unicode": "utf-8", "sqlascii": "ascii", "latin1": "latin-1",
             "win1252": "cp1252", "win1251": "cp1251", "euckr": "euc_kr", "eucjp": "euc_jp",
             "sjis": "shift_jis", "big5": "big5", "gbk": "gbk"}
    codec = known.get(name, pg_encoding)
    codecs.lookup(codec)  # a LookupError here beats a wrong decode later
    return codec
