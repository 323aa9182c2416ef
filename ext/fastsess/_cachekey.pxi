# Query-cache keys: encode_key, cache_key, cache_get, statement_kind and
# QueryCacheCore (twin: fastsess/_speedups_py.py, whose comment describes the
# format and why comparing the bytes on a hit makes the cache exact).
#
# The exact types are written straight into a C buffer.  Everything else
# (subclasses, Enum members, plain objects) goes through
# ``fastsess._kernels_common.exotic``, as in the twin: that slow path is
# class introspection and has a single source.

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsEncodedString
from libc.stdint cimport uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp

import collections as _collections
import datetime as _datetime
import decimal as _decimal
import uuid as _uuid

from xxhash import xxh3_128_digest as _xxh3_128_digest

cdef object _exotic = _kc.exotic
cdef object _plain_class_name = _kc.plain_class_name

# The exact types compared below, held in C globals: a module attribute
# lookup per comparison would cost more than the encoding of a small value.
cdef type _UUID = _uuid.UUID
cdef type _DECIMAL = _decimal.Decimal
cdef type _DATETIME = _datetime.datetime
cdef type _DATE = _datetime.date
cdef type _TIME = _datetime.time
cdef type _TIMEDELTA = _datetime.timedelta
cdef dict _plain_classes = _kc.PLAIN_CLASSES  # plain_class_name's memo
cdef type _ORDERED_DICT = _collections.OrderedDict
cdef object _move_to_end = _collections.OrderedDict.move_to_end

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


cdef enum:
    # The twin's _MAX_DEPTH, as a C constant with literal messages: read from
    # _kernels_common at import instead, a cache hit measured 5% slower.
    _KEY_MAX_DEPTH = 64
    _KEY_SMALL = 256      # bytes kept on the stack before the buffer moves to the heap
    _KEY_FEW_SPANS = 16   # dict/set entries sorted without a heap block


cdef struct _KeyBuf:
    char *data            # small, or a PyMem block once small is full
    Py_ssize_t size
    Py_ssize_t cap
    char small[_KEY_SMALL]


cdef struct _Span:        # one encoded dict/set entry, for sorting:
    Py_ssize_t at         # its offset in the buffer,
    Py_ssize_t n          # its size,
    const char *p         # where its copy is while the entries are sorted


cdef int _kb_grow(_KeyBuf *b, Py_ssize_t n) except -1:
    """Make room for ``n`` more bytes."""
    cdef Py_ssize_t cap = b.cap
    cdef char *data
    while cap - b.size < n:
        if cap > PY_SSIZE_T_MAX // 2:
            raise MemoryError()
        cap *= 2
    if b.data == b.small:
        data = <char *>PyMem_Malloc(cap)
        if data != NULL:
            memcpy(data, b.small, b.size)
    else:
        data = <char *>PyMem_Realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int _kb_put(_KeyBuf *b, const char *p, Py_ssize_t n) except -1:
    if b.cap - b.size < n:
        _kb_grow(b, n)
    memcpy(b.data + b.size, p, n)
    b.size += n
    return 0


cdef int _kb_head(_KeyBuf *b, char tag, Py_ssize_t n) except -1:
    """``tag`` and the length ``n`` as 4 little-endian bytes."""
    cdef unsigned char head[5]
    if <size_t>n > 0xFFFFFFFFU:
        raise ValueError(f"a length of {n} does not fit a cache key, expected at most 4294967295")
    head[0] = <unsigned char>tag
    head[1] = n & 0xFF
    head[2] = (n >> 8) & 0xFF
    head[3] = (n >> 16) & 0xFF
    head[4] = (n >> 24) & 0xFF
    return _kb_put(b, <char *>head, 5)


cdef inline int _kb_sized(_KeyBuf *b, char tag, const char *p, Py_ssize_t n) except -1:
    _kb_head(b, tag, n)
    return _kb_put(b, p, n)


cdef int _kb_text(_KeyBuf *b, char tag, str text) except -1:
    if PyUnicode_IS_ASCII(text):  # already its own UTF-8
        return _kb_sized(b, tag, <char *>PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text))
    cdef bytes data = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass")
    return _kb_sized(b, tag, PyBytes_AS_STRING(data), len(data))


cdef int _kb_int(_KeyBuf *b, object value) except -1:
    """b"i", the decimal digits, b";"."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef unsigned long long u = (0ULL - <unsigned long long>v) if v < 0 else <unsigned long long>v
    cdef char text[23]    # b"i", sign, 19 digits at most, b";", written from the end
    cdef Py_ssize_t i = 22
    if overflow:
        digits = b"i%d;" % value     # as in the twin: str(int)'s digit limit applies
        return _kb_put(b, PyBytes_AS_STRING(digits), len(<bytes>digits))
    text[i] = c';'
    while True:
        i -= 1
        text[i] = <char>(c'0' + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        text[i] = c'-'
    i -= 1
    text[i] = c'i'
    return _kb_put(b, text + i, 23 - i)


cdef int _kb_float(_KeyBuf *b, double value) except -1:
    """b"f" and the IEEE-754 bits, big-endian (struct ">d")."""
    cdef uint64_t bits
    cdef char text[9]
    cdef int i
    memcpy(&bits, &value, 8)
    text[0] = c'f'
    for i in range(8):
        text[1 + i] = <char>((bits >> (56 - 8 * i)) & 0xFF)
    return _kb_put(b, text, 9)


cdef int _span_cmp(const void *a, const void *b) noexcept nogil:
    cdef const _Span *x = <const _Span *>a
    cdef const _Span *y = <const _Span *>b
    cdef int c = memcmp(x.p, y.p, <size_t>(x.n if x.n < y.n else y.n))
    return c if c else (x.n > y.n) - (x.n < y.n)


cdef int _kb_unordered(_KeyBuf *b, object value, int depth) except -1:
    """A dict (entries: key then value) or set: the entries in byte order."""
    cdef Py_ssize_t size = len(value), n = 0, i, start
    cdef _Span few[_KEY_FEW_SPANS]   # small dicts (filters, order_by) need no heap block
    cdef _Span *spans = few
    if size > _KEY_FEW_SPANS:
        spans = <_Span *>PyMem_Malloc(size * sizeof(_Span))
        if spans == NULL:
            raise MemoryError()
    try:
        _kb_head(b, c'{' if type(value) is dict else c'S' if type(value) is set else c'Z', size)
        if type(value) is dict:
            for k, v in (<dict>value).items():
                if n == size:  # refilled while an item was encoded: as dict iterators say
                    raise RuntimeError("dictionary keys changed during iteration")
                spans[n].at = b.size
                n += 1
                _kb_value(b, k, depth)
                _kb_value(b, v, depth)
        else:
            for item in value:
                if n == size:  # as the twin says
                    raise RuntimeError("Set changed size during iteration")
                spans[n].at = b.size
                n += 1
                _kb_value(b, item, depth)
        if n < 2:
            return 0
        # Copy the entries past the end of the buffer, sort, copy them back.
        start = spans[0].at
        if b.cap - b.size < b.size - start:
            _kb_grow(b, b.size - start)
        memcpy(b.data + b.size, b.data + start, b.size - start)
        for i in range(n):
            spans[i].n = (spans[i + 1].at if i + 1 < n else b.size) - spans[i].at
            spans[i].p = b.data + b.size + (spans[i].at - start)
        qsort(spans, n, sizeof(_Span), _span_cmp)
        b.size = start
        for i in range(n):
            memcpy(b.data + b.size, spans[i].p, spans[i].n)
            b.size += spans[i].n
        return 0
    finally:
        if spans != few:
            PyMem_Free(spans)


cdef int _kb_value(_KeyBuf *b, object value, int depth) except -1:
    """Append the encoding of ``value``; ``depth`` as in the twin's ``_put``."""
    cdef type cls = type(value)
    if cls is str:
        return _kb_text(b, c's', value)
    if cls is int:
        return _kb_int(b, value)
    if value is None:
        return _kb_put(b, "N", 1)
    if value is True:
        return _kb_put(b, "T", 1)
    if value is False:
        return _kb_put(b, "F", 1)
    if cls is float:
        return _kb_float(b, PyFloat_AS_DOUBLE(value))
    if cls is bytes:
        return _kb_sized(b, c'b', PyBytes_AS_STRING(value), len(<bytes>value))
    if cls is bytearray:
        return _kb_sized(b, c'y', PyByteArray_AS_STRING(value), len(<bytearray>value))
    if cls is memoryview:
        data = value.tobytes()
        return _kb_sized(b, c'v', PyBytes_AS_STRING(data), len(<bytes>data))
    if cls is tuple or cls is list or cls is dict or cls is set or cls is frozenset:
        if depth >= _KEY_MAX_DEPTH:
            raise ValueError("value nests deeper than 64 levels")
        if cls is tuple:
            _kb_head(b, c'(', len(<tuple>value))
            for item in <tuple>value:
                _kb_value(b, item, depth + 1)
        elif cls is list:
            _kb_head(b, c'[', len(<list>value))
            for item in <list>value:
                _kb_value(b, item, depth + 1)
        else:
            _kb_unordered(b, value, depth + 1)
        return 0
    if cls is _UUID:
        data = value.bytes
        _kb_put(b, "u", 1)
        return _kb_put(b, PyBytes_AS_STRING(data), len(<bytes>data))
    if cls is _DECIMAL:
        return _kb_text(b, c'm', str(value))
    if cls is _DATETIME:
        return _kb_text(b, c'D', value.isoformat())
    if cls is _DATE:
        return _kb_text(b, c'd', value.isoformat())
    if cls is _TIME:
        return _kb_text(b, c't', value.isoformat())
    if cls is _TIMEDELTA:
        _kb_put(b, "R(\x03\x00\x00\x00", 6)   # b"R" and the tuple (days, seconds, microseconds)
        _kb_int(b, value.days)
        _kb_int(b, value.seconds)
        return _kb_int(b, value.microseconds)
    # Plain Python objects (RESTAlchemy's filter clauses) without a call once
    # their class is known; everything else through exotic().
    name = _plain_classes.get(cls)
    if name is None:
        name = _plain_class_name(cls)
    if name:
        tag, inner = b"o", value.__dict__
    else:
        tag, name, inner = _exotic(value)
    if depth >= _KEY_MAX_DEPTH:
        raise ValueError("value nests deeper than 64 levels")
    _kb_text(b, (<bytes>tag)[0], name)
    return _kb_value(b, inner, depth + 1)


cdef bytes _encode_key(object value):
    cdef _KeyBuf b
    b.data = b.small
    b.size = 0
    b.cap = _KEY_SMALL
    try:
        _kb_value(&b, value, 0)
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        if b.data != b.small:
            PyMem_Free(b.data)


def encode_key(value):
    """The canonical, type-tagged bytes of a query input (see the twin).

    Raises TypeError for a value of an unsupported type and ValueError for one
    that nests deeper than 64 levels (which includes any cycle).
    """
    return _encode_key(value)


def cache_key(value):
    """``(digest, encoding)`` of a query input: the 16-byte big-endian
    xxh3-128 (seed 0) of ``encode_key(value)``, and that encoding."""
    encoded = _encode_key(value)
    return _xxh3_128_digest(encoded), encoded


def cache_get(entries, value, default):
    """The result cached for ``value`` in ``entries`` (an OrderedDict), moved
    to the LRU end, or ``default`` (see the twin)."""
    found = _lookup_or_miss(entries, value)
    return default if found is _MISS else found


# -- the query cache's hot path (twin: _speedups_py.QueryCacheCore) ------------------

from cpython.long cimport PyLong_FromVoidPtr

LOCKING_READ = _kc.LOCKING_READ

cdef object _MISS = object()
cdef long long _MAX_ENTRIES = _kc.MAX_ENTRIES_LIMIT
cdef object _locking_search = _kc.LOCKING_READ.search
cdef object _read_only_match = _kc.READ_ONLY.match
cdef tuple _NEITHER = (False, False)
cdef Py_ssize_t _STATEMENT_KINDS_MAX = _kc.STATEMENT_KINDS_MAX
cdef Py_ssize_t _STATEMENT_KIND_MAX_LEN = _kc.STATEMENT_KIND_MAX_LEN

# statement -> statement_kind(statement), as the twin's memo (bounded the
# same way); also a module attribute, for the tests.
cdef dict _statement_kinds = {}
_STATEMENT_KINDS = _statement_kinds


cdef tuple _statement_kind(object statement):
    """``statement_kind(statement)``, from the memo when it is there."""
    cdef object found
    if type(statement) is not str:
        return _NEITHER
    found = _statement_kinds.get(statement)
    if found is not None:
        return <tuple>found
    read_only = _read_only_match(statement) is not None
    kind = (read_only, read_only and _locking_search(statement) is None)
    if PyUnicode_GET_LENGTH(statement) <= _STATEMENT_KIND_MAX_LEN:
        if len(_statement_kinds) >= _STATEMENT_KINDS_MAX:
            _statement_kinds.clear()
        _statement_kinds[statement] = kind
    return kind


def statement_kind(statement):
    """``(read_only, cacheable)`` of a statement (see the twin)."""
    return _statement_kind(statement)


cdef inline bint _cacheable_read(object statement) except -1:
    """Whether a read may be served from the cache: statement_kind()[1],
    with the memo read inline (a cache hit's first step)."""
    if type(statement) is str:
        kind = _statement_kinds.get(statement)
        if kind is not None:
            return (<tuple>kind)[1]
    return _statement_kind(statement)[1]


cdef inline object _table_name(object table):
    """As the twin's: a table's name, from a str or an object's ``.name``."""
    if type(table) is str:
        return table
    name = getattr(table, "name", None)
    return name if type(name) is str else repr(table)


cdef inline object _lookup_or_miss(object entries, object key):
    """cache_get(entries, key, _MISS) without the call."""
    cdef bytes encoded
    if type(entries) is not _ORDERED_DICT:
        raise TypeError(f"entries must be an OrderedDict, got {type(entries).__name__}")
    try:
        encoded = _encode_key(key)
    except (TypeError, ValueError):
        return _MISS
    digest = _xxh3_128_digest(encoded)
    cdef PyObject *entry = PyDict_GetItemWithError(entries, digest)
    if entry == NULL or (<object>entry)[0] != encoded:
        return _MISS
    _move_to_end(entries, digest)
    return (<object>entry)[1]


cdef class QueryCacheCore:
    """The entry points of ``fastsess.cache.SessionQueryCache`` that a cache
    hit goes through, compiled: a hit runs no Python code (see the twin)."""

    cdef public object _session
    cdef public object _entries
    cdef public object _engines
    cdef public object max_entries
    cdef public long long hits
    cdef public long long misses
    cdef public long long uncacheable

    def __init__(self, session, max_entries=1024):
        _limit(max_entries, "max_entries", 1, _MAX_ENTRIES)
        self._session = session
        self._entries = _ORDERED_DICT()  # digest -> (encoding, result)
        self._engines = {}  # id -> engine of every engine in a key
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.uncacheable = 0

    def get_all(self, engine, table, filters, fallback, limit=None, order_by=None, locked=False):
        """``fallback(filters=, session=, limit=, order_by=, locked=)``, cached."""
        slot = None
        if not locked:
            key = ("get_all", PyLong_FromVoidPtr(<void *>engine),
                   _table_name(table), filters, limit, order_by)
            found = _lookup_or_miss(self._entries, key)
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
        if not locked and _locking_search(where_conditions or "") is None:
            key = ("query", PyLong_FromVoidPtr(<void *>engine),
                   _table_name(table), where_conditions,
                   where_values, limit, order_by)
            found = _lookup_or_miss(self._entries, key)
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
        if _cacheable_read(statement):
            key = ("sql", statement, params)
            found = _lookup_or_miss(self._entries, key)
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
            self._engines[PyLong_FromVoidPtr(<void *>engine)] = engine
        entries = self._entries
        # A digest shared by two different encodings (never seen for
        # xxh3-128) replaces the older entry: cache_get compares encodings.
        entries[digest] = (encoding, result)
        _move_to_end(entries, digest)
        if len(entries) > self.max_entries:
            entries.popitem(last=False)
