"""Drop-in sessions: fastsess sessions that speak RESTAlchemy's session API.

RESTAlchemy calls ``engine``, ``cache``, ``execute``, ``execute_many``,
``batch_insert``, ``batch_delete``, ``commit``, ``rollback`` and ``close``
on a session; ``fastsess.Session`` has them all.  What differs is said here:

- errors are raised as fastsess errors that are also the stock driver's
  class (``fastsess.restalchemy.errors``), and ``batch_insert`` raises
  RESTAlchemy's ``ConflictRecords`` for a duplicate key, as its stock
  sessions do;
- on MySQL, statements are read the way mysql-connector reads them
  (``fastsess.restalchemy.placeholders``);
- a commit after a caught error that aborted the transaction rolls back
  quietly, as psycopg does under stock RESTAlchemy (fastsess's own sessions
  raise ``TransactionAborted``);
- the "current session" lives in RESTAlchemy's one thread slot shared by
  all engines (``SharedSessionStorage``), which its read-only request
  contexts rely on: a session stored through the read-only engine serves the
  models that ask the default engine;
- when an engine's ``get_connection``/``close_connection`` are overridden
  (on the instance or in a subclass), its sessions take their connection
  through them, as stock sessions do, so a caller that sets
  ``prepare_threshold`` (or anything else) on the connections it hands out
  is honoured.
"""

from __future__ import annotations

import logging
from time import monotonic

from restalchemy.storage import exceptions as ra_storage_exc
from restalchemy.storage.sql import sessions as ra_sessions

from .. import errors as fs_errors
from ..pool import PooledConnection
from ..session import Session
from ..session import session_manager as _fastsess_session_manager
from . import errors
from .placeholders import for_mysqlclient
from .snapshots import storable_rows

LOG = logging.getLogger("fastsess.restalchemy")


class SharedSessionStorage(ra_sessions.SessionThreadStorage):
    """RESTAlchemy's thread storage (one slot per thread, shared by every
    engine), with the lookup fastsess's ``session_manager`` uses."""

    # fastsess.current.current() skips the slot while this is false;
    # RESTAlchemy code stores sessions without telling us, so always look.
    _stored = True

    def find_session(self):
        """The session stored for this thread, or None."""
        return getattr(self._storage, "session", None)


class SessionManager(_fastsess_session_manager):
    """``engine.session_manager(session=None)`` of a drop-in engine.

    As RESTAlchemy's: a given session, else the one stored for this thread
    (read through ``engine._get_session_from_storage()``, which RESTAlchemy
    code and tests may replace), is yielded untouched; otherwise fastsess's
    own scope decides (a session made current by a fastsess scope, else a
    new one from ``engine.get_session()``, committed when the block
    succeeds, rolled back when it raises, and always closed).
    """

    __slots__ = ()

    def __enter__(self):
        if self._session is None:
            stored = self._engine._get_session_from_storage()
            if stored is not None:
                self._session = stored
                return stored
        return _fastsess_session_manager.__enter__(self)


class EngineConnections:
    """Stands in for the pool in a session whose engine overrides
    ``get_connection``/``close_connection``: the session checks connections
    out and in through the engine, as RESTAlchemy's stock sessions do."""

    __slots__ = ("_engine",)

    def __init__(self, engine):
        self._engine = engine

    @property
    def closed(self) -> bool:
        return self._engine._pool.closed

    def checkout(self) -> PooledConnection:
        engine = self._engine
        raw = engine.get_connection()
        pc = engine._borrowed.get(id(raw))
        if pc is None or pc.raw is not raw:
            # Not one of the pool's: the override made it.  The session
            # still needs the bookkeeping (a lost connection is marked broken).
            pc = PooledConnection(raw, monotonic())
            pc.checked_out = True
        return pc

    def checkin(self, pc, in_transaction=None) -> None:
        self._engine.close_connection(pc.raw)

    def count_reconnect(self) -> None:
        self._engine._pool.count_reconnect()

    def release_orphan(self, pc, in_transaction) -> None:
        # From Session.__del__: no locks here (dict.pop is atomic).
        engine = self._engine
        if engine._borrowed.pop(id(pc.raw), None) is pc:
            engine._pool.release_orphan(pc, in_transaction)


class DropInSession(Session):
    """What both drop-in sessions share."""

    __slots__ = ()

    #: Whether an integrity error other than a duplicate key becomes
    #: RESTAlchemy's UnknownStorageException in batch_insert (its MySQL
    #: session does that; its PostgreSQL session lets the error through).
    _unknown_integrity = False

    def batch_insert(self, models):
        """Insert models of one type (multi-row INSERTs, COPY for large
        batches on PostgreSQL); a duplicate key raises RESTAlchemy's
        ``ConflictRecords``.  Returns the number of rows inserted.  The
        models' values are read in bulk (``snapshots.storable_rows``)."""
        models = list(models)
        if not models:
            return 0
        try:
            table, columns, rows = storable_rows(models)
            return self._insert(table, columns, rows)
        except fs_errors.ConflictError as e:
            raise ra_storage_exc.ConflictRecords(
                model=type(models[0]).__name__, msg=errors.conflict_text(e)) from e
        except fs_errors.IntegrityError as e:
            if not self._unknown_integrity:
                raise
            raise ra_storage_exc.UnknownStorageException(caused=e) from e

    def _refuse_commit(self):
        # fastsess's own sessions raise TransactionAborted when asked to
        # commit a transaction an earlier (caught) error aborted.  Stock
        # RESTAlchemy sends the COMMIT, which PostgreSQL turns into a
        # rollback and psycopg reports as success; its code and tests catch
        # a ConflictRecords inside session_manager() and carry on.  So roll
        # back, quietly, as the stock stack does.
        cause = self._error
        LOG.debug("commit of a transaction an earlier %s aborted: rolled back, as stock "
                  "RESTAlchemy does", type(cause).__name__)
        self.rollback()


class PgSQLSession(DropInSession):
    """A drop-in session on PostgreSQL (psycopg, the stock driver)."""

    __slots__ = ()

    def _fail(self, exc, during_commit=False, params=None):
        return errors.as_psycopg_error(Session._fail(self, exc, during_commit, params))


class MySQLSession(DropInSession):
    """A drop-in session on MySQL/MariaDB through mysqlclient."""

    __slots__ = ()
    _unknown_integrity = True

    def _fail(self, exc, during_commit=False, params=None):
        err = Session._fail(self, exc, during_commit, params)
        return errors.as_connector_error(err, self._raw, self._adapter.scrub)

    def execute(self, statement, values=None):
        """Run one statement; ``%s`` placeholders as mysql-connector reads
        them (a ``%`` that is not a placeholder is literal)."""
        statement, values = for_mysqlclient(statement, values)
        return Session.execute(self, statement, values)

    def execute_many(self, statement, values):
        if not isinstance(values, (list, tuple)):
            values = list(values)
        if values:
            # mysqlclient formats each parameter set: same rule as execute().
            statement = for_mysqlclient(statement, values[0])[0]
        return Session.execute_many(self, statement, values)
