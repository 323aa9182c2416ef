"""Driver adapters of the drop-in's PostgreSQL engines (psycopg).

Imported when the first drop-in PostgreSQL engine is made, not by
``install()``: a MySQL-only drop-in user never loads it.
"""

from __future__ import annotations

import json

from psycopg.pq import TransactionStatus
from restalchemy.storage.sql import engines as ra_engines

from .. import errors as fs_errors
from ..drivers.postgresql import PostgreSQLAdapter

_IDLE = TransactionStatus.IDLE


class PgAdapter(PostgreSQLAdapter):
    """psycopg connections set up as RESTAlchemy's stock engine sets them up:
    dicts dumped as JSONB; then the caller's ``configure(conn)``."""

    def __init__(self, url, connect_args, readonly, configure=None, reset=None):
        super().__init__(url, connect_args, readonly)
        self._configure = configure
        self._on_reset = reset

    def connect(self):
        raw = super().connect()  # read_only already set for a readonly engine
        try:
            raw.adapters.register_dumper(dict, ra_engines.PgDictJsonbDumper)
            if self._configure is not None:
                self._configure(raw)
                if raw.pgconn.transaction_status != _IDLE:
                    raise fs_errors.ProgrammingError(
                        "config['configure'] left the connection inside a transaction; "
                        "commit or roll back before it returns")
        except BaseException:
            raw.close()
            raise
        return raw

    def copy_takes_json(self, dumper) -> bool:
        # RESTAlchemy's dict dumper sends psycopg's Jsonb of the dict, dumped
        # with the json.dumps psycopg uses unless set_json_dumps() replaced
        # it: then COPY's JSON text has the same jsonb value.
        if dumper is ra_engines.PgDictJsonbDumper:
            return getattr(dumper, "_dumps", None) is json.dumps
        return super().copy_takes_json(dumper)


class PgResettingAdapter(PgAdapter):
    """A ``PgAdapter`` that also runs the caller's ``reset(conn)`` on every
    connection given back (psycopg_pool's ``reset``); one that raises or
    leaves a transaction open is discarded."""

    def reset(self, raw, in_transaction):
        state = super().reset(raw, in_transaction)
        if state is False:
            return False
        try:
            self._on_reset(raw)
        except Exception:
            return False
        return state if raw.pgconn.transaction_status == _IDLE else False


def adapter_class(resetting: bool) -> type:
    return PgResettingAdapter if resetting else PgAdapter
