# MySQL literal inserts: build_literal_insert (twin: fastsess/_speedups_py.py).
#
# mysqlclient escapes every parameter on the client and splices it into the
# statement; this writes the same literals into one C buffer (the _KeyBuf of
# _cachekey.pxi), calling the connection's escape functions only for str and
# for the types whose literal is not fixed.

from libc.math cimport isfinite
from libc.string cimport strchr, strlen
from cpython.unicode cimport PyUnicode_DecodeASCII

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int *type) except NULL
    int Py_DTSF_ADD_DOT_0


cdef int _lit_digits(_KeyBuf *b, object value) except -1:
    """The decimal digits of an exact int (``b"%d" % value``)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef unsigned long long u = (0ULL - <unsigned long long>v) if v < 0 else <unsigned long long>v
    cdef char text[21]    # sign and 20 digits at most, written from the end
    cdef Py_ssize_t i = 21
    if overflow:
        digits = b"%d" % value
        return _kb_put(b, PyBytes_AS_STRING(digits), len(<bytes>digits))
    while True:
        i -= 1
        text[i] = <char>(c'0' + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        text[i] = c'-'
    return _kb_put(b, text + i, 21 - i)


cdef int _lit_float(_KeyBuf *b, double value) except -1:
    """``repr(value)`` of a finite float, with ``e0`` when it has no exponent."""
    cdef char *text = PyOS_double_to_string(value, c'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        _kb_put(b, text, strlen(text))
        if strchr(text, c'e') == NULL:
            _kb_put(b, "e0", 2)
    finally:
        PyMem_Free(text)
    return 0


cdef int _lit_bytes(_KeyBuf *b, object text, str name) except -1:
    if type(text) is not bytes:
        raise TypeError(f"{name}() gave a {type(text).__name__}, expected bytes")
    return _kb_put(b, PyBytes_AS_STRING(text), len(<bytes>text))


cdef int _lit_value(_KeyBuf *b, object value, object literal, object string_literal,
                    const char *encoding, bint fast) except -1:
    """One value's literal, as the twin's ``_mysql_literal``."""
    cdef type cls = type(value)
    if cls is str:
        return _lit_bytes(b, string_literal(PyUnicode_AsEncodedString(value, encoding, NULL)),
                          "string_literal")
    if fast:
        if value is None:
            return _kb_put(b, "NULL", 4)
        if cls is int:
            return _lit_digits(b, value)
        if cls is float and isfinite(PyFloat_AS_DOUBLE(value)):
            return _lit_float(b, PyFloat_AS_DOUBLE(value))
    return _lit_bytes(b, literal(value), "literal")


def build_literal_insert(table, columns, rows, literal, string_literal, encoding, fast,
                         max_bytes):
    """MySQL multi-row INSERT statements with each value written as the
    literal mysqlclient would send (see the twin)."""
    cdef Py_ssize_t limit = _limit(max_bytes, "max_bytes", 1, _MAX_BYTES)
    columns = list(columns)
    if not columns:
        raise ValueError("an insert needs at least one column")
    cdef bytes head = ("INSERT INTO " + quote_table("mysql", table) + " ("
                       + ", ".join([quote_identifier("mysql", c) for c in columns])
                       + ") VALUES ").encode(encoding)
    cdef Py_ssize_t width = len(columns), head_size = len(head), i, j, n
    cdef bint quick = fast
    cdef bytes codec = encoding.encode("ascii")  # a codec name, for the C call
    rows = list(rows)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, expected {width}")
    cdef list out = []
    cdef _KeyBuf stmt, one
    stmt.data = stmt.small
    stmt.size = 0
    stmt.cap = _KEY_SMALL
    one.data = one.small
    one.size = 0
    one.cap = _KEY_SMALL
    try:
        _kb_put(&stmt, PyBytes_AS_STRING(head), head_size)
        n = 0  # rows in the statement being built
        for row in rows:
            one.size = 0
            _kb_put(&one, "(", 1)
            if fs_is_plain_seq(row):
                for j in range(width):
                    if j:
                        _kb_put(&one, ",", 1)
                    _lit_value(&one, <object>fs_seq_item(row, j), literal, string_literal,
                               codec, quick)
            else:
                j = 0
                for value in row:
                    if j:
                        _kb_put(&one, ",", 1)
                    _lit_value(&one, value, literal, string_literal, codec, quick)
                    j += 1
            _kb_put(&one, ")", 1)
            if head_size + one.size > limit:
                raise ValueError(f"a row needs {head_size + one.size} bytes, "
                                 f"more than the {max_bytes} one statement can carry")
            if n and stmt.size + 1 + one.size > limit:
                out.append(PyBytes_FromStringAndSize(stmt.data, stmt.size))
                stmt.size = head_size
                n = 0
            if n:
                _kb_put(&stmt, ",", 1)
            _kb_put(&stmt, one.data, one.size)
            n += 1
        if n:
            out.append(PyBytes_FromStringAndSize(stmt.data, stmt.size))
        return out
    finally:
        if stmt.data != stmt.small:
            PyMem_Free(stmt.data)
        if one.data != one.small:
            PyMem_Free(one.data)


# -- PostgreSQL placeholders (twin: dollar_params) ----------------------------------


cdef object _percent_error(str statement, Py_ssize_t i):
    """The twin's error for a ``%`` at ``i`` followed by neither ``s`` nor ``%``."""
    return ValueError(f"only %s and %% may follow a % in a built statement, "
                      f"found {statement[i:i + 2]!r} at {i}")


cdef str _dollar_params_text(str statement):
    """``dollar_params`` for any str: its pieces between the ``%`` codes."""
    cdef list parts = []
    cdef Py_ssize_t at = 0, n = 0
    cdef Py_ssize_t i = statement.find("%")
    while i >= 0:
        code = statement[i + 1:i + 2]
        if code == "s":
            n += 1
            parts.append(statement[at:i])
            parts.append("$" + str(n))
        elif code == "%":
            parts.append(statement[at:i + 1])
        else:
            raise _percent_error(statement, i)
        at = i + 2
        i = statement.find("%", at)
    parts.append(statement[at:])
    return "".join(parts)


def dollar_params(statement):
    """``%s`` -> ``$1, $2, ..`` and ``%%`` -> ``%`` (see the twin)."""
    if type(statement) is not str:
        raise TypeError(f"expected a str statement, got {type(statement).__name__}")
    if not PyUnicode_IS_ASCII(statement):
        return _dollar_params_text(statement)  # names beyond ASCII: rare
    cdef const char *p = <const char *>PyUnicode_1BYTE_DATA(statement)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(statement), i = 0, n = 0
    cdef _KeyBuf b
    b.data = b.small
    b.size = 0
    b.cap = _KEY_SMALL
    try:
        while i < size:
            if p[i] != c'%':
                _kb_put(&b, p + i, 1)
                i += 1
                continue
            if i + 1 < size and p[i + 1] == c's':
                n += 1
                _kb_put(&b, "$", 1)
                _lit_digits(&b, n)
            elif i + 1 < size and p[i + 1] == c'%':
                _kb_put(&b, "%", 1)
            else:
                raise _percent_error(statement, i)
            i += 2
        return PyUnicode_DecodeASCII(b.data, b.size, NULL)
    finally:
        if b.data != b.small:
            PyMem_Free(b.data)
