"""What every stack of the bench shares: the stack interface, its names, and the
scenarios RESTAlchemy's engines and fastsess's run through the same code.

Apart from ``stacks`` so that the RESTAlchemy stacks (imported only when
asked for) and the others both build on it, and imports run one way.
"""

from __future__ import annotations

import contextlib
from importlib import metadata

from .connect import is_floor_connection
from .scenarios import Impl, Workload, values

# key -> name shown in the table, in table order: the sync stacks (what
# benchmarks/test_bench_scenarios.py runs), the async ones, and all of them.
STACKS = {
    "raw": "raw driver",
    "fastsess": "fastsess",
    "pure": "fastsess pure",
    "ra": "RESTAlchemy",
    "ra-fastsess": "RESTAlchemy on fastsess",
    "sqlalchemy": "SQLAlchemy Core",
}
ASYNC_STACKS = {
    "araw": "raw async driver",
    "afastsess": "fastsess async",
    "asqlalchemy": "SQLAlchemy async",
    "asyncpg": "asyncpg",
}
ALL_STACKS = {**STACKS, **ASYNC_STACKS}
# A scenario's floor (``Scenario.floor``) -> the stacks measured against it.
# A stack of the other family is left out of a scenario's block silently.
FAMILIES = {
    "raw": ("fastsess", "pure", "ra", "ra-fastsess", "sqlalchemy"),
    "araw": ("afastsess", "asqlalchemy", "asyncpg"),
}


class Unavailable(Exception):
    """A stack that cannot run here; the message says why."""


class NotApplicable(Unavailable):
    """A stack that does not apply to this database (asyncpg on MySQL)."""


def version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class Stack:
    """One way of doing the scenarios.  ``impl(key)`` gives its ``Impl`` of a scenario."""

    key = ""
    #: True when the stack runs on the floor's own engine (no floor of its own needed).
    on_floor_engine = False
    #: True for the async stacks, whose floor is the async driver's.
    asynchronous = False

    def __init__(self, workload: Workload):
        self.w = workload

    @property
    def name(self) -> str:
        return ALL_STACKS[self.key]

    def active(self):
        """Entered (untimed) around each of the stack's runs."""
        return contextlib.nullcontext()

    def pairable(self) -> bool:
        """Whether ``borrow()`` lends a connection of the floor's driver."""
        with self.borrow() as conn:
            return is_floor_connection(self.w.dialect, conn, self.asynchronous)

    def borrow(self):  # pragma: no cover - abstract
        """A context giving the stack's own (only) driver connection."""
        raise NotImplementedError

    def impl(self, key: str) -> Impl:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass


def session_impl(key: str, engine, w: Workload) -> Impl:
    """The fetch, cycle and point scenarios through ``engine.session_manager()``:
    the same code for fastsess and for RESTAlchemy's engines.  Their rows'
    payload comes as the floor's driver gives it (``Workload.canonical``):
    decoded by psycopg; JSON text from mysqlclient and mysql-connector alike."""
    sql, n = w.sql, w.size[key]
    if key == "fetch":
        statement = sql["fetch"]

        def fetch():
            with engine.session_manager() as s:
                return s.execute(statement).fetchall()

        return Impl(fetch, outcome=w.rows_outcome())
    if key == "cycle":
        def cycle():
            manager = engine.session_manager
            for _ in range(n):
                with manager() as s:
                    rows = s.execute("SELECT 1").fetchall()
            return n, rows

        return Impl(cycle, outcome=lambda r: (r[0], values(r[1])))
    ids, statement = w.point_ids, sql["point"]

    def point():
        out = []
        with engine.session_manager() as s:
            execute = s.execute
            for i in ids:
                out.append(execute(statement, (i,)).fetchone())
        return out

    return Impl(point, outcome=w.rows_outcome())
