# SQL statement kernels: quote_identifier, quote_table, build_insert,
# build_delete (twin: fastsess/_speedups_py.py).
#
# Checks run in the twin's order with its messages.  Where an argument could
# run Python code (a str subclass, a custom row sequence, an odd max_params),
# the same Python-level operation is used, in the same order, so results and
# errors match; the C shortcuts are taken only where no Python code can run.

import datetime as _datetime
import decimal as _decimal

from fastsess._speedups_py import _upsert_tail

from cpython.bytearray cimport PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_GET_SIZE

cdef extern from *:
    """
    /* Statement sizes, exact past 64 bits: a user __len__ may report up to
       PY_SSIZE_T_MAX, and the twin adds Python ints, which never overflow. */
    typedef struct { unsigned long long hi, lo; } fs_u128;

    static inline fs_u128 fs_u128_add(fs_u128 a, fs_u128 b) {
        fs_u128 r;
        r.lo = a.lo + b.lo;
        r.hi = a.hi + b.hi + (r.lo < a.lo);
        return r;
    }

    static inline int fs_u128_gt(fs_u128 a, fs_u128 b) {
        return a.hi > b.hi || (a.hi == b.hi && a.lo > b.lo);
    }

    /* (n << shift) + c for 0 <= n <= PY_SSIZE_T_MAX, 1 <= shift <= 2. */
    static inline fs_u128 fs_u128_scaled(Py_ssize_t n, int shift, unsigned long long c) {
        fs_u128 r, k;
        unsigned long long u = (unsigned long long)n;
        r.lo = u << shift;
        r.hi = u >> (64 - shift);
        k.hi = 0;
        k.lo = c;
        return fs_u128_add(r, k);
    }

    /* Store a new reference to item at index i of a list from PyList_New. */
    static inline void fs_list_init_item(PyObject *list, Py_ssize_t i, PyObject *item) {
        Py_INCREF(item);
        PyList_SET_ITEM(list, i, item);
    }
    """
    ctypedef struct fs_u128:
        unsigned long long hi
        unsigned long long lo
    fs_u128 fs_u128_add(fs_u128 a, fs_u128 b)
    bint fs_u128_gt(fs_u128 a, fs_u128 b)
    fs_u128 fs_u128_scaled(Py_ssize_t n, int shift, unsigned long long c)
    void fs_list_init_item(object lst, Py_ssize_t i, PyObject* item)

# Dialect names the statement builders understand, with their identifier quote.
cdef dict _QUOTES = {"postgresql": '"', "mysql": "`"}
# Longest identifier each server keeps (see the twin).
cdef dict _MAX_IDENT = {"postgresql": 63, "mysql": 64}

cdef enum:
    # Bytes a statement spends per value on top of the literal itself.
    _VALUE_OVERHEAD = 4
    # Bytes assumed for a value that is not text or bytes.
    _SCALAR_LITERAL = 40

cdef tuple _BINARY_TYPES = (bytes, bytearray, memoryview)
cdef object _U64_MASK = (1 << 64) - 1
cdef object _U128_LIMIT = 1 << 127


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


cdef int _add_literal_size(object value, fs_u128 *acc) except -1:
    """Add the twin's ``_literal_size(value)`` to ``acc``."""
    cdef object t = type(value)
    cdef fs_u128 s
    if t is str:
        s = fs_u128_scaled(PyUnicode_GET_LENGTH(value), 2, _VALUE_OVERHEAD)
    elif t is bytes:
        s = fs_u128_scaled(PyBytes_GET_SIZE(value), 1, 3 + _VALUE_OVERHEAD)
    elif t is bytearray:
        s = fs_u128_scaled(PyByteArray_GET_SIZE(value), 1, 3 + _VALUE_OVERHEAD)
    elif _is_scalar_type(t):
        s.hi = 0
        s.lo = _SCALAR_LITERAL + _VALUE_OVERHEAD
    elif PyObject_IsInstance(value, str):
        s = fs_u128_scaled(len(value), 2, _VALUE_OVERHEAD)
    elif PyObject_IsInstance(value, _BINARY_TYPES):
        s = fs_u128_scaled(len(value), 1, 3 + _VALUE_OVERHEAD)
    else:
        s.hi = 0
        s.lo = _SCALAR_LITERAL + _VALUE_OVERHEAD
    acc[0] = fs_u128_add(acc[0], s)
    return 0


cdef int _row_size(object row, fs_u128 base, fs_u128 *out) except -1:
    """``base`` plus the literal sizes of the values ``for value in row`` gives."""
    cdef fs_u128 acc = base
    cdef Py_ssize_t i = 0
    cdef object value
    if fs_is_plain_seq(row):
        # Size re-read at every step like the list iterator: a value's
        # __len__ may change a list row.
        while i < fs_seq_size(row):
            value = <object>fs_seq_item(row, i)
            _add_literal_size(value, &acc)
            i += 1
    else:
        for value in row:
            _add_literal_size(value, &acc)
    out[0] = acc
    return 0


cdef fs_u128 _to_u128(object n):
    """A Python int 0 <= n as fs_u128, clamped to 2**127 - 1 (sizes stay far below)."""
    cdef fs_u128 r
    if n >= _U128_LIMIT:
        n = _U128_LIMIT - 1
    r.hi = PyLong_AsUnsignedLongLong(n >> 64)
    r.lo = PyLong_AsUnsignedLongLong(n & _U64_MASK)
    return r


cdef object _from_u128(fs_u128 v):
    return (PyLong_FromUnsignedLongLong(v.hi) << 64) | PyLong_FromUnsignedLongLong(v.lo)


cdef object _literal_size_generic(object value):
    """The twin's ``_literal_size`` with Python ints."""
    cdef object n
    if PyObject_IsInstance(value, str):
        n = len(value)
        return 4 * n + _VALUE_OVERHEAD
    if PyObject_IsInstance(value, _BINARY_TYPES):
        n = len(value)
        return 2 * n + 3 + _VALUE_OVERHEAD
    return _SCALAR_LITERAL + _VALUE_OVERHEAD


# -- chunking ----------------------------------------------------------------

cdef object _chunk_limits(Py_ssize_t width, object max_params):
    """Rows one statement may carry given ``width`` bound values per row."""
    if max_params < 1:
        raise ValueError(f"max_params must be at least 1, got {max_params}")
    if width > max_params:
        raise ValueError(
            f"a row needs {width} parameters, more than the {max_params} one statement can carry"
        )
    return max_params // width


cdef list _chunks_generic(list rows, object per_chunk, object max_bytes,
                          object head_size, object row_text_size):
    """The twin's chunking, operation for operation, for arguments that are
    not plain ints (floats, bools, NumPy integers ...).  Lists of rows."""
    cdef list chunks, current
    cdef object size, row_size, value, indices
    if not max_bytes:
        # Python's range() and slicing, whatever per_chunk turns out to be.
        indices = range(0, len(rows), per_chunk)
        return [rows[slice(i, i + per_chunk)] for i in indices]
    chunks = []
    current = []
    size = head_size
    for row in rows:
        row_size = row_text_size
        for value in row:
            row_size += _literal_size_generic(value)
        if head_size + row_size > max_bytes:
            raise ValueError(
                f"a row needs about {head_size + row_size} bytes, "
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


cdef tuple _chunks(object rows, Py_ssize_t width, object max_params, object max_bytes,
                   object head_size, Py_ssize_t row_text_size):
    """Split ``rows`` into groups that each fit one statement (twin: ``_chunks``).

    Returns ``(rows, bounds)``: a list of rows and the indices where each
    group starts, ending with ``len(rows)``; group ``j`` is
    ``rows[bounds[j]:bounds[j + 1]]``.
    """
    per_chunk = _chunk_limits(width, max_params)
    cdef list rows_list = list(rows)
    cdef Py_ssize_t i = 0, n, pc, count, start
    cdef list bounds
    for row in rows_list:
        if (fs_seq_size(row) if fs_is_plain_seq(row) else len(row)) != width:
            raise ValueError(f"row {i} has {len(row)} values, expected {width}")
        i += 1
    n = len(rows_list)

    if not (
        PyLong_CheckExact(per_chunk)
        and per_chunk >= 1
        and (max_bytes is None or PyLong_CheckExact(max_bytes))
    ):
        chunks = _chunks_generic(rows_list, per_chunk, max_bytes, head_size, row_text_size)
        rows_list = []
        bounds = [0]
        for chunk in chunks:
            rows_list.extend(chunk)
            bounds.append(len(rows_list))
        return rows_list, bounds

    # A group never holds more than n <= PY_SSIZE_T_MAX rows, so a larger
    # per_chunk acts like PY_SSIZE_T_MAX.
    pc = per_chunk if per_chunk < PY_SSIZE_T_MAX else PY_SSIZE_T_MAX
    bounds = [0]
    if max_bytes is None or max_bytes == 0:
        start = 0
        while n - start > pc:
            start += pc
            bounds.append(start)
        if n:
            bounds.append(n)
        return rows_list, bounds

    cdef bint exceeded_by_all = max_bytes < 0
    cdef fs_u128 limit, head, size, row_size, base, total
    limit = _to_u128(0 if exceeded_by_all else max_bytes)
    head = _to_u128(head_size)
    base.hi = 0
    base.lo = <unsigned long long>row_text_size
    size = head
    count = 0
    i = 0
    for row in rows_list:
        _row_size(row, base, &row_size)
        total = fs_u128_add(head, row_size)
        if exceeded_by_all or fs_u128_gt(total, limit):
            raise ValueError(
                f"a row needs about {_from_u128(total)} bytes, "
                f"more than the {max_bytes} one statement can carry"
            )
        if count and (count == pc or fs_u128_gt(fs_u128_add(size, row_size), limit)):
            bounds.append(i)
            count = 0
            size = head
        count += 1
        size = fs_u128_add(size, row_size)
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
    if (
        type(head) is str
        and k >= 1
        and k <= (PY_SSIZE_T_MAX // 2 - PyUnicode_GET_LENGTH(head)) // (PyUnicode_GET_LENGTH(group) + 2)
    ):
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
    # An exotic head (a str subclass's __add__ made it), an empty group or a
    # statement too long for one str: Python's own operations and errors.
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
    gives an empty list.
    """
    return _insert_statements(dialect, table, columns, rows, max_params, max_bytes, "")


def build_upsert(dialect, table, columns, rows, key_columns, update_columns, max_params,
                 max_bytes=0):
    """``build_insert`` statements that update the existing row on a conflict
    (the clause itself comes from the twin's ``_upsert_tail``: not a hot path)."""
    tail = _upsert_tail(dialect, columns, key_columns, update_columns)
    return _insert_statements(dialect, table, columns, rows, max_params, max_bytes, tail)


cdef list _insert_statements(dialect, table, columns, rows, max_params, max_bytes, str tail):
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
    rows_list, bounds = _chunks(rows, width, max_params, max_bytes, len(head) + len(tail),
                                len(group) + 2)
    return _statements(head, group, tail or None, rows_list, bounds)


def build_delete(dialect, table, key_columns, keys, max_params, max_bytes=0):
    """Batch DELETE statements by primary key.

    ``keys`` holds one sequence of key values per row, in ``key_columns``
    order.  One key column gives ``DELETE FROM t WHERE k IN (%s, ..)``; a
    composite key gives ``WHERE (a, b) IN ((%s, %s), ..)``.  Returns a list of
    ``(statement, params)`` pairs; an empty ``keys`` gives an empty list.
    """
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
    cdef object head_size = len(head)
    rows_list, bounds = _chunks(keys, width, max_params, max_bytes, head_size + 1, len(group) + 2)
    return _statements(head, group, ")", rows_list, bounds)
