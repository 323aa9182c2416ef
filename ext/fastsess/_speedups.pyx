# cython: language_level=3
"""Compiled kernels of fastsess; the pure-Python twin is ``fastsess._speedups_py``.

Same names, arguments, results, exception types and messages as the twin
(``tests/test_kernels_diff.py`` compares them).  The kernels live in the
included parts ``_rows.pxi``, ``_sqlbuild.pxi``, ``_cachekey.pxi``,
``_literals.pxi`` and ``_sockets.pxi``; only
``fastsess._impl`` should import this module.
"""

from cpython.dict cimport PyDict_Copy, PyDict_SetItem
from cpython.list cimport PyList_New
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_FromUnsignedLongLong
from cpython.object cimport PyObject, PyObject_IsInstance
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.string cimport memcpy

cdef extern from "Python.h":
    ctypedef unsigned char Py_UCS1
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_UCS1* PyUnicode_1BYTE_DATA(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    bint PyLong_CheckExact(object o)
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

__impl__ = "cython"

include "_rows.pxi"
include "_sqlbuild.pxi"
include "_cachekey.pxi"
include "_literals.pxi"
include "_sockets.pxi"
