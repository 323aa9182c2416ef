# Declarations for compiling pool.py (Cython pure-Python mode): the classes
# become extension types with C fields; pool.py itself stays the pure twin.
# Keep every field here in step with the attributes pool.py assigns.

cdef class PooledConnection:
    cdef public object raw
    cdef public double created
    cdef public double returned
    cdef public bint broken
    cdef public bint checked_out
    cdef public int fd
    cdef public bint inherited


cdef class PoolState:
    cdef public object _driver
    cdef public object name
    cdef public Py_ssize_t max_size
    cdef public Py_ssize_t min_size
    cdef public double timeout
    cdef public Py_ssize_t max_waiting
    cdef public double max_idle
    cdef public double max_lifetime
    cdef public object _idle
    cdef public Py_ssize_t _size
    cdef public Py_ssize_t _in_use
    cdef public Py_ssize_t _waiting
    cdef public bint _closed
    cdef public Py_ssize_t _checkouts
    cdef public dict _counters
    cdef public set _conns
    cdef object __weakref__

    cpdef PooledConnection _take_fresh(self)
    cpdef bint _returned(self, PooledConnection pc, bint ok, bint rolled_back, double now)


cdef class Pool(PoolState):
    cdef public object _lock
    cdef public object _cond
    cdef public object _orphans
    cdef public object _reaper
    cdef public object _stop_reaper

    cpdef PooledConnection checkout(self)
    cpdef checkin(self, PooledConnection pc, in_transaction=*)
