"""Process-wide event counters the session layer bumps; ``fastsess.monitoring`` reads them.

Each counter is an ``itertools.count``: ``next()`` on it is one C call, so a
bump costs about as much as ``x += 1`` and, unlike ``+=`` on a shared int, it
never loses an increment when two threads bump at once.  The value is read
from the counter's repr (``count(5)``), which is stable across Python
versions.  Counters only grow; ``reset_session_stats`` keeps baselines.
"""

from __future__ import annotations

from itertools import count

#: Sessions whose lifetime began: created, or a closed one used again.
sessions_opened = count()
#: Sessions whose lifetime ended: ``close()``, or collected without it.
sessions_closed = count()
#: Transactions with work in them that ``Session.commit()`` committed.
commits = count()
#: Transactions with work in them that ``Session.rollback()`` ended.
rollbacks = count()
#: Transactions that failed: a scope rolled back because its block raised,
#: a COMMIT raised, or a commit was refused because the transaction was aborted.
failures = count()
#: Units of work run again by the retry machinery.
retries = count()
#: Savepoints created by nested ``atomic`` blocks, and those rolled back to.
savepoints = count()
savepoint_rollbacks = count()

NAMES = ("sessions_opened", "sessions_closed", "commits", "rollbacks", "failures", "retries",
         "savepoints", "savepoint_rollbacks")


def value(counter) -> int:
    """How many times ``counter`` was bumped."""
    text = repr(counter)  # "count(N)"
    return int(text[6:-1])


def snapshot() -> dict:
    """Every counter's value by name."""
    g = globals()
    return {name: value(g[name]) for name in NAMES}
