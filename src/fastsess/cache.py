"""The per-session query cache (minimal for now: exact statement + params).

A hit returns the very object the first call returned.  Entries are keyed
by the statement text and a type-tagged copy of the parameters, so ``1``,
``True``, ``1.0`` and ``"1"`` never share an entry, and unhashable
parameters (lists, dicts) work.  Any write through the session, a rollback or
``close()`` empties the cache; locking reads are never cached.
"""

from __future__ import annotations

import re

# Statements that only read: anything else run through the session empties the cache.
_READ_ONLY = re.compile(r"\s*(\(\s*)*(SELECT|SHOW|EXPLAIN|DESCRIBE|DESC)\b", re.I)
_LOCKING = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b",
                      re.I)


def _tagged(value):
    """A hashable, type-tagged form of a parameter value."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_tagged(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((_tagged(k), _tagged(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_tagged(v) for v in value), key=repr)))
    return (type(value).__name__, value)


class SessionQueryCache:
    """Results of read queries within one session (see the module docstring)."""

    __slots__ = ("_session", "_entries", "hits", "misses")

    def __init__(self, session):
        self._session = session
        self._entries = {}
        self.hits = 0
        self.misses = 0

    def fetchall(self, statement: str, params=None) -> list:
        """``session.execute(statement, params).fetchall()``, served from the
        cache when the same read already ran in this session."""
        if _LOCKING.search(statement) or not _READ_ONLY.match(statement):
            return self._session.execute(statement, params).fetchall()
        key = (statement, _tagged(params))
        try:
            result = self._entries[key]
        except KeyError:
            self.misses += 1
            result = self._session.execute(statement, params).fetchall()
            self._entries[key] = result
            return result
        self.hits += 1
        return result

    def _on_statement(self, statement: str) -> None:
        if not _READ_ONLY.match(statement):
            self._entries.clear()

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
