"""PostgreSQL through psycopg 3 (its C implementation when installed)."""

from __future__ import annotations

import codecs
import datetime
import decimal
import enum
import functools
import json
import marshal
import operator
import re
import uuid

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, PyFormat, Transformer
from psycopg.types.json import JsonbDumper, set_json_loads

try:  # optional: a faster JSON parser, used where it gives json.loads' result
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency, but not a hard one
    orjson = None
from psycopg.types.json import Json, Jsonb

from .. import _impl, errors
from .. import params as _params
from .base import DriverAdapter, class_by_driver_type

_IDLE = pq.TransactionStatus.IDLE
_dollar_params = _impl.dollar_params
_decoded_names = _impl.decoded_names
_INERROR = pq.TransactionStatus.INERROR
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)
_CONNECTION_OK = pq.ConnStatus.OK
# socket_state() of a socket whose first waiting byte starts an ErrorResponse.
_ERROR_MESSAGE = 1 + ord("E")

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


_DIALECT = "PostgreSQL"
_ParameterProblem = errors._ParameterProblem  # UnsupportedParameter, InvalidParameterValue
# psycopg's messages for a parameter it cannot send (no SQLSTATE: client-side).
_CANNOT_ADAPT = re.compile(r"^cannot adapt type '(?P<name>[^']+)'")
_NUL_IN_TEXT = "cannot contain NUL (0x00) bytes"
_NUL_REASON = "PostgreSQL text cannot hold a NUL character (MySQL stores it)"
# An escaped NUL (\u0000, not \\u0000) in JSON text: jsonb refuses it.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class _Refused(psycopg.ProgrammingError):
    """A value fastsess refuses to send, found by one of its dumpers or by
    ``Cursor.executemany``: ``error`` is the fastsess parameter error, which
    ``translate`` returns (naming the parameter)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class _JsonbTextDumper(JsonbDumper):
    """A dict (or dict subclass) as jsonb, its text written by
    ``fastsess.params.dumps`` (the same text MySQL gets), in the connection's
    encoding."""

    def __init__(self, cls, context=None):
        super().__init__(cls, context)
        conn = self.connection
        try:
            self._encoding = conn.info.encoding if conn is not None else "utf-8"
        except Exception:  # pragma: no cover - an encoding Python does not know
            self._encoding = "utf-8"

    def dump(self, obj):
        return self._text(obj, obj).encode(self._encoding)

    @staticmethod
    def _text(value, param):
        try:
            text = _params.json_text(value, _DIALECT, param)
        except _ParameterProblem as e:
            raise _Refused(e) from None
        if "\\u0000" in text and _JSON_NUL.search(text):
            raise _Refused(_params.invalid(param, _DIALECT, "jsonb cannot hold a NUL character "
                                                            "(\\u0000) in a string"))
        return text


class _JsonValueDumper(_JsonbTextDumper):
    """``fastsess.Json(value)`` as jsonb."""

    def dump(self, obj):
        return self._text(obj.value, obj).encode(self._encoding)


class _RefusingDumper(Dumper):
    """Registered for ``enum.Enum`` (where psycopg would send a member's
    name, and mysqlclient ``str(member)``): refuses plain Enum members.  An
    Enum class registered with psycopg's ``register_enum`` has its own
    dumper, found first; IntEnum/StrEnum members go as their int/str."""

    def dump(self, obj):
        raise _Refused(_params.unsupported(
            obj, _DIALECT, "an Enum member has no SQL value; pass its .value or its .name"))


class _RefusingBinaryDumper(_RefusingDumper):
    format = pq.Format.BINARY


# Exact types psycopg sends as they are (str is checked for NUL).
_PLAIN = frozenset({int, float, bool, type(None), decimal.Decimal, datetime.datetime,
                    datetime.date, datetime.time, datetime.timedelta, uuid.UUID, bytes})


class Cursor(psycopg.Cursor):
    """psycopg's cursor, whose ``executemany`` checks every parameter set
    before it sends any: psycopg pipelines the sets one by one, so a value
    refused in a later set would otherwise come after earlier ones ran."""

    def executemany(self, query, params_seq, *, returning=False):
        return super().executemany(query, _checked_sets(self, params_seq), returning=returning)


class _Described:
    """What psycopg's ``Cursor.description`` reads off a cursor (its
    PGresult, encoding and adapters), kept after the cursor ran another
    statement; ``make()`` runs psycopg's own property on them
    (tests/test_cursor_reuse.py checks it equals the cursor's)."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor):
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters

    def make(self):
        return _DESCRIPTION(self)


_DESCRIPTION = psycopg.Cursor.description.fget


class AsyncCursor(psycopg.AsyncCursor):
    """``Cursor``'s check for psycopg's async cursor."""

    async def executemany(self, query, params_seq, *, returning=False):
        return await super().executemany(query, _checked_sets(self, params_seq),
                                         returning=returning)


def _checked_sets(cursor, params_seq):
    if not isinstance(params_seq, (list, tuple)):
        params_seq = list(params_seq)
    if params_seq:
        _check_sets(cursor, params_seq)
    return params_seq


def _check_sets(cursor, sets) -> None:
    """Raise ``_Refused`` (naming the set and the parameter) for the first
    value in ``sets`` psycopg would refuse or fastsess refuses."""
    tx = None
    for i, values in enumerate(sets):
        if isinstance(values, dict):
            items = values.items()
        elif isinstance(values, (list, tuple)):
            items = enumerate(values)
        else:
            continue  # a set psycopg checks itself
        for key, value in items:
            cls = type(value)
            if cls in _PLAIN or (cls is str and "\x00" not in value):
                continue
            if tx is None:
                tx = Transformer.from_context(cursor)
            try:
                tx.get_dumper(value, PyFormat.AUTO).dump(value)
            except psycopg.Error as e:
                err = _parameter_error(e, {key: value})
                if err is None:
                    raise
                if err.parameter is not None:
                    err = _params.placed(err, _DIALECT, key, i, nested=err._value is not value)
                raise _Refused(err) from None


def _parameter_error(exc, params):
    """The fastsess parameter error for psycopg's ``exc`` (naming the
    parameter of ``params`` it is about), or None if it is no such error."""
    if isinstance(exc, _Refused):  # found by fastsess, not the driver: no orig
        return _params.place(exc.error, _DIALECT, params)
    if getattr(exc, "sqlstate", None) is not None:
        return None
    message = str(exc)
    if isinstance(exc, psycopg.ProgrammingError):
        m = _CANNOT_ADAPT.match(message)
        if m is None:
            return None
        name = m.group("name")

        def test(v):
            return type(v).__name__ == name

        where, top = _params.locate(params, test)
        if where is None:
            return errors.UnsupportedParameter(
                f"a parameter of type {name} cannot be sent to {_DIALECT}: no adapter stores "
                f"it faithfully (psycopg: {message}); the statement was not sent", orig=exc)
        bad = _params.first(top, test)
        return _params.unsupported(bad, _DIALECT, None, where, orig=exc, nested=top is not bad)
    if isinstance(exc, psycopg.DataError) and _NUL_IN_TEXT in message:
        def test(v):
            return isinstance(v, str) and "\x00" in v

        where, top = _params.locate(params, test)
        if where is None:
            return errors.InvalidParameterValue(
                f"a parameter cannot be sent to {_DIALECT}: {_NUL_REASON}; the statement was "
                f"not sent", orig=exc, python_type=str)
        bad = _params.first(top, test)
        return _params.invalid(bad, _DIALECT, _NUL_REASON, where, orig=exc,
                               nested=top is not bad)
    return None


class CopyRefused(Exception):
    """``copy_insert`` will not COPY these rows (a value/column type pair COPY
    would store differently from INSERT, or a target COPY cannot fill).
    Raised before any row is sent, the transaction still usable: the caller
    falls back to INSERT."""


class PostgreSQLAdapter(DriverAdapter):
    dialect = "postgresql"
    reuse_cursor = True
    max_params = 65535
    # PostgreSQL expands a row-value IN list into nested expressions; around
    # 10,000 composite keys it overruns max_stack_depth (2 MB by default).
    max_row_keys = 2000
    # psycopg lets a UnicodeEncodeError through from its dumpers (a lone
    # surrogate in a str or in JSON text): a parameter error like the others.
    Error = (psycopg.Error, UnicodeEncodeError)
    #: Rows from which ``copy_insert`` (COPY FROM STDIN) beats one multi-row
    #: INSERT per chunk; 0: never use COPY.  benchmarks/bulk_insert_probe.py
    #: (6 columns, loopback, same connection): copy_insert / multi-row was
    #: 1.07-1.10x at 10 rows, 0.80-0.88x at 30, 0.51-0.61x at 100 against
    #: build_insert + cursor.execute (psycopg re-parses %s in statements over
    #: 4 KiB), and 1.06-1.19x at 30, 0.86-0.93x at 100 against the same
    #: statements with $n placeholders on a RawCursor; 100 wins against both.
    copy_min_rows = 100
    CopyRefused = CopyRefused
    #: Batch statements (multi-row INSERT under copy_min_rows, upserts,
    #: deletes by key) run with $n placeholders on a RawCursor: psycopg
    #: re-parses %s in Python for every statement over 4 KiB, which made a
    #: 10k-row multi-row statement 2.6x slower (benchmarks/bulk_insert_probe.py).
    positional_cursor = psycopg.RawCursor

    def insert_plan(self, raw, table, columns, values, max_params, max_bytes):
        plan = super().insert_plan(raw, table, columns, values, max_params, max_bytes)
        if self.copy_min_rows and len(values) >= self.copy_min_rows:
            plan.copy = (table, columns, values)
        return plan

    def write_cursor(self, raw, statement):
        return self.positional_cursor(raw), _dollar_params(statement)

    def __init__(self, url, connect_args, readonly=False):
        super().__init__(url, connect_args, readonly)
        # Column labels are read straight off the PGresult (psycopg's
        # description objects cost several times more); they arrive in the
        # client encoding, UTF8 unless the user chose another.
        encoding = connect_args.get("client_encoding") or url.query.get("client_encoding") or "utf8"
        self._names_codec = _python_codec(encoding)

    def connect(self):
        try:
            raw = psycopg.Connection.connect(autocommit=False, **self._connect_kwargs())
        except psycopg.Error as e:
            raise self.translate(e, connecting=True) from None
        if self.readonly:
            raw.read_only = True  # BEGIN READ ONLY: no extra round trip
        return self._set_up(raw, Cursor)

    def _connect_kwargs(self) -> dict:
        url = self.url
        kwargs = {"dbname": url.database or None, "user": url.username,
                  "password": url.password, "host": url.host, "port": url.port,
                  "connect_timeout": 10, "client_encoding": "utf8"}
        kwargs.update(url.query)
        kwargs.update(self.connect_args)
        return {k: v for k, v in kwargs.items() if v is not None}

    def _set_up(self, raw, cursor_factory):
        """A new connection set up (nothing is sent; read-only is the
        shell's: psycopg's async connections take it with an await)."""
        # Parameters as fastsess.params says (the README's "Parameters"):
        # dicts and fastsess.Json as jsonb, plain Enum members refused, and
        # executemany checking every set before sending one.
        adapters = raw.adapters
        adapters.register_dumper(dict, _JsonbTextDumper)
        adapters.register_dumper(_params.Json, _JsonValueDumper)
        adapters.register_dumper(enum.Enum, _RefusingBinaryDumper)
        adapters.register_dumper(enum.Enum, _RefusingDumper)
        raw.cursor_factory = cursor_factory
        if orjson is not None:
            set_json_loads(_json_loads, raw)  # json and jsonb columns; client-side only
        return raw

    def description_of(self, cursor):
        # psycopg builds its Column objects on every read of description
        # (~3 µs for a short row): keep the PGresult, build them when asked.
        if cursor.pgresult is None:
            return None
        return _Described(cursor).make

    def column_names(self, cursor):
        res = cursor.pgresult
        if res is None or res.status != _TUPLES_OK:
            return None
        return _decoded_names(res.fname, res.nfields, self._names_codec)

    def restore_defaults(self, raw) -> None:
        if not raw.closed and raw.autocommit:
            raw.rollback()  # ends a transaction begun by hand, if any
            raw.autocommit = False

    def aborted(self, raw, error) -> bool:
        # After any error PostgreSQL ignores everything up to ROLLBACK (or
        # ROLLBACK TO SAVEPOINT), and COMMIT quietly rolls back: libpq knows.
        return raw.pgconn.transaction_status == _INERROR

    def usable(self, raw) -> bool:
        return not raw.closed and not raw.broken

    def reset(self, raw, in_transaction):
        state = self._reset_state(raw)
        if state is None:
            raw.rollback()
        return state

    def _reset_state(self, raw):
        """What a returned connection needs: True nothing, None a rollback,
        False discarding.  libpq knows the transaction status client-side:
        no round trip unless there really is a transaction to end."""
        status = raw.pgconn.transaction_status
        if status == _IDLE:
            return True
        if status in _IN_TRANSACTION:
            return None
        return False  # ACTIVE (a result still streaming) or UNKNOWN (broken)

    def translate(self, exc, connecting=False, params=None):
        """The fastsess error for ``exc``; ``params``: the statement's
        parameters, to name the one a parameter error is about."""
        if isinstance(exc, UnicodeEncodeError):
            return _params.unencodable(exc, "PostgreSQL", params)
        if not connecting and isinstance(exc, (psycopg.ProgrammingError, psycopg.DataError)):
            err = _parameter_error(exc, params)
            if err is not None:
                return err
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
            if cls is errors.OperationalError and not sqlstate:
                # libpq's or psycopg's own word that the connection failed
                # (a socket error, EOF, "the connection is closed"), which
                # libpq does not always follow by marking it bad.
                cls = errors.ConnectionLost
        if cls is errors.ConflictError:
            key = value = None
            detail = getattr(getattr(exc, "diag", None), "message_detail", None)
            m = _UNIQUE_DETAIL.match(detail or "")
            if m:
                key, value = m.group("key"), m.group("value")
            return errors.ConflictError(message, orig=exc, sqlstate=sqlstate, key=key, value=value)
        return cls(message, orig=exc, sqlstate=sqlstate)

    def copy_insert(self, raw, table: str, columns: list[str], rows: list) -> int:
        """Insert ``rows`` (sequences in ``columns`` order) with one
        ``COPY table (columns) FROM STDIN``; returns the row count.

        Stores exactly what the multi-row INSERT path (typed parameters)
        stores, or refuses.  Before any data is sent it reads the columns'
        types from the catalog (one round trip) and checks every column's
        Python value types against them:

        - binary format when every column is a pair psycopg's binary dumper
          for the column type writes exactly (several times cheaper to format
          than text): bool -> boolean; int -> smallint/integer/bigint when in
          range (the binary dumpers would wrap around); float -> double
          precision; Decimal -> numeric; str -> text/varchar; naive datetime ->
          timestamp, aware -> timestamptz; date; naive time; timedelta ->
          interval; UUID -> uuid; None anywhere;
        - else text format, when each column's pair parses to what the
          parameter path stores: None and str into any type (both paths send
          text for the server to parse); int -> integer types, numeric, real,
          double precision, text/varchar/char; float -> double precision;
          Decimal -> numeric; datetime -> timestamptz, naive -> timestamp; date;
          naive time; timedelta -> interval; UUID; bytes/bytearray/memoryview
          -> bytea; ``psycopg.types.json.Json`` -> json/jsonb, ``Jsonb`` ->
          jsonb; a dict or a ``fastsess.Json`` -> jsonb (JSON text written
          here, see below); a list -> an array whose element type takes
          every element (one element type per column);
        - else ``CopyRefused``, raised before any row is sent (JSON values
          past the first 500 rows: see below), with the transaction usable
          (the catalog query may have begun it): the caller runs the INSERT
          path instead.  Also refused: views and other non-tables, tables
          with rules or row-level security.

        Pairs COPY text gets *differently* (measured on PostgreSQL 15), hence
        refused: float -> integer/bigint (COPY fails, INSERT rounds), float ->
        numeric (COPY keeps 17 significant digits, INSERT 15), aware datetime
        -> timestamp (COPY drops the offset, INSERT converts to the session
        time zone), bool/UUID/float/timedelta/aware datetime -> text (COPY
        writes 't', UUID hex without dashes, 'inf', ...), timedelta -> time
        (COPY fails), and int/float/... into bytea, interval, jsonb or boolean
        (COPY parses the text where INSERT raises DatatypeMismatch).  The
        pairs assume psycopg's default dumpers (none registered by the user
        for them); psycopg's Json/Jsonb wrappers are written by their own
        dumpers.  A str holding a NUL character is refused too (COPY would
        fail after it started, aborting the transaction; the INSERT path
        raises ``errors.InvalidParameterValue`` before sending anything).

        JSON: the INSERT path sends a dict (a ``fastsess.Json``'s value) as
        jsonb, dumped by the connection's dumper for its type; COPY writes
        the JSON text itself, only where that stores the same jsonb value
        (the same text too: ``jsonb::text`` is equal, numbers keep their
        scale).  The connection's dumper must be one ``copy_takes_json``
        vouches for (fastsess's; RESTAlchemy's in the drop-in): they send
        the jsonb of the value's ``json.dumps`` text.  The text is
        orjson's when the value holds nothing but exact dict (str keys),
        list, tuple, str, int within 64 bits, finite float, bool and None
        (orjson then writes the JSON value ``json.dumps`` writes), else
        ``json.dumps``' (ints beyond 64 bits, non-str keys, subclasses).
        Refused: a dict or ``fastsess.Json`` into any column type but jsonb
        (INSERT's jsonb is cast: a json column gets jsonb's normalised text,
        keys reordered and respaced, which COPY cannot reproduce), inside a
        list, on a connection whose client encoding is not UTF-8, and a
        value ``json.dumps`` cannot write or writes as something jsonb
        refuses (NaN or infinity, a NUL character, a lone surrogate): the
        INSERT path raises its own error for those.  The JSON values are
        checked 500 rows at a time while the rows before go out, the
        server parsing them meanwhile; over 500 rows in a transaction the
        COPY runs inside a savepoint (``fastsess_copy``, released after it),
        so that a value refused in a later chunk still leaves nothing
        inserted and the transaction usable (the rows already sent are
        rolled back; in autocommit the failed COPY is its own transaction).

        Errors are the driver's (``psycopg.Error``), for the caller to
        translate: a duplicate key raises UniqueViolation whose
        ``diag.message_detail`` is "Key (id)=(..) already exists.", as with
        INSERT, and no row is inserted.  Unlike INSERT, an error psycopg
        raises while writing rows comes after COPY started, so it leaves the
        transaction aborted rather than untouched (hence the NUL check).
        A row of the wrong length raises ValueError before anything is sent,
        as ``build_insert`` does.

        ``AsyncPostgreSQLAdapter.copy_insert`` is the same with ``await``:
        both are thin shells around ``_CopyJob``, which makes every decision
        above without I/O; the shells send the catalog query, the savepoint
        and the rows.
        """
        job = _CopyJob(table, columns, rows)
        if not job.rows:
            return 0
        cur = raw.cursor()
        try:
            cur.execute(_COPY_TARGET_SQL, job.target)
            job.decide(self, cur, cur.fetchall())
            if job.savepoint:
                cur.execute("SAVEPOINT " + _JSON_SAVEPOINT)
            try:
                with cur.copy(job.statement) as copy:
                    if job.types:
                        copy.set_types(job.types)
                    write_row = copy.write_row
                    for chunk in job.chunks():
                        for row in chunk:
                            write_row(row)
            except CopyRefused:
                if job.savepoint:
                    cur.execute("ROLLBACK TO SAVEPOINT " + _JSON_SAVEPOINT)
                    cur.execute("RELEASE SAVEPOINT " + _JSON_SAVEPOINT)
                raise
            if job.savepoint:
                cur.execute("RELEASE SAVEPOINT " + _JSON_SAVEPOINT)
            return job.count(cur.rowcount)
        finally:
            cur.close()

    def copy_takes_json(self, dumper) -> bool:
        """Whether ``copy_insert`` may write the JSON text of values the
        connection dumps with ``dumper`` (its dumper for dict or for
        ``fastsess.Json``): only if that dumper sends the jsonb of the
        value's ``json.dumps`` text.  fastsess's dumpers do; the RESTAlchemy
        drop-in's adapter adds RESTAlchemy's."""
        return dumper is _JsonbTextDumper or dumper is _JsonValueDumper

    def _check_json_dumpers(self, raw, table, columns, json_columns):
        """CopyRefused unless COPY may write the JSON text of the dicts and
        ``fastsess.Json`` values of ``json_columns`` (index -> the types in
        that column) on this connection."""
        if codecs.lookup(raw.info.encoding).name != "utf-8":
            # The text is checked as UTF-8; another client encoding could
            # fail mid-COPY where the INSERT path fails before sending.
            raise CopyRefused(f"COPY into {table}, column {columns[next(iter(json_columns))]}: "
                              f"JSON with a client encoding other than UTF-8")
        dumper_of = raw.adapters.get_dumper
        for i, kinds in json_columns.items():
            for kind in kinds & _JSON_KINDS:
                try:
                    dumper = dumper_of(kind, PyFormat.AUTO)
                except psycopg.ProgrammingError:
                    dumper = None
                if not self.copy_takes_json(dumper):
                    raise CopyRefused(
                        f"COPY into {table}, column {columns[i]}: the connection dumps "
                        f"{_params.type_name(kind)} values with "
                        f"{getattr(dumper, '__qualname__', dumper)}")

    def socket_fd(self, raw) -> int:
        try:
            return raw.pgconn.socket
        except psycopg.Error:
            return -1

    def idle_alive(self, raw, state) -> bool:
        if state < 0 or raw.closed:
            return False
        pgconn = raw.pgconn
        if state == _ERROR_MESSAGE and not pgconn.ssl_in_use:
            # An ErrorResponse on an idle connection is the server's FATAL
            # goodbye (terminated, shutting down), sent before it closes.
            return False
        # Anything else may be harmless (a NOTIFY, a ParameterStatus, a
        # NOTICE, TLS records): libpq reads it without sending anything.
        try:
            pgconn.consume_input()
        except psycopg.Error:
            return False
        return pgconn.status == _CONNECTION_OK and pgconn.transaction_status == _IDLE


# The table's kind, rules and row-level security, and for each asked-for
# column its type (a domain's base type) and, for an array, its element type.
# No row when there is no such table (COPY then raises what INSERT would).
_COPY_TARGET_SQL = """\
SELECT c.relkind::text, c.relhasrules, c.relrowsecurity, a.attname::text, b.oid::int,
       CASE WHEN b.typcategory = 'A' THEN b.typelem::int ELSE 0 END
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_attribute a
  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY(%s::text[])
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE c.oid = to_regclass(%s)"""

_BINARY = pq.Format.BINARY
_NoneType = type(None)

# Built-in type OIDs (fixed in pg_type.dat).
_BOOL, _BYTEA, _INT8, _INT2, _INT4, _TEXT, _JSON = 16, 17, 20, 21, 23, 25, 114
_FLOAT4, _FLOAT8, _BPCHAR, _VARCHAR, _DATE, _TIME = 700, 701, 1042, 1043, 1082, 1083
_TIMESTAMP, _TIMESTAMPTZ, _INTERVAL, _NUMERIC, _UUID, _JSONB = 1114, 1184, 1186, 1700, 2950, 3802

# Python type -> column types whose COPY *text* input stores what the INSERT
# path's typed parameter stores (None and str: every column type).
_TEXT_SAFE = {
    bool: frozenset({_BOOL}),
    int: frozenset({_INT2, _INT4, _INT8, _NUMERIC, _FLOAT4, _FLOAT8, _TEXT, _VARCHAR, _BPCHAR}),
    float: frozenset({_FLOAT8}),
    decimal.Decimal: frozenset({_NUMERIC}),
    datetime.datetime: frozenset({_TIMESTAMP, _TIMESTAMPTZ}),  # aware: not into timestamp
    datetime.date: frozenset({_DATE}),
    datetime.time: frozenset({_TIME}),  # naive only
    datetime.timedelta: frozenset({_INTERVAL}),
    uuid.UUID: frozenset({_UUID}),
    bytes: frozenset({_BYTEA}),
    bytearray: frozenset({_BYTEA}),
    memoryview: frozenset({_BYTEA}),
    Json: frozenset({_JSON, _JSONB}),
    Jsonb: frozenset({_JSONB}),
}
# Python type -> column types psycopg's *binary* dumper for the column type
# writes exactly (datetime/time further split by time zone, ints by range).
_BINARY_SAFE = {
    bool: frozenset({_BOOL}),
    int: frozenset({_INT2, _INT4, _INT8}),
    float: frozenset({_FLOAT8}),
    decimal.Decimal: frozenset({_NUMERIC}),
    str: frozenset({_TEXT, _VARCHAR}),
    datetime.datetime: frozenset({_TIMESTAMP, _TIMESTAMPTZ}),
    datetime.date: frozenset({_DATE}),
    datetime.time: frozenset({_TIME}),
    datetime.timedelta: frozenset({_INTERVAL}),
    uuid.UUID: frozenset({_UUID}),
}
_BINARY_TYPES = frozenset().union(*_BINARY_SAFE.values())
_INT_RANGE = {_INT2: (-(1 << 15), (1 << 15) - 1), _INT4: (-(1 << 31), (1 << 31) - 1),
              _INT8: (-(1 << 63), (1 << 63) - 1)}
_tzinfo = operator.attrgetter("tzinfo")
_not_none = functools.partial(operator.is_not, None)


def _copy_plan(found, table, columns, by_column):
    """(the column types for a binary COPY or None for a text COPY, {column
    index: the types in it, None for NULLs} for the columns whose dicts and
    ``fastsess.Json`` values go as JSON text); raises CopyRefused when COPY
    must not take these values."""
    if not found:
        return None, {}  # no such table: let COPY raise what INSERT would
    relkind, has_rules, has_rls = found[0][0], found[0][1], found[0][2]
    if relkind not in ("r", "p"):
        raise CopyRefused(f"COPY into {table}: not a table")
    if has_rules or has_rls:
        raise CopyRefused(f"COPY into {table}: the table has rules or row-level security")
    types = {name: (oid, elem) for _, _, _, name, oid, elem in found if name is not None}
    if len(types) != len(set(columns)):
        return None, {}  # an unknown column: let COPY raise what INSERT would
    binary = []
    json_columns = {}
    for i, (name, values) in enumerate(zip(columns, by_column)):
        oid, elem = types[name]
        kinds = set(map(type, values))
        if _NoneType in kinds:
            kinds.discard(_NoneType)
            kinds.add(None)  # marks "some values are None" for _of_kind
        zones = None
        if datetime.datetime in kinds and (oid == _TIMESTAMP or oid == _TIMESTAMPTZ):
            zones = set(map(_tzinfo, _of_kind(values, kinds, datetime.datetime)))
        problem = _text_refusal(values, kinds, oid, elem, zones, json=True)
        if problem:
            raise CopyRefused(f"COPY into {table}, column {name}: {problem}")
        if kinds & _JSON_KINDS:
            json_columns[i] = kinds
        if binary is not None:
            binary = binary + [oid] if _binary_safe(values, kinds, oid, zones) else None
    return binary, json_columns


def _of_kind(values, kinds, kind):
    """The values of type ``kind`` (``kinds``: the types present, None for
    NoneType); an iterable that may be walked more than once."""
    if len(kinds) == 1:
        return values
    if len(kinds) == 2 and None in kinds:
        return list(filter(_not_none, values))
    return [v for v in values if type(v) is kind]


def _text_refusal(values, kinds, oid, elem, zones=None, json=False) -> str | None:
    """Why COPY text must not take ``values`` into a column of type ``oid``
    (``zones``: the tzinfo set of the datetimes for a timestamp column;
    ``json``: dicts and ``fastsess.Json`` values may go into jsonb, as JSON
    text ``copy_insert`` writes; not inside lists)."""
    for kind in kinds:
        if kind is None:
            continue
        if json and oid == _JSONB and kind in _JSON_KINDS:
            continue
        if kind is str:
            # A NUL fails mid-COPY (psycopg's text dumper, the server for
            # binary) and aborts the transaction; INSERT raises before sending.
            if "\x00" in "".join(_of_kind(values, kinds, str)):
                return "a str with a NUL character, which PostgreSQL text cannot hold"
            continue
        if kind is list:
            if not elem:
                return "a list into a column that is not an array"
            problem = _elements_refusal(_of_kind(values, kinds, list), elem)
            if problem:
                return problem
            continue
        safe = _TEXT_SAFE.get(kind)
        if safe is None or oid not in safe:
            return f"{kind.__name__} values into type oid {oid}"
        if kind is datetime.datetime and oid == _TIMESTAMP:
            if zones != {None}:
                return "aware datetime values into timestamp without time zone"
        elif kind is datetime.time:
            if any(map(_not_none, map(_tzinfo, _of_kind(values, kinds, kind)))):
                return "aware time values into time without time zone"
    return None


def _binary_safe(values, kinds, oid, zones) -> bool:
    """Whether psycopg's binary dumper for ``oid`` writes ``values`` exactly
    (after ``_text_refusal`` passed them)."""
    if oid not in _BINARY_TYPES:
        return False
    for kind in kinds:
        if kind is None:
            continue
        safe = _BINARY_SAFE.get(kind)
        if safe is None or oid not in safe:
            return False
        if kind is int:
            ints = _of_kind(values, kinds, int)
            lo, hi = _INT_RANGE[oid]
            if min(ints) < lo or max(ints) > hi:
                return False  # the server's range error, as with INSERT
        elif kind is datetime.datetime:
            if oid == _TIMESTAMPTZ and None in zones:
                return False  # naive into timestamptz: the session time zone, text
    return True


def _elements_refusal(lists, elem) -> str | None:
    """The elements of (nested) lists against the array's element type."""
    flat = []
    pending = list(lists)
    while pending:
        items = pending.pop()
        for item in items:
            if type(item) is list:
                pending.append(item)
            else:
                flat.append(item)
    kinds = set(map(type, flat))
    if _NoneType in kinds:
        kinds.discard(_NoneType)
        if len(kinds) > 1:
            return "lists mixing element types"
        kinds.add(None)
    elif len(kinds) > 1:
        return "lists mixing element types"
    zones = None
    if datetime.datetime in kinds:
        zones = set(map(_tzinfo, _of_kind(flat, kinds, datetime.datetime)))
    return _text_refusal(flat, kinds, elem, 0, zones)


# The Python types whose values copy_insert writes as JSON text (into jsonb).
_JSON_KINDS = frozenset({dict, _params.Json})
_DICTS_OR_NULLS = frozenset({dict, None})
# A float that is not finite in marshal's format 2 output: "g" and the
# double's 8 bytes, little-endian, the last two holding the exponent, all
# ones for NaN and infinity.  Elsewhere the pattern can only match by
# chance, which costs the json.dumps path, never a wrong text.
_NON_FINITE = re.compile(rb"g.{6}[\xf0-\xff][\x7f\xff]", re.S)
# An escaped NUL, or a false alarm (an escaped backslash then "u0000"): json.dumps' path decides.
_HAS_ESCAPED_NUL = operator.methodcaller("__contains__", b"\\u0000")


class _OrjsonDumper(Dumper):
    """A dict as orjson's JSON text, for a COPY whose dicts were all checked
    (``_orjson_writes``): orjson called straight from psycopg's row
    formatter, no Python frame per value."""

    dump = staticmethod(orjson.dumps) if orjson is not None else None


# Rows whose JSON is checked and sent at a time: the server parses the rows
# sent before while the next ones are checked.
_JSON_CHUNK = 500
_JSON_SAVEPOINT = "fastsess_copy"


class _CopyJob:
    """The I/O-free core of ``copy_insert``, shared by the sync and async
    shells: the rows checked (``__init__``), then, from the catalog's answer,
    the COPY statement, its binary types, whether a savepoint guards it and
    the rows to write chunk by chunk (``decide``), or CopyRefused."""

    __slots__ = ("table", "columns", "rows", "target", "_head", "_by_column", "statement",
                 "types", "savepoint", "_json_columns", "_first")

    def __init__(self, table, columns, rows):
        width = len(columns)
        if not width:
            raise ValueError("an insert needs at least one column")
        head = _impl.quote_table("postgresql", table)
        names = ", ".join([_impl.quote_identifier("postgresql", c) for c in columns])
        if not isinstance(rows, (list, tuple)):
            rows = list(rows)
        if rows and set(map(len, rows)) != {width}:
            for i, row in enumerate(rows):
                if len(row) != width:
                    raise ValueError(f"row {i} has {len(row)} values, expected {width}")
        self.table, self.columns, self.rows = table, columns, rows
        #: The parameters of _COPY_TARGET_SQL.
        self.target = (list(columns), head)
        self._head = f"COPY {head} ({names}) FROM STDIN"
        self.savepoint = False
        self._json_columns = None

    def decide(self, adapter, cur, found) -> None:
        """How the rows go, from ``found`` (_COPY_TARGET_SQL's rows); may
        register orjson's dumper on ``cur`` (nothing is sent)."""
        table, columns, rows = self.table, self.columns, self.rows
        by_column = self._by_column = list(zip(*rows))
        binary_oids, json_columns = _copy_plan(found, table, columns, by_column)
        raw = cur.connection
        self.statement, self.types = self._head, None
        if json_columns:
            adapter._check_json_dumpers(raw, table, columns, json_columns)
            # Dicts that pass _orjson_writes stay dicts: orjson writes them
            # straight from psycopg's row formatting.
            cur.adapters.register_dumper(dict, _OrjsonDumper)
            self._json_columns = json_columns
            self._first = self._json_chunk(0)  # checked before anything is sent
            # Over one chunk a later refusal comes after rows went out: a
            # savepoint takes them back.  In autocommit the failed COPY is a
            # transaction of its own: no savepoint.
            self.savepoint = len(rows) > _JSON_CHUNK and not raw.autocommit
            return
        if binary_oids:
            lookup = raw.adapters.get_dumper_by_oid
            try:
                for oid in binary_oids:
                    lookup(oid, _BINARY)
            except psycopg.ProgrammingError:
                return  # no binary dumper registered: text then
            self.statement, self.types = self._head + " (FORMAT BINARY)", binary_oids

    def chunks(self):
        """The rows to write, in chunks: with JSON columns each chunk is
        checked while the server parses the one sent before; a chunk COPY
        must refuse raises CopyRefused (the shell rolls back to the
        savepoint)."""
        if self._json_columns is None:
            yield self.rows
            return
        yield self._first
        for start in range(_JSON_CHUNK, len(self.rows), _JSON_CHUNK):
            yield self._json_chunk(start)

    def _json_chunk(self, start):
        try:
            return _json_chunk(self.rows, self._by_column, self._json_columns, start,
                               start + _JSON_CHUNK)
        except CopyRefused as e:
            raise CopyRefused(f"COPY into {self.table}, column {self.columns[e.args[1]]}: "
                              f"{e.args[0]}") from None

    def count(self, rowcount) -> int:
        return rowcount if rowcount >= 0 else len(self.rows)


def _json_chunk(rows, by_column, json_columns, start, stop):
    """Rows ``start:stop`` as COPY takes them: as they are when every JSON
    value in them is a dict orjson writes as ``json.dumps`` does, else with
    each dict and ``fastsess.Json`` as its JSON text; ``CopyRefused(why,
    column index)`` if one cannot go."""
    values = {i: by_column[i][start:stop] for i in json_columns}
    if orjson is not None and all(kinds <= _DICTS_OR_NULLS and _orjson_writes(values[i])
                                  for i, kinds in json_columns.items()):
        return rows[start:stop]
    chunk = [column[start:stop] for column in by_column]
    for i in json_columns:
        try:
            chunk[i] = list(map(_copy_json, values[i]))
        except CopyRefused as e:
            raise CopyRefused(e.args[0], i) from None
    return zip(*chunk)


def _orjson_writes(values):
    """Whether orjson writes each dict of ``values`` (dicts and None) as the
    JSON value ``json.dumps`` writes (see ``_json_text``), text jsonb takes
    (no escaped NUL): the whole column checked at once."""
    try:
        if _NON_FINITE.search(marshal.dumps(values, 2)):
            return False
        # The texts are let go one by one: orjson writes them again in COPY.
        return not any(map(_HAS_ESCAPED_NUL, map(orjson.dumps, values)))
    except (ValueError, TypeError):  # not exact builtins; a big int or non-str key
        return False


def _copy_json(value):
    """What COPY writes for ``value`` in a jsonb column: a dict or a
    ``fastsess.Json`` as its JSON text, anything else as it is."""
    cls = type(value)
    if cls is dict:
        return _json_text(value)
    if cls is _params.Json:
        return _json_text(value.value)
    return value


def _json_text(value) -> str:
    """JSON text of ``value`` whose jsonb is the jsonb of ``json.dumps(value)``
    (the INSERT path's), or CopyRefused."""
    if orjson is not None:
        # orjson is ~15x faster than json.dumps and writes the same JSON
        # value for exact dict (str keys), list, tuple, str, int, float, bool
        # and None; it refuses ints beyond 64 bits and non-str keys, but
        # writes NaN/infinity as null and takes UUIDs, Enum members,
        # datetimes, dataclasses and subclasses, which json.dumps refuses or
        # writes otherwise.  marshal (C, one pass) takes only exact
        # builtins, and its bytes show a non-finite float.
        try:
            plain = _NON_FINITE.search(marshal.dumps(value, 2)) is None
        except ValueError:  # not marshallable: something but exact builtins
            plain = False
        if plain:
            try:
                data = orjson.dumps(value)
            except TypeError:
                pass
            else:
                if b"\\u0000" not in data:  # else json.dumps' path checks it exactly
                    return data.decode()
    try:
        text = _params.dumps(value)
    except (TypeError, ValueError, RecursionError) as e:
        raise CopyRefused(f"a JSON value json.dumps cannot write ({e})") from None
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise CopyRefused("JSON text with a NUL character (\\u0000), which jsonb cannot hold")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise CopyRefused("JSON text with a lone surrogate, which UTF-8 cannot hold") from None
    return text


def _python_codec(pg_encoding: str) -> str:
    """The Python codec of a PostgreSQL client encoding name."""
    name = pg_encoding.lower().replace("-", "").replace("_", "")
    known = {"utf8": "utf-8", "unicode": "utf-8", "sqlascii": "ascii", "latin1": "latin-1",
             "win1252": "cp1252", "win1251": "cp1251", "euckr": "euc_kr", "eucjp": "euc_jp",
             "sjis": "shift_jis", "big5": "big5", "gbk": "gbk"}
    codec = known.get(name, pg_encoding)
    codecs.lookup(codec)  # a LookupError here beats a wrong decode later
    return codec


# orjson turns integers beyond 64 bits into floats where json.loads keeps
# them exact; a run of 19+ digits is where that can start, so such documents
# (and any orjson refuses: lone surrogates, 1e400 ...) go to json.loads.
# Everything else parses to equal values.  The digit-run test maps every
# digit to "0" and looks for 19 zeros: a tenth of a regex search's cost.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _json_loads(data):
    """``json.loads(data)``, through orjson where that gives the same result."""
    if _LONG_RUN not in data.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


class AsyncPostgreSQLAdapter(PostgreSQLAdapter):
    """PostgreSQL through psycopg's ``AsyncConnection``: the same settings,
    parameter rule, error translation and liveness check; the calls that
    wait are coroutines.  Batches plan COPY as sync ones do (from
    ``copy_min_rows`` rows): ``copy_insert`` is the awaited twin of the sync
    one, both shells around ``_CopyJob``."""

    positional_cursor = psycopg.AsyncRawCursor

    async def connect(self):
        try:
            raw = await psycopg.AsyncConnection.connect(autocommit=False, **self._connect_kwargs())
        except psycopg.Error as e:
            raise self.translate(e, connecting=True) from None
        try:
            if self.readonly:
                await raw.set_read_only(True)  # BEGIN READ ONLY: no extra round trip
            return self._set_up(raw, AsyncCursor)
        except BaseException:
            self.close(raw)
            raise

    def reset_state(self, raw, in_transaction):
        return self._reset_state(raw)

    async def reset(self, raw, in_transaction):
        state = self._reset_state(raw)
        if state is None:
            await raw.rollback()
        return state

    def close(self, raw) -> None:
        # libpq's finish() does not wait: closing needs no event loop (a
        # pool can close connections from a sync call or a fork hook).
        raw.pgconn.finish()

    async def copy_insert(self, raw, table, columns, rows) -> int:
        """``PostgreSQLAdapter.copy_insert`` (the same rules and results),
        each round trip awaited."""
        job = _CopyJob(table, columns, rows)
        if not job.rows:
            return 0
        cur = raw.cursor()
        try:
            await cur.execute(_COPY_TARGET_SQL, job.target)
            job.decide(self, cur, await cur.fetchall())
            if job.savepoint:
                await cur.execute("SAVEPOINT " + _JSON_SAVEPOINT)
            try:
                async with cur.copy(job.statement) as copy:
                    if job.types:
                        copy.set_types(job.types)
                    write_row = copy.write_row
                    for chunk in job.chunks():
                        for row in chunk:
                            # Formats into psycopg's buffer; waits only when
                            # a full buffer goes out.
                            await write_row(row)
            except CopyRefused:
                if job.savepoint:
                    await cur.execute("ROLLBACK TO SAVEPOINT " + _JSON_SAVEPOINT)
                    await cur.execute("RELEASE SAVEPOINT " + _JSON_SAVEPOINT)
                raise
            if job.savepoint:
                await cur.execute("RELEASE SAVEPOINT " + _JSON_SAVEPOINT)
            return job.count(cur.rowcount)
        finally:
            await cur.close()

    async def max_statement_bytes(self, session) -> int:
        return 0
