"""Instructions per session cycle on a stub driver, for ``valgrind --tool=callgrind``.

The stub connection answers every call at once (no socket, no server), so
what is counted is fastsess's own client-side work per cycle: checkout, one
``SELECT``, its rows as dicts, commit, close — through ``session_manager``
or another scope (``--scope``).  Run it with ``--n 0`` and with ``--n N``
and divide the difference of the two totals by N:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/cycle_cost.py --n 20000 --scope session_manager
"""

from __future__ import annotations

import argparse

import fastsess
from fastsess.drivers.base import DriverAdapter
from fastsess.engine import Engine


class _Cursor:
    description = (("one",),)
    rowcount = 1

    def execute(self, statement, params=None):
        pass

    def fetchall(self):
        return [(1,)]

    def close(self):
        pass


class _Connection:
    def cursor(self):
        return _Cursor()

    def commit(self):
        pass

    def rollback(self):
        pass

    def close(self):
        pass


class StubAdapter(DriverAdapter):
    dialect = "postgresql"
    Error = ()  # nothing to catch: the stub never fails

    def connect(self):
        return _Connection()

    def usable(self, raw):
        return True

    def reset(self, raw, in_transaction):
        return True

    def translate(self, exc, connecting=False):  # pragma: no cover - never called
        raise exc


class StubEngine(Engine):
    def _make_adapter(self, url, connect_args, readonly):
        return StubAdapter(url, connect_args, readonly)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--scope", default="session_manager",
                        choices=["session_manager", "session_scope", "with_session", "atomic"])
    args = parser.parse_args()
    engine = StubEngine("postgresql://stub@127.0.0.1/stub", max_size=1)

    if args.scope == "session_manager":
        def cycle():
            with engine.session_manager() as s:
                return s.execute("SELECT 1 AS one").fetchall()
    elif args.scope == "session_scope":
        def cycle():
            with fastsess.session_scope(engine) as s:
                return s.execute("SELECT 1 AS one").fetchall()
    elif args.scope == "with_session":
        @fastsess.with_session(using=engine)
        def cycle(session):
            return session.execute("SELECT 1 AS one").fetchall()
    else:
        @fastsess.atomic(using=engine)
        def cycle():
            return fastsess.current_session(engine).execute("SELECT 1 AS one").fetchall()

    assert cycle() == [{"one": 1}]
    for _ in range(args.n):
        cycle()
    engine.close()


if __name__ == "__main__":
    main()
