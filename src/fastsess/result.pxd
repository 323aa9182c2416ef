# Declarations for compiling result.py (see pool.pxd).

cdef class Result:
    cdef public object _cursor
    cdef public object _names
    cdef public object _adapter
    cdef public object _pending

    cpdef fetchall(self)
