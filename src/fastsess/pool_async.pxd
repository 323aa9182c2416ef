# Declarations for compiling pool_async.py (see pool.pxd).

from fastsess.pool cimport PoolState


cdef class AsyncPool(PoolState):
    cdef public object _waiters
    cdef public object _loop
    cdef public object _reaper
    cdef public object _orphans
