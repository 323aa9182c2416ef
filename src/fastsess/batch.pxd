# Declarations for compiling batch.py: the batch methods are the base of the
# compiled session classes (session.pxd).

cdef class BatchWrites:
    pass
