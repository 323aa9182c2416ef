# SQL statement kernels: quote_identifier, quote_table, build_insert,
# build_upsert, build_delete (twin: fastsess/_speedups_py.py).
#
# Checks run in the twin's order with its messages.  Where an argument could
# run Python code (a str subclass, a custom row sequence), the same
# Python-level operation is used, in the same order, so results and errors
# match; the C shortcuts are taken only where no Python code can run.  The
# limits are ints in fixed ranges (fastsess._kernels_common), held in C.

import datetime as _datetime
import decimal as _decimal

from cpython.bytearray cimport PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_GET_SIZE

cdef extern from *:
    """
    #include <limits.h>

    /* Statement size estimates saturate at LLONG_MAX (the twin's SIZE_CAP):
       a str subclass's __len__ may report up to PY_SSIZE_T_MAX. */
    static inline long long fs_size_add(long long a, long long b) {
        return a > LLONG_MAX - b ? LLONG_MAX : a + b;
    }

    /* (n << shift) + c for 0 <= n, 1 <= shift <= 2, 0 <= c, saturated. */
    static inline long long fs_size_scaled(Py_ssize_t n, int shift, long long c) {
        return n > ((LLONG_MAX - c) >> shift) ? LLONG_MAX : ((long long)n << shift) + c;
    }

    /* Store a new reference to item at index i of a list from PyList_New. */
    static inline void fs_list_init_item(PyObject *list, Py_ssize_t i, PyObject *item) {
        Py_INCREF(item);
        PyList_SET_ITEM(list, i, item);
    }
    """
    long long fs_size_add(long long a, long long b)
    long long fs_size_scaled(Py_ssize_t n, int shift, long long c)
    void fs_list_init_item(object lst, Py_ssize_t i, PyObject* item)

cdef dict _QUOTES = _kc.QUOTES
cdef dict _MAX_IDENT = _kc.MAX_IDENT
cdef long long _VALUE_OVERHEAD = _kc.VALUE_OVERHEAD
cdef long long _SCALAR_SIZE = _kc.SCALAR_LITERAL + _kc.VALUE_OVERHEAD
cdef long long _MAX_PARAMS = _kc.MAX_PARAMS_LIMIT
cdef long long _MAX_BYTES = _kc.MAX_BYTES_LIMIT

cdef tuple _BINARY_TYPES = (bytes, bytearray, memoryview)


cdef tuple _scalar_types():
    """Exact types whose values isinstance() can class without running Python
    code (built-in or immutable types, so no __class__ override can appear),
    and that are neither text nor binary: sized as a scalar directly."""
    cdef list out = []
    for t in (int, float, bool, type(None), _decimal.Decimal, _datetime.datetime,
              _datetime.date, _datetime.time, _datetime.timedelta):
        flags = t.__flags__
        if not (flags & (1 << 9)) or flags & (1 << 8):  # not HEAPTYPE, or IMMUTABLETYPE
            out.append(t)
    return tuple(out)

cdef tuple _SCALAR_TYPES = _scalar_types()


cdef object _quote_identifier(object dialect, object name):
    quote = _QUOTES.get(dialect)
    if quote is None:
        raise ValueError(f"unknown dialect {dialect!r}, expected one of: mysql, postgresql")
    # PyObject_IsInstance, not Cython's PyUnicode_Check: isinstance() also
    # honours __class__, and the twin uses isinstance().
    if not PyObject_IsInstance(name, str):
        raise TypeError(f"identifier must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("identifier must not be empty")
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    if quote in name:
        raise ValueError(f"identifier {name!r} contains the quote character {quote}")
    cdef Py_ssize_t limit = _MAX_IDENT[dialect]
    cdef Py_ssize_t size
    if dialect == "postgresql":
        if type(name) is str and PyUnicode_IS_ASCII(name):
            size = PyUnicode_GET_LENGTH(name)
        else:
            # Encoding is what refuses lone surrogates (UnicodeEncodeError).
            size = len(name.encode("utf-8"))
    else:
        size = len(name)
    if size > limit:
        unit = "bytes" if dialect == "postgresql" else "characters"
        raise ValueError(f"identifier {name!r} is longer than {limit} {unit}")
    return quote + name + quote


cdef object _quote_table(object dialect, object table):
    if not PyObject_IsInstance(table, str):
        raise TypeError(f"table name must be a str, got {type(table).__name__}")
    return ".".join([_quote_identifier(dialect, part) for part in table.split(".")])


def quote_identifier(dialect, name):
    """``name`` quoted as one identifier for ``dialect`` ("postgresql"/"mysql").

    Refuses (ValueError) what could not be quoted safely or would name another
    object: empty names, NUL, the dialect's quote character, over-long names.
    """
    return _quote_identifier(dialect, name)


def quote_table(dialect, table):
    """A table name, optionally schema-qualified as ``schema.table``, quoted."""
    return _quote_table(dialect, table)


# -- statement sizes ---------------------------------------------------------

cdef inline bint _is_scalar_type(object t):
    cdef Py_ssize_t i
    for i in range(PyTuple_GET_SIZE(_SCALAR_TYPES)):
        if <PyObject*>t == PyTuple_GET_ITEM(_SCALAR_TYPES, i):
            return True
    return False


cdef long long _literal_size(object value) except -1:
    """The twin's ``_literal_size(value)`` (saturated, see fs_size_add)."""
    cdef object t = type(value)
    if t is str:
        return fs_size_scaled(PyUnicode_GET_LENGTH(value), 2, _VALUE_OVERHEAD)
    if t is bytes:
        return fs_size_scaled(PyBytes_GET_SIZE(value), 1, 3 + _VALUE_OVERHEAD)
    if t is bytearray:
        return fs_size_scaled(PyByteArray_GET_SIZE(value), 1, 3 + _VALUE_OVERHEAD)
    if _is_scalar_type(t):
        return _SCALAR_SIZE
    if PyObject_IsInstance(value, str):
        return fs_size_scaled(len(value), 2, _VALUE_OVERHEAD)
    if PyObject_IsInstance(value, _BINARY_TYPES):
        return fs_size_scaled(len(value), 1, 3 + _VALUE_OVERHEAD)
    return _SCALAR_SIZE


cdef long long _row_size(object row, long long size) except -1:
    """``size`` plus the literal sizes of the values ``for value in row`` gives."""
    cdef Py_ssize_t i = 0
    cdef object value
    if fs_is_plain_seq(row):
        # Size re-read at every step like the list iterator: a value's
        # __len__ may change a list row.
        while i < fs_seq_size(row):
            value = <object>fs_seq_item(row, i)
            size = fs_size_add(size, _literal_size(value))
            i += 1
    else:
        for value in row:
            size = fs_size_add(size, _literal_size(value))
    return size


# -- chunking ----------------------------------------------------------------

cdef Py_ssize_t _chunk_limits(Py_ssize_t width, Py_ssize_t max_params) except -1:
    """Rows one statement may carry given ``width`` bound values per row."""
    if width > max_params:
        raise ValueError(
            f"a row needs {width} parameters, more than the {max_params} one statement can carry"
        )
    return max_params // width


cdef tuple _chunks(object rows, Py_ssize_t width, Py_ssize_t max_params, long long max_bytes,
                   long long head_size, long long row_text_size):
    """Split ``rows`` into groups that each fit one statement (twin: ``_chunks``).

    Returns ``(rows, bounds)``: a list of rows and the indices where each
    group starts, ending with ``len(rows)``; group ``j`` is
    ``rows[bounds[j]:bounds[j + 1]]``.
    """
    cdef Py_ssize_t per_chunk = _chunk_limits(width, max_params)
    cdef list rows_list = list(rows)
    cdef Py_ssize_t i = 0, n, count, start
    cdef long long size, row_size
    cdef list bounds = [0]
    for row in rows_list:
        if (fs_seq_size(row) if fs_is_plain_seq(row) else len(row)) != width:
            raise ValueError(f"row {i} has {len(row)} values, expected {width}")
        i += 1
    n = len(rows_list)

    if max_bytes == 0:
        start = 0
        while n - start > per_chunk:
            start += per_chunk
            bounds.append(start)
        if n:
            bounds.append(n)
        return rows_list, bounds

    # ``size`` never passes max_bytes: a row is added only where it fits.
    size = head_size
    count = 0
    i = 0
    for row in rows_list:
        row_size = _row_size(row, row_text_size)
        if fs_size_add(head_size, row_size) > max_bytes:
            raise ValueError(
                f"a row needs about {fs_size_add(head_size, row_size)} bytes, "
                f"more than the {max_bytes} one statement can carry"
            )
        if count and (count == per_chunk or fs_size_add(size, row_size) > max_bytes):
            bounds.append(i)
            count = 0
            size = head_size
        count += 1
        size += row_size
        i += 1
    if count:
        bounds.append(n)
    return rows_list, bounds


# -- statements --------------------------------------------------------------

cdef list _params(list rows, Py_ssize_t start, Py_ssize_t stop):
    """The values of ``rows[start:stop]`` in one flat list (``list.extend`` each)."""
    cdef Py_ssize_t i, k, size, total = 0, j = 0
    cdef list params
    cdef object row
    for i in range(start, stop):
        row = rows[i]
        if not fs_is_plain_seq(row):
            break
        total += fs_seq_size(row)
    else:
        params = PyList_New(total)
        # The allocation may have run a finalizer that changed a list row:
        # fill only while the rows still add up to ``total``.
        for i in range(start, stop):
            row = rows[i]
            size = fs_seq_size(row)
            if size > total - j:
                break
            for k in range(size):
                fs_list_init_item(params, j, fs_seq_item(row, k))
                j += 1
        else:
            if j == total:
                return params
    params = []
    for i in range(start, stop):
        params.extend(rows[i])
    return params


cdef void _fill_groups(Py_UCS1 *p, object group, Py_ssize_t k):
    """Write ``", ".join([group] * k)`` (ASCII ``group``, ``k >= 1``) at ``p``."""
    cdef Py_ssize_t g = PyUnicode_GET_LENGTH(group)
    cdef Py_ssize_t unit = g + 2
    cdef Py_ssize_t filled, todo, step
    cdef Py_UCS1 *rest
    memcpy(p, PyUnicode_1BYTE_DATA(group), g)
    if k == 1:
        return
    rest = p + g
    rest[0] = 44  # ","
    rest[1] = 32  # " "
    memcpy(rest + 2, PyUnicode_1BYTE_DATA(group), g)
    filled = unit
    todo = (k - 1) * unit
    while filled < todo:
        step = filled if filled <= todo - filled else todo - filled
        memcpy(rest + filled, rest, step)
        filled += step


cdef object _statement(object head, str group, Py_ssize_t k, str tail):
    """``head + ", ".join([group] * k)``, plus ``tail`` unless it is None."""
    cdef Py_ssize_t hl, tl, body
    cdef Py_UCS1 *p
    cdef bint ascii_head
    # k >= 1 and k * (len(group) + 2) stays small (k * width <= max_params).
    # The tail is copied as ASCII bytes: an upsert's clause may name a
    # non-ASCII column.
    if type(head) is str and (tail is None or PyUnicode_IS_ASCII(tail)):
        hl = PyUnicode_GET_LENGTH(head)
        tl = 0 if tail is None else PyUnicode_GET_LENGTH(tail)
        body = k * (PyUnicode_GET_LENGTH(group) + 2) - 2
        # The placeholders are ASCII: with an ASCII head the whole statement
        # is written into one buffer, otherwise the head is joined to it.
        ascii_head = PyUnicode_IS_ASCII(head)
        if not ascii_head:
            hl = 0
        text = PyUnicode_New(hl + body + tl, 127)
        p = PyUnicode_1BYTE_DATA(text)
        if hl:
            memcpy(p, PyUnicode_1BYTE_DATA(head), hl)
        _fill_groups(p + hl, group, k)
        if tl:
            memcpy(p + hl + body, PyUnicode_1BYTE_DATA(tail), tl)
        return text if ascii_head else head + text
    # An exotic head (a str subclass's __add__ made it) or a non-ASCII tail:
    # Python's own operations.
    text = head + ", ".join([group] * k)
    return text if tail is None else text + tail


cdef list _statements(object head, str group, str tail, list rows, list bounds):
    """One ``(statement, params)`` pair per group of rows."""
    cdef list out = []
    cdef dict texts = {}
    cdef Py_ssize_t c, start, stop
    for c in range(len(bounds) - 1):
        start = bounds[c]
        stop = bounds[c + 1]
        params = _params(rows, start, stop)
        text = texts.get(stop - start)
        if text is None:
            text = texts[stop - start] = _statement(head, group, stop - start, tail)
        out.append((text, params))
    return out


def build_insert(dialect, table, columns, rows, max_params, max_bytes=0):
    """Multi-row INSERT statements for ``rows`` (sequences in ``columns`` order).

    Returns a list of ``(statement, params)`` pairs, one per chunk, each
    statement a single ``INSERT INTO t (..) VALUES (..), (..)`` with ``%s``
    placeholders and ``params`` the flat list of values.  An empty ``rows``
    gives an empty list.  ``max_params`` and ``max_bytes`` (0: no byte limit)
    bound each statement; see ``fastsess._kernels_common`` for their ranges.
    """
    cdef Py_ssize_t params = _limit(max_params, "max_params", 1, _MAX_PARAMS)
    cdef long long nbytes = _limit(max_bytes, "max_bytes", 0, _MAX_BYTES)
    return _insert_statements(dialect, table, columns, rows, params, nbytes, "")


def build_upsert(dialect, table, columns, rows, key_columns, update_columns, max_params,
                 max_bytes=0):
    """``build_insert`` statements that update the existing row on a conflict
    (see the twin for the clause)."""
    cdef Py_ssize_t params = _limit(max_params, "max_params", 1, _MAX_PARAMS)
    cdef long long nbytes = _limit(max_bytes, "max_bytes", 0, _MAX_BYTES)
    tail = _upsert_tail(dialect, columns, key_columns, update_columns)
    return _insert_statements(dialect, table, columns, rows, params, nbytes, tail)


cdef str _upsert_tail(dialect, columns, key_columns, update_columns):
    """The conflict clause of an upsert (twin: ``_upsert_tail``)."""
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
    updates = [_quote_identifier(dialect, c) for c in update_columns]
    if dialect == "postgresql":
        target = ", ".join([_quote_identifier(dialect, c) for c in key_columns])
        if updates:
            tail = (f" ON CONFLICT ({target}) DO UPDATE SET "
                    + ", ".join([f"{c} = EXCLUDED.{c}" for c in updates]))
        else:
            tail = f" ON CONFLICT ({target}) DO NOTHING"
    elif updates:
        tail = " ON DUPLICATE KEY UPDATE " + ", ".join([f"{c} = VALUES({c})" for c in updates])
    else:  # assigning a key column to itself changes nothing
        key = _quote_identifier(dialect, key_columns[0])
        tail = f" ON DUPLICATE KEY UPDATE {key} = {key}"
    return tail.replace("%", "%%")  # a % in a name is literal


cdef list _insert_statements(dialect, table, columns, rows, Py_ssize_t max_params,
                             long long max_bytes, str tail):
    """``INSERT INTO t (..) VALUES (..), (..)`` + ``tail`` per chunk of rows."""
    columns = list(columns)
    if not columns:
        raise ValueError("an insert needs at least one column")
    head = (
        "INSERT INTO "
        + _quote_table(dialect, table)
        + " ("
        + ", ".join([_quote_identifier(dialect, c) for c in columns])
        + ") VALUES "
    ).replace("%", "%%")  # statements run with parameters: a % in a name is literal
    cdef Py_ssize_t width = len(columns)
    cdef str group = "(" + ", ".join(["%s"] * width) + ")"
    rows_list, bounds = _chunks(rows, width, max_params, max_bytes,
                                fs_size_add(len(head), len(tail)), len(group) + 2)
    return _statements(head, group, tail or None, rows_list, bounds)


def build_delete(dialect, table, key_columns, keys, max_params, max_bytes=0):
    """Batch DELETE statements by primary key.

    ``keys`` holds one sequence of key values per row, in ``key_columns``
    order.  One key column gives ``DELETE FROM t WHERE k IN (%s, ..)``; a
    composite key gives ``WHERE (a, b) IN ((%s, %s), ..)``.  Returns a list of
    ``(statement, params)`` pairs; an empty ``keys`` gives an empty list.
    The limits are those of ``build_insert``.
    """
    cdef Py_ssize_t params = _limit(max_params, "max_params", 1, _MAX_PARAMS)
    cdef long long nbytes = _limit(max_bytes, "max_bytes", 0, _MAX_BYTES)
    key_columns = list(key_columns)
    if not key_columns:
        raise ValueError("a delete by key needs at least one key column")
    cdef Py_ssize_t width = len(key_columns)
    cdef str group
    # Key columns are quoted before the table, as in the twin (the first
    # error reported is the same).
    quoted = [_quote_identifier(dialect, c) for c in key_columns]
    if width == 1:
        head = "DELETE FROM " + _quote_table(dialect, table) + " WHERE " + quoted[0] + " IN ("
        group = "%s"
    else:
        head = (
            "DELETE FROM "
            + _quote_table(dialect, table)
            + " WHERE ("
            + ", ".join(quoted)
            + ") IN ("
        )
        group = "(" + ", ".join(["%s"] * width) + ")"
    head = head.replace("%", "%%")  # a % in a name is literal, as in build_insert
    rows_list, bounds = _chunks(keys, width, params, nbytes, fs_size_add(len(head), 1),
                                len(group) + 2)
    return _statements(head, group, ")", rows_list, bounds)
