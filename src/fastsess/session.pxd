# Declarations for compiling session.py (see pool.pxd).  ``_pool`` stays an
# object: a drop-in session may hold a stand-in for the pool.

from fastsess.batch cimport BatchWrites


cdef class BaseSession(BatchWrites):
    cdef public object _engine
    cdef public object _pool
    cdef public object _adapter
    cdef public object _driver_error
    cdef public object _pc
    cdef public object _raw
    cdef public object _cursor
    cdef public object _last
    cdef public bint _dirty
    cdef public bint _closed
    cdef public object _thread
    cdef public object _cache
    cdef public object _tx
    cdef public object _error
    cdef public bint _fresh
    cdef public bint _log
    cdef object __weakref__

    cpdef _commit_state(self)
    cpdef _ended(self, bint committed, started)
    cpdef tuple _release(self)


cdef class Session(BaseSession):
    cpdef _checkout(self)
    cpdef execute(self, statement, params=*)
    cpdef commit(self)
    cpdef rollback(self)
    cpdef close(self)


cdef class session_manager:
    cdef public object _engine
    cdef public object _session
    cdef public bint _owned
