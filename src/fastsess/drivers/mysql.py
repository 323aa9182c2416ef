"""MySQL and MariaDB through mysqlclient (``MySQLdb``, the C driver)."""

from __future__ import annotations

import datetime
import enum
import numbers
import operator
import uuid
from itertools import chain

import MySQLdb
import MySQLdb.connections
import MySQLdb.cursors
from MySQLdb import converters

from .. import _impl, errors
from .. import params as _params
from .base import BatchPlan, DriverAdapter
from .mysql_base import connect_settings
from .mysql_base import translate as mysql_translate

_BY_DRIVER_CLASS = (
    (MySQLdb.IntegrityError, errors.IntegrityError),
    (MySQLdb.ProgrammingError, errors.ProgrammingError),
    (MySQLdb.DataError, errors.DataError),
    (MySQLdb.OperationalError, errors.OperationalError),
)


_DIALECT = "MySQL"
_ParameterProblem = errors._ParameterProblem  # UnsupportedParameter, InvalidParameterValue
_NoneType = type(None)
_Json = _params.Json


_SET_REASON = ("a set has no SQL value (mysqlclient would write a SET column's "
               "comma-separated string, psycopg refuses it)")


def _refuse_set(value, encoders):
    """The connections' encoder for set and frozenset (see _SET_REASON)."""
    raise _params.unsupported(value, _DIALECT, _SET_REASON)


# Types without an entry among mysqlclient's encoders whose str() is their
# faithful SQL text (mysqlclient falls back to quoting str(value)).
_STR_FAITHFUL = (datetime.time, uuid.UUID)

# How Connection.literal writes a type it does not handle up front (found by
# Connection._judge, once per type and connection).
_STR, _BYTES, _MEMORYVIEW, _SEQUENCE, _JSON, _JSON_VALUE, _ESCAPE, _INTEGRAL, _REAL = range(9)


class Connection(MySQLdb.connections.Connection):
    """A mysqlclient connection whose ``literal()`` (what ``cursor.execute``
    maps over the parameters, and the batch INSERT kernel calls) writes a
    dict, or a ``fastsess.Json`` value, as a string literal of its JSON text
    and refuses what it cannot write faithfully, raising
    ``errors.UnsupportedParameter`` where mysqlclient would write ``str(value)``
    (``'<object object at 0x..>'``, ``"{'k': 1}"``) or a SET string.

    A ``memoryview`` is written as its bytes (mysqlclient wrote
    ``'<memory at 0x..>'``; psycopg sends it as bytea).

    Every other value gets mysqlclient's own literal, as before: str, bytes,
    None, int, float, bool, Decimal, date, datetime, timedelta (its encoders),
    time and UUID (``str()``), lists and tuples (``(a,b)`` for ``IN %s``) and
    subclasses of all of these (a StrEnum, an IntEnum, a namedtuple), the
    encoder found along the type's MRO.  An ``int`` subclass (any
    ``numbers.Integral``) is written as the quoted digits of its integer
    value and a ``float`` subclass as its quoted ``float`` repr: what
    mysqlclient wrote for an IntEnum or a numpy float64 (it quotes
    ``str(value)``), where for a mix-in ``(int, Enum)`` member it wrote
    ``'Color.RED'``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoders[set] = self.encoders[frozenset] = _refuse_set
        self._verdicts = {}

    def literal(self, o):
        cls = type(o)
        if cls is str:
            return self.string_literal(o.encode(self.encoding))
        if cls is bytes or cls is bytearray:
            return self._bytes_literal(o)
        if cls is tuple or cls is list:
            return self._tuple_literal(o)
        encoders = self.encoders
        if cls in encoders:  # int, float, None, bool, Decimal, dates, set (refused), ...
            s = self.escape(o, encoders)
            return s.encode(self.encoding) if isinstance(s, str) else s
        verdict = self._verdicts.get(cls)
        if verdict is None:
            verdict = self._judge(cls)
        if verdict == _STR:
            return self.string_literal(o.encode(self.encoding))
        if verdict == _JSON:
            return self.string_literal(_params.json_text(o, _DIALECT).encode(self.encoding))
        if verdict == _JSON_VALUE:
            text = _params.json_text(o.value, _DIALECT, o)
            return self.string_literal(text.encode(self.encoding))
        if verdict == _ESCAPE:
            s = self.escape(o, encoders)
            return s.encode(self.encoding) if isinstance(s, str) else s
        if verdict == _INTEGRAL:
            return self.string_literal(str(operator.index(o)).encode("ascii"))
        if verdict == _REAL:
            return self.string_literal(float.__repr__(o).encode("ascii"))
        if verdict == _BYTES:
            return self._bytes_literal(o)
        if verdict == _MEMORYVIEW:
            return self._bytes_literal(o.tobytes())
        if verdict == _SEQUENCE:
            return self._tuple_literal(o)
        raise _params.unsupported(o, _DIALECT, verdict)  # the verdict is the reason

    def _judge(self, cls):
        """How ``literal`` writes values of type ``cls``: one of the verdicts
        above, or a str saying why it refuses them."""
        verdict = None
        if issubclass(cls, str):
            verdict = _STR
        elif issubclass(cls, (bytes, bytearray)):
            verdict = _BYTES
        elif cls is memoryview:  # mysqlclient wrote '<memory at 0x..>'
            verdict = _MEMORYVIEW
        elif issubclass(cls, (tuple, list)):
            verdict = _SEQUENCE
        elif issubclass(cls, dict):
            verdict = _JSON
        elif issubclass(cls, _Json):
            verdict = _JSON_VALUE
        else:
            encoders = self.encoders
            for base in cls.__mro__:
                encoder = encoders.get(base)
                if encoder is _refuse_set:
                    verdict = _SET_REASON
                elif encoder is not None or base in _STR_FAITHFUL:
                    verdict = _INTEGRAL if base is int else _REAL if base is float else _ESCAPE
                if verdict is not None:
                    break
            if verdict is None:
                if issubclass(cls, numbers.Integral):
                    verdict = _INTEGRAL
                elif issubclass(cls, enum.Enum):
                    verdict = "an Enum member has no SQL value; pass its .value or its .name"
                else:
                    verdict = "no adapter stores it faithfully"
        self._verdicts[cls] = verdict
        return verdict


# Exact types every literal() takes as they are (checked up front by
# Cursor.executemany without calling literal()).
_PLAIN = frozenset({str, int, float, bool, _NoneType, bytes, datetime.datetime, datetime.date,
                    datetime.timedelta, datetime.time, uuid.UUID})


class Cursor(MySQLdb.cursors.Cursor):
    """mysqlclient's cursor, whose ``executemany`` checks every parameter
    set before it sends any: mysqlclient sends a multi-row INSERT in chunks
    and runs other statements once per set, so a value refused in a later
    set would otherwise come after earlier ones ran."""

    def executemany(self, query, args):
        if args is not None and not isinstance(args, (list, tuple)):
            args = list(args)
        if args:
            _check_sets(self._get_db(), args)
        return super().executemany(query, args)


def _check_sets(db, sets) -> None:
    """Raise the parameter error (naming the set and the parameter) for the
    first value in ``sets`` that ``db.literal`` refuses."""
    try:
        if isinstance(sets[0], dict):
            flat = chain.from_iterable(map(dict.values, sets))
        else:
            flat = chain.from_iterable(sets)
        odd = set(map(type, flat)) - _PLAIN
    except TypeError:  # sets of mixed kinds: check them all
        odd = None
    if odd is not None and not odd:
        return
    literal = db.literal
    for i, values in enumerate(sets):
        if isinstance(values, dict):
            items = values.items()
        elif isinstance(values, (list, tuple)):
            items = enumerate(values)
        else:
            continue  # not a parameter set: mysqlclient says so
        for key, value in items:
            if odd is None or type(value) in odd:
                try:
                    literal(value)
                except _ParameterProblem as e:
                    raise _params.placed(e, _DIALECT, key, i, e._value is not value) from None


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
        kwargs = connect_settings(self)
        kwargs.setdefault("cursorclass", Cursor)
        try:
            return Connection(**kwargs)
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

    def translate(self, exc, connecting=False, params=None):
        """The fastsess error for ``exc``; ``params``: the statement's
        parameters, to name the one a parameter error is about."""
        if isinstance(exc, _ParameterProblem):  # from Connection.literal
            return _params.place(exc, _DIALECT, params)
        return mysql_translate(self, exc, connecting, MySQLdb.Error, _BY_DRIVER_CLASS, params)

    # mysqlclient has no server-side binding: cursor.execute() escapes every
    # parameter with the connection's literal() and splices it into the
    # statement on the client, one Python call per value.  A batch INSERT
    # writes the very same literals in one kernel call instead (the str
    # escaping still goes through the connection's string_literal, which
    # knows its character set and SQL mode): 0.6x of executemany.
    def insert_plan(self, raw, table, columns, values, max_params, max_bytes):
        return BatchPlan(lambda: self.insert_statements(raw, table, columns, values, max_bytes))

    def insert_statements(self, raw, table, columns, values, max_bytes) -> list:
        """``(statement, None)`` per chunk of a multi-row INSERT with the
        values written as the connection's own literals."""
        encoders = raw.encoders
        # The fixed int/float/NULL literals are only right while the
        # connection uses mysqlclient's own encoders for those types.
        fast = (encoders.get(int) is converters.Thing2Str
                and encoders.get(float) is converters.Float2Str
                and encoders.get(type(None)) is converters.None2NULL)
        try:
            statements = _impl.build_literal_insert(table, columns, values, raw.literal,
                                                    raw.string_literal, raw.encoding, fast,
                                                    max_bytes)
        except _ParameterProblem as e:  # name the row and column (nothing was sent)
            raise _params.place_in_rows(e, _DIALECT, columns, values) from None
        return [(statement, None) for statement in statements]

    def max_statement_bytes(self, session) -> int:
        if not self._max_packet:
            row = session.execute("SELECT @@max_allowed_packet").fetchone()
            # Leave room for the packet header and our own estimate's slack.
            self._max_packet = int(next(iter(row.values()))) - 1024
        return self._max_packet

    def socket_fd(self, raw) -> int:
        try:
            return raw.fileno()
        except MySQLdb.Error:
            return -1

    def idle_alive(self, raw, state) -> bool:
        # The server sends nothing unasked on an idle connection: whatever
        # waits is its goodbye (an error packet, EOF) before closing.
        return False
