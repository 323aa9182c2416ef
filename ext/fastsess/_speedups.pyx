# cython: language_level=3
"""Compiled kernels of fastsess; the pure-Python twin is ``fastsess._speedups_py``.

Same names, arguments, results, exception types and messages as the twin
(``tests/test_kernels_diff.py`` compares them), but a whole implementation
of its own: nothing here imports the twin.  The kernels live in the
included parts ``_rows.pxi``, ``_sqlbuild.pxi``, ``_cachekey.pxi``,
``_literals.pxi`` and ``_sockets.pxi``.  What both modules share is in
``fastsess._kernels_common``: constants (read once, at import), the limit
checks' error path, and the cache-key encoding of subclasses and plain
objects.  Only ``fastsess._impl`` should import this module.
"""

from cpython.dict cimport PyDict_Copy, PyDict_SetItem
from cpython.list cimport PyList_New
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyObject_IsInstance
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.string cimport memcpy

cdef extern from "Python.h":
    ctypedef unsigned char Py_UCS1
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_UCS1* PyUnicode_1BYTE_DATA(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    Py_ssize_t PY_SSIZE_T_MAX

cdef extern from *:
    """
    /* A list or tuple whose len() and iteration are the built-in ones (exact
       types, or subclasses such as namedtuple that override neither), so that
       reading its items by index is exactly what len(), zip() and
       list.extend() see. */
    static inline int fs_is_plain_seq(PyObject *o) {
        PyTypeObject *t = Py_TYPE(o);
        PyTypeObject *base;
        if (t == &PyTuple_Type || t == &PyList_Type)
            return 1;
        if (PyTuple_Check(o))
            base = &PyTuple_Type;
        else if (PyList_Check(o))
            base = &PyList_Type;
        else
            return 0;
        return t->tp_iter == base->tp_iter
            && t->tp_as_sequence != NULL
            && t->tp_as_sequence->sq_length == base->tp_as_sequence->sq_length;
    }

    /* Current size and borrowed item of a plain sequence (see above). */
    #define fs_seq_size(o) Py_SIZE(o)
    #define fs_seq_item(o, i) (PySequence_Fast_ITEMS(o)[(i)])
    """
    bint fs_is_plain_seq(object o)
    Py_ssize_t fs_seq_size(object o)
    PyObject* fs_seq_item(object o, Py_ssize_t i)

import fastsess._kernels_common as _kc

__impl__ = "cython"

cdef object _check_limit = _kc.check_limit


cdef long long _limit(object value, str name, long long low, long long high) except? -1:
    """``value`` as a C integer when it is an int from ``low`` to ``high``;
    otherwise the shared check raises its TypeError or ValueError."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is int:
        v = PyLong_AsLongLongAndOverflow(value, &overflow)
        if not overflow and low <= v <= high:
            return v
    return _check_limit(name, value, low, high)


include "_rows.pxi"
include "_sqlbuild.pxi"
include "_cachekey.pxi"
include "_literals.pxi"
include "_sockets.pxi"
