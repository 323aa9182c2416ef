"""MySQL and MariaDB for async engines, through asyncmy.

asyncmy writes parameters into the statement on the client, PyMySQL-style:
it would write ``str(value)`` for a dict or an object it does not know.
Its cursors here run every parameter through ``mysql_base.faithful`` first,
so the parameter rule is the same as on mysqlclient and PostgreSQL.  Its
cursors buffer a result as the statement runs; a connection whose statement
was cancelled is desynchronised and is closed by the pool, never reused;
the server, which would run the cancelled statement to its end (holding its
locks) before it noticed, is told to stop it (``KILL QUERY``).
"""

from __future__ import annotations

import asyncio
import logging

import asyncmy
from asyncmy import cursors
from asyncmy import errors as asyncmy_errors

from .. import errors
from .. import params as _params
from .base import DriverAdapter
from .mysql_base import connect_settings, faithful
from .mysql_base import translate as mysql_translate

LOG = logging.getLogger("fastsess.pool")
_DIALECT = "MySQL"
_ParameterProblem = errors._ParameterProblem  # UnsupportedParameter, InvalidParameterValue
_SERVER_STATUS_IN_TRANS = 1
_BY_DRIVER_CLASS = (
    (asyncmy_errors.IntegrityError, errors.IntegrityError),
    (asyncmy_errors.ProgrammingError, errors.ProgrammingError),
    (asyncmy_errors.DataError, errors.DataError),
    (asyncmy_errors.OperationalError, errors.OperationalError),
)


class Cursor(cursors.Cursor):
    """asyncmy's buffered cursor, its parameters made faithful first, and
    without asyncmy's extra ``SHOW WARNINGS`` round trip after a statement
    the server warned about (it logs each one at WARNING): the sync
    engine's mysqlclient sends none, and a warning is not an error."""

    async def _show_warnings(self, conn):
        pass

    def _escape_args(self, args, conn):
        if isinstance(args, dict):
            args = {key: faithful(value) for key, value in args.items()}
        else:
            args = [faithful(value) for value in args]
        return super()._escape_args(args, conn)

    async def executemany(self, query, args):
        # asyncmy runs a non-INSERT once per set: check every set before the
        # first is sent, so that a refused value sends nothing.
        args = args if isinstance(args, (list, tuple)) else list(args)
        for i, values in enumerate(args):
            items = values.items() if isinstance(values, dict) else enumerate(values)
            for key, value in items:
                try:
                    faithful(value)
                except _ParameterProblem as e:
                    raise _params.placed(e, _DIALECT, key, i, e._value is not value) from None
        return await super().executemany(query, args)


def _faithful_rows(columns, values) -> list:
    """``values`` (rows in ``columns`` order) made faithful, a refused value
    named by its column and row (as mysqlclient's batch INSERT names it)."""
    out = []
    for row in values:
        try:
            out.append([faithful(value) for value in row])
        except _ParameterProblem as e:
            raise _params.place_in_rows(e, _DIALECT, columns, values) from None
    return out


class AsyncMySQLAdapter(DriverAdapter):
    dialect = "mysql"
    max_params = 65535
    # asyncmy formats parameters into the statement with Python's % and lets
    # its ValueError/KeyError/TypeError escape (a stray %, a missing named
    # parameter, too few values), as mysqlclient does; and a socket's own
    # errors (a reset, EOF) through.
    Error = (asyncmy_errors.Error, ValueError, KeyError, TypeError, OSError, EOFError)

    def __init__(self, url, connect_args, readonly=False):
        super().__init__(url, connect_args, readonly)
        self._max_packet = 0
        self._killers = set()  # KILL QUERY tasks under way (see statement_interrupted)

    def _settings(self) -> dict:
        kwargs = connect_settings(self)
        kwargs["password"] = kwargs.pop("passwd", "") or ""
        kwargs["database"] = kwargs.pop("db", None)
        kwargs.setdefault("cursor_cls", Cursor)
        return kwargs

    async def connect(self):
        kwargs = self._settings()
        try:
            return await asyncmy.connect(**kwargs)
        except asyncmy_errors.Error as e:
            raise self.translate(e, connecting=True) from None
        except OSError as e:  # refused, unreachable: asyncmy lets the socket's error through
            raise errors.ConnectionFailed(
                f"could not connect to {self.url.censored()}: {self.scrub(str(e))}",
                orig=e) from None

    def usable(self, raw) -> bool:
        return bool(raw.connected)

    def statement_interrupted(self, raw) -> None:
        # asyncmy dropped the connection; the server would run the statement
        # on, and hold its locks, until it noticed.  Stop it from a short
        # connection of its own, in the background: the cancellation goes on.
        try:
            thread_id = int(raw.thread_id())
            task = asyncio.get_running_loop().create_task(self._kill_query(thread_id))
        except Exception:
            return
        self._killers.add(task)
        task.add_done_callback(self._killers.discard)

    async def _kill_query(self, thread_id: int) -> None:
        try:
            conn = await asyncmy.connect(**self._settings())
            try:
                async with conn.cursor() as cur:
                    await cur.execute(f"KILL QUERY {thread_id}")
            finally:
                conn.close()
        except asyncmy_errors.Error as e:  # 1094: the statement ended already
            LOG.debug("KILL QUERY %s after a cancelled statement: %s", thread_id, e)
        except Exception:
            LOG.debug("KILL QUERY %s after a cancelled statement failed", thread_id, exc_info=True)

    async def settle(self) -> None:
        if self._killers:
            await asyncio.gather(*self._killers, return_exceptions=True)

    def reset_state(self, raw, in_transaction):
        # The server says whether a transaction is open (SERVER_STATUS_IN_TRANS
        # in its last reply): roll back only then.
        if in_transaction is False or not raw.server_status & _SERVER_STATUS_IN_TRANS:
            return True
        return None

    async def reset(self, raw, in_transaction):
        state = self.reset_state(raw, in_transaction)
        if state is None:
            await raw.rollback()
        return state

    def close(self, raw) -> None:
        raw.close()  # the transport, without waiting (no COM_QUIT: the server notices EOF)

    def socket_fd(self, raw) -> int:
        try:
            return raw._transport.get_extra_info("socket").fileno()
        except Exception:
            return -1

    def idle_alive(self, raw, state) -> bool:
        return False  # the server sends nothing unasked: what waits is its goodbye

    def aborted(self, raw, error) -> bool:
        return isinstance(error, errors.TransactionRollback)

    def translate(self, exc, connecting=False, params=None):
        if isinstance(exc, _ParameterProblem):  # from Cursor._escape_args
            return _params.place(exc, _DIALECT, params)
        if isinstance(exc, (OSError, EOFError)):
            return errors.ConnectionLost(f"the connection broke: {type(exc).__name__}: "
                                         f"{self.scrub(str(exc))}", orig=exc)
        return mysql_translate(self, exc, connecting, asyncmy_errors.Error, _BY_DRIVER_CLASS, params)

    def insert_plan(self, raw, table, columns, values, max_params, max_bytes):
        rows = _faithful_rows(columns, values)
        return DriverAdapter.insert_plan(self, raw, table, columns, rows, max_params, max_bytes)

    async def max_statement_bytes(self, session) -> int:
        if not self._max_packet:
            row = (await session.execute("SELECT @@max_allowed_packet AS m")).fetchone()
            # Leave room for the packet header and our own estimate's slack.
            self._max_packet = int(row["m"]) - 1024
        return self._max_packet
