"""Pure-Python twin of the compiled kernels in ``ext/fastsess/_speedups.pyx``.

Both modules expose the same names, take the same arguments and raise the
same exceptions with the same messages; ``tests/test_kernels_diff.py`` holds
them to that.  Each is a whole implementation: neither imports the other.
What they share (constants, the limit checks, the cache-key encoding of
subclasses and plain objects) is in ``fastsess._kernels_common``.  Only
``fastsess._impl`` should import either of them.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import math
import os
import re
import select
import socket
import struct
import uuid

import xxhash

from ._kernels_common import (
    LOCKING_READ,
    MAX_BYTES_LIMIT,
    MAX_ENTRIES_LIMIT,
    MAX_IDENT,
    MAX_PARAMS_LIMIT,
    QUOTES,
    READ_ONLY,
    SCALAR_LITERAL,
    SIZE_CAP,
    STATEMENT_KIND_MAX_LEN,
    STATEMENT_KINDS_MAX,
    VALUE_OVERHEAD,
    check_limit,
    exotic,
    plain_class_name,
)

__impl__ = "python"


def row_to_dict(names, row):
    """One row (a sequence of values) as a dict keyed by column name.

    With duplicate names the last value wins, as ``dict(zip(names, row))``
    gives: the key keeps the position of its first occurrence.
    """
    if len(row) != len(names):
        raise ValueError(f"row has {len(row)} values, expected {len(names)}")
    return dict(zip(names, row))


def rows_to_dicts(names, rows):
    """A list of rows as a list of fresh dicts (see ``row_to_dict``)."""
    n = len(names)
    out = []
    append = out.append
    for row in rows:
        if len(row) != n:
            raise ValueError(f"row has {len(row)} values, expected {n}")
        append(dict(zip(names, row)))
    return out


def column_labels(description):
    """The labels of a DB-API ``description`` (each entry's first item) as a
    tuple; None for None (a statement without a result set)."""
    if description is None:
        return None
    return tuple([d[0] for d in description])


def decoded_names(fname, n, codec):
    """``(fname(0).decode(codec), ..., fname(n - 1).decode(codec))``: a
    result's field names from libpq's bytes."""
    return tuple([fname(i).decode(codec) for i in range(n)])


def quote_identifier(dialect, name):
    """``name`` quoted as one identifier for ``dialect`` ("postgresql"/"mysql").

    Refuses (ValueError) what could not be quoted safely or would name another
    object: empty names, NUL, the dialect's quote character, over-long names.
    """
    quote = QUOTES.get(dialect)
    if quote is None:
        raise ValueError(f"unknown dialect {dialect!r}, expected one of: mysql, postgresql")
    if not isinstance(name, str):
        raise TypeError(f"identifier must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("identifier must not be empty")
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    if quote in name:
        raise ValueError(f"identifier {name!r} contains the quote character {quote}")
    limit = MAX_IDENT[dialect]
    size = len(name.encode("utf-8")) if dialect == "postgresql" else len(name)
    if size > limit:
        unit = "bytes" if dialect == "postgresql" else "characters"
        raise ValueError(f"identifier {name!r} is longer than {limit} {unit}")
    return quote + name + quote


def quote_table(dialect, table):
    """A table name, optionally schema-qualified as ``schema.table``, quoted."""
    if not isinstance(table, str):
        raise TypeError(f"table name must be a str, got {type(table).__name__}")
    return ".".join([quote_identifier(dialect, part) for part in table.split(".")])


def _literal_size(value):
    """A generous estimate of the bytes ``value`` takes as a MySQL literal."""
    if isinstance(value, str):
        # Worst case: 4 UTF-8 bytes per character, each escaped (x2 is not
        # needed for multi-byte characters, x4 covers both cases).
        return 4 * len(value) + VALUE_OVERHEAD
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Escaped binary can double; a hex literal doubles plus a prefix.
        return 2 * len(value) + 3 + VALUE_OVERHEAD
    return SCALAR_LITERAL + VALUE_OVERHEAD


def _check_limits(max_params, max_bytes):
    """The builders' limits: see ``fastsess._kernels_common``."""
    check_limit("max_params", max_params, 1, MAX_PARAMS_LIMIT)
    check_limit("max_bytes", max_bytes, 0, MAX_BYTES_LIMIT)


def _chunk_limits(width, max_params):
    """Rows one statement may carry given ``width`` bound values per row."""
    if width > max_params:
        raise ValueError(
            f"a row needs {width} parameters, more than the {max_params} one statement can carry"
        )
    return max_params // width


def _chunks(rows, width, max_params, max_bytes, head_size, row_text_size):
    """Split ``rows`` into lists of rows that each fit one statement.

    A chunk holds at most ``max_params // width`` rows and, when
    ``max_bytes`` is not 0 (MySQL's ``max_allowed_packet``), at most as many
    rows as the estimated statement size allows.  Every row is checked for
    ``width`` values first, so a bad row fails before any chunk is returned.
    """
    per_chunk = _chunk_limits(width, max_params)
    rows = list(rows)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, expected {width}")
    if not max_bytes:
        return [rows[i:i + per_chunk] for i in range(0, len(rows), per_chunk)]
    chunks = []
    current = []
    size = head_size
    for row in rows:
        row_size = row_text_size
        for value in row:
            row_size += _literal_size(value)
        if head_size + row_size > max_bytes:
            # Capped as the compiled module's 64-bit sum is (see SIZE_CAP).
            raise ValueError(
                f"a row needs about {min(head_size + row_size, SIZE_CAP)} bytes, "
                f"more than the {max_bytes} one statement can carry"
            )
        if current and (len(current) == per_chunk or size + row_size > max_bytes):
            chunks.append(current)
            current = []
            size = head_size
        current.append(row)
        size += row_size
    if current:
        chunks.append(current)
    return chunks


def build_insert(dialect, table, columns, rows, max_params, max_bytes=0):
    """Multi-row INSERT statements for ``rows`` (sequences in ``columns`` order).

    Returns a list of ``(statement, params)`` pairs, one per chunk, each
    statement a single ``INSERT INTO t (..) VALUES (..), (..)`` with ``%s``
    placeholders and ``params`` the flat list of values.  An empty ``rows``
    gives an empty list.  ``max_params`` and ``max_bytes`` (0: no byte limit)
    bound each statement; see ``fastsess._kernels_common`` for their ranges.
    """
    _check_limits(max_params, max_bytes)
    return _insert_statements(dialect, table, columns, rows, max_params, max_bytes, "")


def build_upsert(dialect, table, columns, rows, key_columns, update_columns, max_params,
                 max_bytes=0):
    """``build_insert`` statements that update the existing row on a conflict.

    PostgreSQL: ``ON CONFLICT (keys) DO UPDATE SET c = EXCLUDED.c, ..``;
    MySQL: ``ON DUPLICATE KEY UPDATE c = VALUES(c), ..``.  ``update_columns``
    None means every column not in ``key_columns``; an empty list leaves the
    existing rows as they are (``DO NOTHING``; on MySQL a no-op assignment).
    """
    _check_limits(max_params, max_bytes)
    tail = _upsert_tail(dialect, columns, key_columns, update_columns)
    return _insert_statements(dialect, table, columns, rows, max_params, max_bytes, tail)


def _upsert_tail(dialect, columns, key_columns, update_columns):
    """The conflict clause of an upsert."""
    columns = list(columns)
    key_columns = list(key_columns)
    if not key_columns:
        raise ValueError("an upsert needs at least one key column")
    for name in key_columns:
        if name not in columns:
            raise ValueError(f"key column {name!r} is not among the inserted columns")
    if update_columns is None:
        update_columns = [c for c in columns if c not in key_columns]
    else:
        update_columns = list(update_columns)
        for name in update_columns:
            if name not in columns:
                raise ValueError(f"update column {name!r} is not among the inserted columns")
    updates = [quote_identifier(dialect, c) for c in update_columns]
    if dialect == "postgresql":
        target = ", ".join([quote_identifier(dialect, c) for c in key_columns])
        if updates:
            tail = (f" ON CONFLICT ({target}) DO UPDATE SET "
                    + ", ".join([f"{c} = EXCLUDED.{c}" for c in updates]))
        else:
            tail = f" ON CONFLICT ({target}) DO NOTHING"
    elif updates:
        tail = " ON DUPLICATE KEY UPDATE " + ", ".join([f"{c} = VALUES({c})" for c in updates])
    else:  # assigning a key column to itself changes nothing
        key = quote_identifier(dialect, key_columns[0])
        tail = f" ON DUPLICATE KEY UPDATE {key} = {key}"
    return tail.replace("%", "%%")  # a % in a name is literal


def _insert_statements(dialect, table, columns, rows, max_params, max_bytes, tail):
    """``INSERT INTO t (..) VALUES (..), (..)`` + ``tail`` per chunk of rows."""
    columns = list(columns)
    if not columns:
        raise ValueError("an insert needs at least one column")
    head = (
        "INSERT INTO "
        + quote_table(dialect, table)
        + " ("
        + ", ".join([quote_identifier(dialect, c) for c in columns])
        + ") VALUES "
    ).replace("%", "%%")  # statements run with parameters: a % in a name is literal
    width = len(columns)
    group = "(" + ", ".join(["%s"] * width) + ")"
    out = []
    for chunk in _chunks(rows, width, max_params, max_bytes, len(head) + len(tail), len(group) + 2):
        params = []
        for row in chunk:
            params.extend(row)
        out.append((head + ", ".join([group] * len(chunk)) + tail, params))
    return out


def build_literal_insert(table, columns, rows, literal, string_literal, encoding, fast,
                         max_bytes):
    """MySQL multi-row INSERT statements (bytes) with every value written as
    the literal mysqlclient itself would send for it.

    mysqlclient has no server-side binding: ``cursor.execute`` escapes each
    value with the connection's ``literal()`` and splices the result into the
    statement on the client.  This builds the same text without a Python call
    per value where the rule is fixed: ``string_literal(v.encode(encoding))``
    for a str (as ``literal()`` does), and with ``fast`` (the connection's
    encoders for int, float and None are mysqlclient's own) ``NULL``, the
    decimal digits of an int and ``repr()`` of a finite float with ``e0``
    appended when it has no exponent.  Every other value goes through
    ``literal(value)``.  Each statement is at most ``max_bytes`` long; a row
    that cannot fit one statement is a ValueError, as is a row with the wrong
    number of values (checked before anything is built).  ``max_bytes`` is
    an int from 1 to ``fastsess._kernels_common.MAX_BYTES_LIMIT``.
    """
    check_limit("max_bytes", max_bytes, 1, MAX_BYTES_LIMIT)
    columns = list(columns)
    if not columns:
        raise ValueError("an insert needs at least one column")
    head = ("INSERT INTO " + quote_table("mysql", table) + " ("
            + ", ".join([quote_identifier("mysql", c) for c in columns]) + ") VALUES ").encode(encoding)
    width = len(columns)
    rows = list(rows)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, expected {width}")
    out = []
    parts = [head]
    size = len(head)
    for row in rows:
        text = b"(" + b",".join([_mysql_literal(v, literal, string_literal, encoding, fast)
                                 for v in row]) + b")"
        if len(head) + len(text) > max_bytes:
            raise ValueError(f"a row needs {len(head) + len(text)} bytes, "
                             f"more than the {max_bytes} one statement can carry")
        if len(parts) > 1 and size + 1 + len(text) > max_bytes:
            out.append(b"".join(parts))
            parts = [head]
            size = len(head)
        if len(parts) > 1:
            parts.append(b",")
            size += 1
        parts.append(text)
        size += len(text)
    if len(parts) > 1:
        out.append(b"".join(parts))
    return out


def _mysql_literal(value, literal, string_literal, encoding, fast):
    """One value's literal, as mysqlclient's ``Connection.literal`` gives it."""
    cls = type(value)
    if cls is str:
        return _checked(string_literal(value.encode(encoding)), "string_literal")
    if fast:
        if value is None:
            return b"NULL"
        if cls is int:
            return b"%d" % value
        if cls is float and math.isfinite(value):
            text = repr(value)
            return (text if "e" in text else text + "e0").encode("ascii")
    return _checked(literal(value), "literal")


def _checked(text, name):
    if type(text) is not bytes:
        raise TypeError(f"{name}() gave a {type(text).__name__}, expected bytes")
    return text


def build_delete(dialect, table, key_columns, keys, max_params, max_bytes=0):
    """Batch DELETE statements by primary key.

    ``keys`` holds one sequence of key values per row, in ``key_columns``
    order.  One key column gives ``DELETE FROM t WHERE k IN (%s, ..)``; a
    composite key gives ``WHERE (a, b) IN ((%s, %s), ..)``.  Returns a list of
    ``(statement, params)`` pairs; an empty ``keys`` gives an empty list.
    The limits are those of ``build_insert``.
    """
    _check_limits(max_params, max_bytes)
    key_columns = list(key_columns)
    if not key_columns:
        raise ValueError("a delete by key needs at least one key column")
    width = len(key_columns)
    quoted = [quote_identifier(dialect, c) for c in key_columns]
    if width == 1:
        head = "DELETE FROM " + quote_table(dialect, table) + " WHERE " + quoted[0] + " IN ("
        group = "%s"
    else:
        head = (
            "DELETE FROM "
            + quote_table(dialect, table)
            + " WHERE ("
            + ", ".join(quoted)
            + ") IN ("
        )
        group = "(" + ", ".join(["%s"] * width) + ")"
    head = head.replace("%", "%%")  # a % in a name is literal, as in build_insert
    out = []
    for chunk in _chunks(keys, width, max_params, max_bytes, len(head) + 1, len(group) + 2):
        params = []
        for key in chunk:
            params.extend(key)
        out.append((head + ", ".join([group] * len(chunk)) + ")", params))
    return out


_PERCENT_CODES = re.compile(r"%(.?)", re.S)


def dollar_params(statement):
    """A builder's statement with PostgreSQL's own ``$1, $2, ..`` placeholders.

    Each ``%s`` becomes the next ``$n`` and each ``%%`` a ``%``; any other
    ``%`` is a ValueError.  Run on a ``psycopg.RawCursor``, the statement
    reaches libpq as it is: psycopg's ``%s`` parser, which is not cached
    for statements over 4 KiB, never sees a big batch.
    """
    if type(statement) is not str:
        raise TypeError(f"expected a str statement, got {type(statement).__name__}")
    out = []
    n = 0
    at = 0
    for m in _PERCENT_CODES.finditer(statement):
        code = m.group(1)
        if code == "s":
            n += 1
            out.append(statement[at:m.start()] + "$" + str(n))
        elif code == "%":
            out.append(statement[at:m.start()] + "%")
        else:
            raise ValueError(f"only %s and %% may follow a % in a built statement, "
                             f"found {m.group(0)!r} at {m.start()}")
        at = m.end()
    out.append(statement[at:])
    return "".join(out)


# -- query-cache keys -------------------------------------------------------------
#
# ``encode_key`` writes a canonical encoding of a (nested) query input: every
# value starts with a one-byte type tag, and every variable-length part carries
# its length (or, for ints, a terminator).  The encoding is therefore
# prefix-free, and two inputs get the same bytes only if they are the same
# query input: 1, True, 1.0, "1", Decimal(1) and an IntEnum 1 all differ, a
# tuple differs from a list, and dicts and sets are written in sorted order of
# their encoded items, so equal ones give equal bytes whatever their order.
#
# Why this makes the query cache exact: ``cache_key`` returns the 128-bit xxh3
# hash of the encoding *and* the encoding.  The hash is only the dict key that
# finds an entry; the entry keeps the encoding it was stored under, and a hit
# compares that with the new encoding byte for byte.  Two inputs whose
# encodings share a hash therefore never see each other's results: a
# collision costs a miss, never a wrong answer.

_MAX_DEPTH = 64
_MAX_LEN = 0xFFFF_FFFF  # lengths are written in 4 bytes
_pack_double = struct.Struct(">d").pack
_pack_len = struct.Struct("<I").pack


def _too_deep():
    return ValueError(f"value nests deeper than {_MAX_DEPTH} levels")


def _put_len(out, n):
    if n > _MAX_LEN:
        raise ValueError(f"a length of {n} does not fit a cache key, expected at most {_MAX_LEN}")
    out += _pack_len(n)


def _put_sized(out, tag, data):
    """``tag``, the length of ``data``, ``data``."""
    out += tag
    _put_len(out, len(data))
    out += data


def _put_text(out, tag, text):
    # surrogatepass: a lone surrogate gets its own 3 bytes instead of failing.
    _put_sized(out, tag, text.encode("utf-8", "surrogatepass"))


def _put_sorted(out, entries):
    """Append ``entries`` (encoded items) in byte order."""
    entries.sort()
    for entry in entries:
        out += entry


def _put(out, value, depth):
    """Append the encoding of ``value`` to the bytearray ``out``.

    ``depth`` counts the containers, subclass wrappers and objects around
    ``value``; each of these counts one level.
    """
    cls = type(value)
    if cls is str:
        _put_text(out, b"s", value)
    elif cls is int:
        out += b"i%d;" % value
    elif value is None:
        out += b"N"
    elif value is True:
        out += b"T"
    elif value is False:
        out += b"F"
    elif cls is float:
        out += b"f"
        out += _pack_double(value)
    elif cls is bytes:
        _put_sized(out, b"b", value)
    elif cls is bytearray:
        _put_sized(out, b"y", value)
    elif cls is memoryview:
        _put_sized(out, b"v", value.tobytes())
    elif cls is tuple or cls is list or cls is dict or cls is set or cls is frozenset:
        if depth >= _MAX_DEPTH:
            raise _too_deep()
        depth += 1
        if cls is tuple or cls is list:
            out += b"(" if cls is tuple else b"["
            _put_len(out, len(value))
            for item in value:
                _put(out, item, depth)
        elif cls is dict:
            out += b"{"
            _put_len(out, len(value))
            entries = []
            for k, v in value.items():
                entry = bytearray()
                _put(entry, k, depth)
                _put(entry, v, depth)
                entries.append(entry)
            _put_sorted(out, entries)
        else:
            out += b"S" if cls is set else b"Z"
            size = len(value)
            _put_len(out, size)
            entries = []
            for item in value:
                # A set that grows back to its size while an item is encoded
                # could yield more items than counted: refuse, as dicts do.
                if len(entries) == size:
                    raise RuntimeError("Set changed size during iteration")
                entry = bytearray()
                _put(entry, item, depth)
                entries.append(entry)
            _put_sorted(out, entries)
    elif cls is uuid.UUID:
        out += b"u"
        out += value.bytes
    elif cls is decimal.Decimal:
        _put_text(out, b"m", str(value))
    elif cls is datetime.datetime:
        _put_text(out, b"D", value.isoformat())
    elif cls is datetime.date:
        _put_text(out, b"d", value.isoformat())
    elif cls is datetime.time:
        _put_text(out, b"t", value.isoformat())
    elif cls is datetime.timedelta:
        out += b"R(\x03\x00\x00\x00i%d;i%d;i%d;" % (value.days, value.seconds, value.microseconds)
    else:
        name = plain_class_name(cls)
        if name:  # the same bytes exotic() gives, without its general walk
            tag, inner = b"o", value.__dict__
        else:
            tag, name, inner = exotic(value)
        if depth >= _MAX_DEPTH:
            raise _too_deep()
        _put_text(out, tag, name)
        _put(out, inner, depth + 1)


def encode_key(value):
    """The canonical, type-tagged bytes of a query input (see the comment above).

    Raises TypeError for a value of an unsupported type and ValueError for one
    that nests deeper than 64 levels (which includes any cycle).
    """
    out = bytearray()
    _put(out, value, 0)
    return bytes(out)


def cache_key(value):
    """``(digest, encoding)`` of a query input: the 16-byte big-endian
    xxh3-128 (seed 0) of ``encode_key(value)``, and that encoding."""
    encoded = encode_key(value)
    return xxhash.xxh3_128_digest(encoded), encoded


def cache_get(entries, value, default):
    """The result cached for the query input ``value`` in ``entries`` (an
    OrderedDict of digest -> (encoding, result), most recently used last),
    moving it to the end; ``default`` when there is none, which includes an
    input that cannot be encoded (``cache_key`` tells why).

    An entry counts only when its stored encoding equals ``value``'s: a
    digest shared by two different inputs is a miss, never a wrong result.
    """
    if type(entries) is not collections.OrderedDict:
        raise TypeError(f"entries must be an OrderedDict, got {type(entries).__name__}")
    try:
        encoded = encode_key(value)
    except (TypeError, ValueError):
        return default
    digest = xxhash.xxh3_128_digest(encoded)
    entry = entries.get(digest)
    if entry is None or entry[0] != encoded:
        return default
    entries.move_to_end(digest)
    return entry[1]


# -- the query cache's hot path ---------------------------------------------------------

_MISS = object()

# statement -> (reads only, and may be cached): services run the same few
# statements over and over, and two regex scans cost more than a cache hit.
# Bounded by STATEMENT_KINDS_MAX and STATEMENT_KIND_MAX_LEN.
_STATEMENT_KINDS = {}


def statement_kind(statement):
    """``(read_only, cacheable)`` of a statement: it only reads (a SELECT and
    the like), and it may be served from the query cache (a read that does
    not lock rows).  Anything but a str is neither."""
    kind = _STATEMENT_KINDS.get(statement) if type(statement) is str else (False, False)
    if kind is None:
        read_only = READ_ONLY.match(statement) is not None
        kind = (read_only, read_only and LOCKING_READ.search(statement) is None)
        if len(statement) <= STATEMENT_KIND_MAX_LEN:
            if len(_STATEMENT_KINDS) >= STATEMENT_KINDS_MAX:
                _STATEMENT_KINDS.clear()
            _STATEMENT_KINDS[statement] = kind
    return kind


def _table_name(table):
    if type(table) is str:
        return table
    name = getattr(table, "name", None)
    return name if type(name) is str else repr(table)


class QueryCacheCore:
    """The entry points of ``fastsess.cache.SessionQueryCache`` that a cache
    hit goes through, so that the compiled twin can serve a hit without
    running Python code.  See that class for the rules."""

    __slots__ = ("_session", "_entries", "_engines", "max_entries", "hits", "misses",
                 "uncacheable")

    def __init__(self, session, max_entries=1024):
        check_limit("max_entries", max_entries, 1, MAX_ENTRIES_LIMIT)
        self._session = session
        self._entries = collections.OrderedDict()  # digest -> (encoding, result)
        self._engines = {}  # id -> engine of every engine in a key
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.uncacheable = 0

    def get_all(self, engine, table, filters, fallback, limit=None, order_by=None, locked=False):
        """``fallback(filters=, session=, limit=, order_by=, locked=)``, cached."""
        slot = None
        if not locked:
            key = ("get_all", id(engine), _table_name(table), filters, limit, order_by)
            found = cache_get(self._entries, key, _MISS)
            if found is not _MISS:
                self.hits += 1
                return found
            slot = self._miss(key)
        result = fallback(filters=filters, session=self._session, limit=limit,
                          order_by=order_by, locked=locked)
        if slot is not None:
            self._store(slot, result, engine)
        return result

    def query(self, engine, table, where_conditions, where_values, fallback, limit=None,
              order_by=None, locked=False):
        """``fallback(where_conditions=, where_values=, session=, limit=,
        order_by=, locked=)``, cached."""
        slot = None
        if not locked and not LOCKING_READ.search(where_conditions or ""):
            key = ("query", id(engine), _table_name(table), where_conditions, where_values, limit,
                   order_by)
            found = cache_get(self._entries, key, _MISS)
            if found is not _MISS:
                self.hits += 1
                return found
            slot = self._miss(key)
        result = fallback(where_conditions=where_conditions, where_values=where_values,
                          session=self._session, limit=limit, order_by=order_by, locked=locked)
        if slot is not None:
            self._store(slot, result, engine)
        return result

    def fetchall(self, statement, params=None):
        """``session.execute(statement, params).fetchall()``, served from the
        cache when the same read already ran in this session."""
        slot = None
        if statement_kind(statement)[1]:
            key = ("sql", statement, params)
            found = cache_get(self._entries, key, _MISS)
            if found is not _MISS:
                self.hits += 1
                return found
            slot = self._miss(key)
        result = self._session.execute(statement, params).fetchall()
        if slot is not None:
            self._store(slot, result, None)
        return result

    def _miss(self, key):
        # Taken before the query runs: the fallback might mutate the inputs.
        try:
            slot = cache_key(key)
        except (TypeError, ValueError):
            self.uncacheable += 1
            return None
        self.misses += 1
        return slot

    def _store(self, slot, result, engine):
        digest, encoding = slot
        if engine is not None:
            # id(engine) is in the key: hold the engine so its id cannot be
            # reused by another object while the entry lives.
            self._engines[id(engine)] = engine
        entries = self._entries
        # A digest shared by two different encodings (never seen for
        # xxh3-128) replaces the older entry: cache_get compares encodings.
        entries[digest] = (encoding, result)
        entries.move_to_end(digest)
        if len(entries) > self.max_entries:
            entries.popitem(last=False)


# -- socket kernel ------------------------------------------------------------

_PEEK = getattr(socket, "MSG_PEEK", 0) | getattr(socket, "MSG_DONTWAIT", 0)
_CAN_PEEK = hasattr(socket, "MSG_DONTWAIT") and hasattr(select, "poll")


def socket_state(fd):
    """The state of the idle socket ``fd``, read without consuming anything:
    0 quiet (or ``fd`` < 0, or a platform where it cannot be told), -1
    closed or errored, else 1 + the value of the first byte waiting."""
    if fd < 0 or not _CAN_PEEK:
        return 0
    poller = select.poll()  # a quiet socket is told by one poll() call
    poller.register(fd, select.POLLIN)
    if not poller.poll(0):
        return 0
    try:
        blocking = os.get_blocking(fd)
        # socket(fileno=...) borrows the descriptor (detach() gives it back
        # unclosed); a default timeout would switch it to non-blocking mode,
        # which the driver owns, hence the restore below.
        sock = socket.socket(fileno=fd)
    except OSError:
        return -1
    try:
        data = sock.recv(1, _PEEK)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return -1
    finally:
        sock.detach()
        if os.get_blocking(fd) != blocking:
            os.set_blocking(fd, blocking)
    return 1 + data[0] if data else -1
