# Declarations for compiling session_async.py (see pool.pxd).

from fastsess.result cimport Result
from fastsess.session cimport BaseSession


cdef class AsyncSession(BaseSession):
    pass


cdef class BufferedResult(Result):
    pass


cdef class async_session_manager:
    cdef public object _engine
    cdef public object _session
    cdef public bint _owned
