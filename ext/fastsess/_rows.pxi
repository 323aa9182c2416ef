# Row kernels: row_to_dict, rows_to_dicts, column_labels, decoded_names (twin: fastsess/_speedups_py.py).
#
# Both build the dict that dict(zip(names, row)) builds, without the zip
# iterator and its pair tuples: keys in order of first occurrence, the last
# value winning for a duplicate name.

cdef object _MISSING = object()


cdef inline bint _all_exact_str(object seq):
    """True when every item of the plain sequence ``seq`` is an exact str."""
    cdef Py_ssize_t i
    for i in range(fs_seq_size(seq)):
        if type(<object>fs_seq_item(seq, i)) is not str:
            return False
    return True


cdef dict _zip_dict(object names, object row):
    """``dict(zip(names, row))``, step for step."""
    cdef dict d = {}
    cdef Py_ssize_t i = 0
    cdef object key, value
    if fs_is_plain_seq(names) and fs_is_plain_seq(row):
        # Both sizes are read again at every step, as the list iterators that
        # zip() would use do: a key's __hash__/__eq__ may shrink either list.
        while i < fs_seq_size(names):
            key = <object>fs_seq_item(names, i)
            if i >= fs_seq_size(row):
                break
            value = <object>fs_seq_item(row, i)
            PyDict_SetItem(d, key, value)
            i += 1
        return d
    # Any other sequence: the same iterators zip() would make, advanced in
    # the same order (names first, so a short row stops before its next()).
    it_names = iter(names)
    it_row = iter(row)
    while True:
        key = next(it_names, _MISSING)
        if key is _MISSING:
            break
        value = next(it_row, _MISSING)
        if value is _MISSING:
            break
        PyDict_SetItem(d, key, value)
    return d


def row_to_dict(names, row):
    """One row (a sequence of values) as a dict keyed by column name.

    With duplicate names the last value wins, as ``dict(zip(names, row))``
    gives: the key keeps the position of its first occurrence.
    """
    if len(row) != len(names):
        raise ValueError(f"row has {len(row)} values, expected {len(names)}")
    return _zip_dict(names, row)


def rows_to_dicts(names, rows):
    """A list of rows as a list of fresh dicts (see ``row_to_dict``)."""
    cdef Py_ssize_t n = len(names)
    cdef Py_ssize_t i, size
    cdef list out = []
    cdef dict template = None
    cdef tuple keys = None
    cdef dict d
    cdef bint plain
    # With exact-str names (the usual case) hashing and comparing keys runs no
    # Python code, so dict(zip()) always yields the same key layout: copy it
    # from a template and store the values, instead of growing a new dict.
    if fs_is_plain_seq(names) and _all_exact_str(names):
        keys = tuple(names)
        template = {}
        for i in range(n):
            PyDict_SetItem(template, <object>PyTuple_GET_ITEM(keys, i), None)
    for row in rows:
        plain = fs_is_plain_seq(row)
        size = fs_seq_size(row) if plain else len(row)
        if size != n:
            raise ValueError(f"row has {len(row)} values, expected {n}")
        # ``names`` may be a list that code run by ``rows`` (a generator, a
        # row's __len__) has changed since the template was made.
        d = None
        if template is not None and plain:
            d = PyDict_Copy(template)
            # Checked after the copy: its allocation may run a finalizer, and
            # ``names`` may be a list that code run by ``rows`` (a generator, a
            # row's __len__) has changed since the template was made.
            if fs_seq_size(row) == n and (names is keys or _same_items(names, keys)):
                for i in range(n):
                    PyDict_SetItem(
                        d, <object>PyTuple_GET_ITEM(keys, i), <object>fs_seq_item(row, i)
                    )
            else:
                d = None
        if d is None:
            d = _zip_dict(names, row)
        out.append(d)
    return out


cdef inline bint _same_items(object seq, tuple keys):
    """True when the plain sequence ``seq`` still holds exactly ``keys``."""
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(keys)
    if fs_seq_size(seq) != n:
        return False
    for i in range(n):
        if fs_seq_item(seq, i) != PyTuple_GET_ITEM(keys, i):
            return False
    return True


def column_labels(description):
    """The labels of a DB-API ``description`` (each entry's first item) as a
    tuple; None for None (a statement without a result set)."""
    if description is None:
        return None
    return tuple([d[0] for d in description])


def decoded_names(fname, Py_ssize_t n, codec):
    """``(fname(0).decode(codec), ..., fname(n - 1).decode(codec))``: a
    result's field names from libpq's bytes."""
    cdef Py_ssize_t i
    return tuple([fname(i).decode(codec) for i in range(n)])
