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

import re
from collections import OrderedDict

from . import _impl

_cache_key = _impl.cache_key

# Statements that only read: anything else run through the session empties the cache.
_READ_ONLY = re.compile(r"\s*(\(\s*)*(SELECT|SHOW|EXPLAIN|DESCRIBE|DESC)\b", re.I)
_LOCKING = re.compile(
    r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b", re.I)

DEFAULT_MAX_ENTRIES = 1024
_MISS = object()


def is_read_only(statement: str) -> bool:
    """Whether ``statement`` only reads (a SELECT and the like)."""
    return _READ_ONLY.match(statement) is not None


class SessionQueryCache:
    """Results of reads within one session (see the module docstring).

    RESTAlchemy's entry points ``get_all`` and ``query`` take a ``fallback``
    that runs the query; ``fetchall(statement, params)`` caches a plain
    statement's rows.  ``hits``, ``misses`` and ``uncacheable`` (inputs that
    cannot be encoded, run without the cache) count what happened.
    """

    __slots__ = ("_session", "_entries", "_engines", "max_entries", "hits", "misses",
                 "uncacheable")

    def __init__(self, session, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._session = session
        self._entries: OrderedDict = OrderedDict()  # digest -> (encoding, result)
        self._engines: dict = {}  # id -> engine of every engine in a key
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.uncacheable = 0

    # -- RESTAlchemy entry points --------------------------------------------

    def get_all(self, engine, table, filters, fallback, limit=None, order_by=None, locked=False):
        """``fallback(filters=, session=, limit=, order_by=, locked=)``, cached."""
        slot = None
        if not locked:
            found, slot = self._find(("get_all", id(engine), _table_name(table), filters, limit,
                                      order_by))
            if found is not _MISS:
                return found
        result = fallback(filters=filters, session=self._session, limit=limit,
                          order_by=order_by, locked=locked)
        if slot is not None:
            self._store(slot, result, engine)
        return result

    def query(self, engine, table, where_conditions, where_values, fallback, limit=None,
              order_by=None, locked=False):
        """``fallback(where_conditions=, where_values=, session=, limit=,
        order_by=, locked=)``, cached."""
        slot = None
        if not locked and not _LOCKING.search(where_conditions or ""):
            found, slot = self._find(("query", id(engine), _table_name(table), where_conditions,
                                      where_values, limit, order_by))
            if found is not _MISS:
                return found
        result = fallback(where_conditions=where_conditions, where_values=where_values,
                          session=self._session, limit=limit, order_by=order_by, locked=locked)
        if slot is not None:
            self._store(slot, result, engine)
        return result

    # -- plain statements ----------------------------------------------------

    def fetchall(self, statement: str, params=None) -> list:
        """``session.execute(statement, params).fetchall()``, served from the
        cache when the same read already ran in this session."""
        slot = None
        if is_read_only(statement) and not _LOCKING.search(statement):
            found, slot = self._find(("sql", statement, params))
            if found is not _MISS:
                return found
        result = self._session.execute(statement, params).fetchall()
        if slot is not None:
            self._store(slot, result, None)
        return result

    # -- mechanics ----------------------------------------------------------

    def _find(self, key_value):
        """(cached result or _MISS, slot to store a result in or None when
        the input cannot be encoded)."""
        try:
            slot = _cache_key(key_value)
        except (TypeError, ValueError):
            self.uncacheable += 1
            return _MISS, None
        entry = self._entries.get(slot[0])
        if entry is not None and entry[0] == slot[1]:
            self._entries.move_to_end(slot[0])
            self.hits += 1
            return entry[1], slot
        self.misses += 1
        return _MISS, slot

    def _store(self, slot, result, engine) -> None:
        digest, encoding = slot
        if engine is not None:
            # id(engine) is in the key: hold the engine so its id cannot be
            # reused by another object while the entry lives.
            self._engines[id(engine)] = engine
        entries = self._entries
        # A digest shared by two different encodings (never seen for
        # xxh3-128) just replaces the older entry: _find compares encodings.
        entries[digest] = (encoding, result)
        entries.move_to_end(digest)
        if len(entries) > self.max_entries:
            entries.popitem(last=False)

    def _on_statement(self, statement: str) -> None:
        if not is_read_only(statement):
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


def _table_name(table):
    if type(table) is str:
        return table
    name = getattr(table, "name", None)
    return name if type(name) is str else repr(table)
