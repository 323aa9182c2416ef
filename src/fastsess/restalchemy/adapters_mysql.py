"""Driver adapter of the drop-in's MySQL engines (mysqlclient).

Imported when the first drop-in MySQL engine is made, not by ``install()``:
a PostgreSQL-only drop-in user never loads it.
"""

from __future__ import annotations

from MySQLdb.constants import CLIENT

from ..drivers.mysql import MySQLAdapter

#: mysql-connector counts the rows an UPDATE matched, not the ones it
#: changed; RESTAlchemy's update() reads that count.
FOUND_ROWS = CLIENT.FOUND_ROWS


class MySQLDropInAdapter(MySQLAdapter):
    """mysqlclient connections, then the caller's ``configure(conn)``."""

    def __init__(self, url, connect_args, readonly, configure=None, reset=None):
        super().__init__(url, connect_args, readonly)
        self._configure = configure

    def connect(self):
        raw = super().connect()
        if self._configure is not None:
            try:
                self._configure(raw)
            except BaseException:
                raw.close()
                raise
        return raw


def adapter_class(resetting: bool) -> type:
    return MySQLDropInAdapter
