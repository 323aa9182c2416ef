"""The per-session query cache: never stale within the session, never wrong.

Keys are the canonical, type-tagged encoding of everything that shapes a
query (``fastsess._impl.encode_key``), hashed with xxh3-128.  The hash only
picks the slot: on a hit the stored encoding is compared with the new one,
so two different queries can never share a result, whatever the hash does.
``1``, ``True``, ``1.0`` and ``"1"`` encode differently, and unhashable
parameters (lists, dicts) work.

Any write through the session (a statement that is not a plain read,
``execute_many``, the batch operations), a rollback (also to a savepoint) and
``close()`` empty the cache.  Locking reads (``locked=True``, ``FOR UPDATE``,
``FOR SHARE``) are never served from it nor stored.  At most ``max_entries``
results are kept, least recently used first out.
"""

from __future__ import annotations

from . import _impl

_statement_kind = _impl.statement_kind

DEFAULT_MAX_ENTRIES = 1024


class SessionQueryCache(_impl.QueryCacheCore):
    """Results of reads within one session (see the module docstring).

    RESTAlchemy's entry points ``get_all(engine, table, filters, fallback,
    limit=None, order_by=None, locked=False)`` and ``query(engine, table,
    where_conditions, where_values, fallback, limit=None, order_by=None,
    locked=False)`` take a ``fallback`` that runs the query; a repeated
    identical call returns the same object.  ``fetchall(statement, params)``
    caches a plain statement's rows.  ``hits``, ``misses`` and
    ``uncacheable`` (inputs that cannot be encoded, run without the cache)
    count what happened.

    ``get_all``, ``query`` and ``fetchall`` live in the kernel
    (``QueryCacheCore``): with the compiled module a hit runs no Python code.
    """

    __slots__ = ()

    def __init__(self, session, max_entries: int = DEFAULT_MAX_ENTRIES):
        super().__init__(session, max_entries)

    def _on_statement(self, statement) -> None:
        if not _statement_kind(statement)[0]:  # bytes (a MySQL batch insert): a write
            self.clear()

    def clear(self) -> None:
        """Forget every cached result."""
        self._entries.clear()
        self._engines.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict:
        return {"entries": len(self._entries), "max_entries": self.max_entries,
                "hits": self.hits, "misses": self.misses, "uncacheable": self.uncacheable}
