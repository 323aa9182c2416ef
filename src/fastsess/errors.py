"""The exceptions fastsess raises, one hierarchy over both drivers.

Driver errors are translated by the driver adapters (``fastsess.drivers``);
the original exception stays reachable as ``.orig``.  ``retryable`` says
whether running the whole transaction again may succeed.

    FastsessError
    +-- InvalidURL (also ValueError)
    +-- EngineNotFound (also ValueError, as RESTAlchemy's factory raises)
    +-- EngineClosed
    +-- SessionClosed
    +-- SessionNotFound                     no session stored or current (get_session, current_session)
    +-- SessionConflict                     a session is already stored for this thread or task
    +-- PoolError
    |   +-- PoolTimeout
    |   +-- PoolTooManyWaiting
    +-- DatabaseError                       .orig, .sqlstate, .errno
        +-- IntegrityError
        |   +-- ConflictError               .key, .value  (unique violation)
        |   +-- ForeignKeyViolation
        +-- TransactionRollback             retryable
        |   +-- DeadlockDetected
        |   +-- SerializationFailure
        +-- LockTimeout                     retryable
        +-- OperationalError
        |   +-- ConnectionFailed            cannot connect (host, credentials)
        |   +-- ConnectionLost              retryable
        |       +-- CommitOutcomeUnknown    not retryable
        +-- ProgrammingError
        |   +-- UnsupportedParameter (also TypeError)   .parameter, .row, .python_type:
        |                                               no faithful adapter for the value
        |                                               (set, plain Enum, object, ...); the
        |                                               statement was not sent
        +-- DataError
        |   +-- InvalidParameterValue (also ValueError) same attributes: the type is fine,
        |                                               the value is not (a NUL character in
        |                                               text on PostgreSQL, NaN in a dict for
        |                                               JSON); the statement was not sent
        +-- ReadOnlyViolation
    +-- TransactionManagementError          a transaction or atomic block misused
        +-- TransactionAborted              .cause; cannot commit: an earlier error
                                            aborted the transaction (it is rolled back)
"""

from __future__ import annotations


class FastsessError(Exception):
    """Base class of every error fastsess raises on its own account."""

    retryable = False


class InvalidURL(FastsessError, ValueError):
    """A database URL fastsess cannot use (unknown scheme, malformed)."""


class EngineNotFound(FastsessError, ValueError):
    """No engine is registered under the requested name."""


class EngineClosed(FastsessError):
    """The engine (and so its pool) was closed."""


class SessionClosed(FastsessError):
    """A closed session was used where it cannot take a fresh connection."""


class SessionNotFound(FastsessError):
    """No session is stored (``SessionThreadStorage.get_session``) or current
    (``current_session``) for this thread or task."""


class SessionConflict(FastsessError):
    """A session is already stored for this thread or task."""


class PoolError(FastsessError):
    """The connection pool could not hand out a connection."""


class PoolTimeout(PoolError):
    """No connection became free within the pool's timeout."""


class PoolTooManyWaiting(PoolError):
    """More callers are already waiting for a connection than ``max_waiting``."""


class DatabaseError(FastsessError):
    """An error reported by the database or its driver (or, for the parameter
    errors, found by fastsess before the statement was sent).

    ``orig`` is the driver's exception, ``sqlstate`` (PostgreSQL) or
    ``errno`` (MySQL) the server's code when known.
    """

    def __init__(self, message: str, orig: BaseException | None = None,
                 sqlstate: str | None = None, errno: int | None = None):
        super().__init__(message)
        self.orig = orig
        self.sqlstate = sqlstate
        self.errno = errno


class IntegrityError(DatabaseError):
    """A constraint refused the change."""


class ConflictError(IntegrityError):
    """A unique constraint refused the change.

    ``key`` names the violated key (``"id"`` or ``"a, b"`` on PostgreSQL, the
    index name such as ``"PRIMARY"`` on MySQL) and ``value`` its value as the
    server printed it; either is None when the server's message did not say.
    """

    def __init__(self, message: str, orig: BaseException | None = None,
                 sqlstate: str | None = None, errno: int | None = None,
                 key: str | None = None, value: str | None = None):
        super().__init__(message, orig, sqlstate, errno)
        self.key = key
        self.value = value


class ForeignKeyViolation(IntegrityError):
    """A foreign key refused the change."""


class TransactionRollback(DatabaseError):
    """The server rolled the transaction back; running it again may succeed."""

    retryable = True


class DeadlockDetected(TransactionRollback):
    """The server broke a deadlock by rolling this transaction back."""


class SerializationFailure(TransactionRollback):
    """A concurrent transaction made this one impossible to serialize."""


class LockTimeout(DatabaseError):
    """A lock could not be taken in time (MySQL ``innodb_lock_wait_timeout``)."""

    retryable = True


class OperationalError(DatabaseError):
    """The database could not carry out the operation (not the statement's fault)."""


class ConnectionFailed(OperationalError):
    """A connection could not be opened: host unreachable, bad credentials, ..."""


class ConnectionLost(OperationalError):
    """The connection broke; the transaction it carried is gone."""

    retryable = True


class CommitOutcomeUnknown(ConnectionLost):
    """The connection broke while COMMIT was in flight: it may or may not have
    been applied, so running the transaction again is not safe."""

    retryable = False


class ProgrammingError(DatabaseError):
    """The statement is wrong: syntax, unknown table or column, bad parameters."""


class DataError(DatabaseError):
    """A value does not fit its column (out of range, invalid text, ...)."""


class _ParameterProblem(DatabaseError):
    """What the two parameter errors share (not raised itself).

    ``parameter`` names the value: its position in the statement's parameter
    sequence (0-based), its key for ``%(name)s`` parameters, or its column
    in a batch (``insert_rows``, ``batch_insert``), where ``row`` is the
    row's index (else None); None when it could not be told.  ``python_type``
    is the value's type.  No SQL was sent for the statement and the
    transaction is as it was before it: the session stays usable.  ``orig``
    is the driver's exception when the driver found the problem (psycopg's
    "cannot adapt type", its NUL check), else None.
    """

    def __init__(self, message: str, orig: BaseException | None = None,
                 sqlstate: str | None = None, errno: int | None = None,
                 parameter: int | str | None = None, python_type: type | None = None,
                 row: int | None = None):
        super().__init__(message, orig, sqlstate, errno)
        self.parameter = parameter
        self.python_type = python_type
        self.row = row


class UnsupportedParameter(_ParameterProblem, ProgrammingError, TypeError):
    """A statement parameter of a type neither database driver adapts
    faithfully: a ``set``/``frozenset``, a plain ``Enum`` member, an
    arbitrary object.  See ``_ParameterProblem`` for the attributes."""


class InvalidParameterValue(_ParameterProblem, DataError, ValueError):
    """A statement parameter whose type is supported but whose value cannot
    be sent as it is: a NUL character in text on PostgreSQL, a float NaN or
    infinity (or a circular reference) inside a value sent as JSON."""


class ReadOnlyViolation(DatabaseError):
    """A write was attempted in a read-only transaction or engine."""


class TransactionManagementError(FastsessError):
    """An atomic block or transaction scope was used in a way that cannot work
    (``commit()`` inside an atomic block, a nested durable block, ...)."""


class TransactionAborted(TransactionManagementError):
    """The transaction (or a nested block) cannot commit: an earlier error
    aborted it and was caught, or it was rolled back inside an atomic block.
    Its work has been rolled back.  ``cause`` is that error (also the
    exception's ``__cause__``); ``retryable`` is the cause's."""

    def __init__(self, message: str, cause: BaseException | None = None):
        super().__init__(message)
        self.cause = cause
        self.retryable = isinstance(cause, FastsessError) and cause.retryable is True
