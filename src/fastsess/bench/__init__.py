"""``fastsess bench``: fastsess against RESTAlchemy, SQLAlchemy Core and the raw drivers, as ratios.

What runs
    Seven sync end-to-end scenarios (``scenarios``) on PostgreSQL and on
    MySQL/MariaDB: fetch 10k rows as dicts, batch insert 10k rows,
    RESTAlchemy model insert (``batch_insert`` of 10k models), the session
    cycle (checkout, SELECT 1, commit, close) x2,000, point select by key
    x5,000 in one session, query-cache hit x5,000, and a RESTAlchemy request
    mix (list a page, get one by key, create one) x100.  Each is written once
    per stack (``stacks``): the raw driver (the floor: psycopg tuple rows and
    COPY, mysqlclient's cursor and executemany), fastsess on its compiled
    kernels, fastsess on its pure-Python twin, RESTAlchemy 16 as shipped,
    RESTAlchemy on fastsess (``fastsess.restalchemy``), and SQLAlchemy 2 Core.
    A stack that is not installed, or a scenario that does not apply to it
    (RESTAlchemy's figures for inserting are its models'), is skipped with a
    note.  Three async scenarios (``aio``) follow: the session cycle x2,000,
    point select x5,000 and fetch 10k rows, with psycopg's
    ``AsyncConnection`` and asyncmy as the floor, against fastsess async,
    SQLAlchemy async (on the same two drivers) and asyncpg (PostgreSQL).
    Their batches run on one event loop kept for the run, timed as
    ``loop.run_until_complete(batch)``.

The rows (issue 13)
    Every table holds a realistic row, the model of a typical RESTAlchemy
    service: a UUID key (PostgreSQL ``uuid``, MySQL ``CHAR(36)``), an int,
    non-ASCII text (accents, CJK, emoji), a UTC timestamp (``timestamptz``,
    ``DATETIME(6)`` holding UTC), a boolean, a float, a nullable enum-ish
    string (NULL in one row of four) and a JSON payload (``jsonb``,
    MariaDB's ``JSON``).  Each stack sends what its users send: dicts to
    fastsess and SQLAlchemy, ``Jsonb`` to psycopg's COPY, ``json.dumps`` text
    to mysqlclient's executemany, RESTAlchemy models (its JSON-fields mixin
    on MySQL); aware datetimes.  The check before timing compares rows in one
    form (``Workload.canonical``): keys as text, payloads decoded where the
    stack's driver gives JSON text (every MySQL driver, asyncpg) and only
    there, timestamps as instants; an inserted table by a digest of its
    values, not of the text a stack sent.

How it is measured (``runner``)
    Every entry of a scenario runs once untimed first, and its result must
    equal the floor's (rows in one form, the inserted table's digest, ...)
    or it is dropped with a note and the run fails.  Then rounds: each entry
    once per round, the order rotated every round (A B C, B C A, ...), so a
    machine that slows down slows everyone down alike.  ``prepare``/``finish``
    work (truncating, priming a cache, borrowing a connection) is untimed, and
    a ``gc.collect()`` precedes each timed run.  The table reports medians.

The same-connection rule, and why
    On a small VM a loopback connection is either fast or 3-5x slower for its
    whole life (where its server process lands relative to the client), which
    is more than the client-side differences measured here.  Comparing two
    stacks on two connections measures that, not the stacks.  So every pool
    in the run holds exactly one connection, and the floor is run again on
    each stack's own connection, borrowed from that stack's own pool
    (``Engine.get_connection``, RESTAlchemy's ``engine.get_connection``,
    SQLAlchemy's ``engine.raw_connection``), in the same rounds.  A stack's
    "x floor" is its median over the median of the floor on its connection,
    and "vs RA" divides two such ratios, so the connection's speed cancels out
    of both.  fastsess runs on the floor's own connection.
    Rotating many connections instead would only average the two speeds, and
    with a handful of connections the average is left to chance (one more
    slow connection on one side moves a ratio by more than the effects
    measured); pairing removes the connection from the comparison at the cost
    of one extra floor run per stack and round.  Where the floor cannot run
    on a stack's connection -- RESTAlchemy on MySQL speaks mysql-connector,
    not mysqlclient -- the stack is compared with the floor on fastsess's
    connection and marked with a dagger.  The query-cache scenario never
    reaches the server, so it is not paired.

The pure twin in the same process (``twin``)
    fastsess picks its kernels once, at import, and binds them into its
    modules and classes (``SessionQueryCache`` derives from a kernel class),
    so they cannot be swapped afterwards without missing some.  Nor is a
    subprocess needed: ``twin.twin_package()`` imports a second copy of the
    package from the same files under another name with
    ``FASTSESS_PURE_PYTHON=1`` -- what a pure-Python process runs -- and the
    twin stack uses that copy's engine, in the same interleaved rounds, with
    its floor on its own connection like any other stack.  No core module is
    patched.  A process started with ``FASTSESS_PURE_PYTHON=1`` runs the twin
    only (on fastsess itself) and notes that the compiled stack did not run.

RESTAlchemy
    Its ORM always reads the engine factory's "default" engine: each
    RESTAlchemy stack builds its own named engine once (stock: psycopg_pool /
    mysql-connector pools of one; on fastsess: built while
    ``fastsess.restalchemy.install()`` is active) and is made the default for
    its own runs only.  ``install()`` is active during the RESTAlchemy-on-
    fastsess runs and not during the stock ones.

Instructions per session cycle (``callgrind``, ``--callgrind``)
    Wall ratios move with this VM's noise.  With ``--callgrind`` and valgrind
    on PATH, the bench also counts the client's CPU instructions per session
    cycle -- the raw driver's loop and fastsess, sync and async, on real
    connections -- in child processes under callgrind (one running no
    cycles, one per stack running N), and prints them beside the cycle
    scenarios' wall ratios; without valgrind a note says so.

Output (``report``, ``chart``)
    A progress bar on stderr; the table on stdout; ``--json FILE`` with
    every round's raw times (``scenarios[].entries``), the computed summary
    and the instruction counts (``callgrind``); ``--chart FILE.png``
    (matplotlib).
"""

from __future__ import annotations

from .cli import main
from .connect import DEFAULT_URLS, HOW_TO_START, raw_connect
from .runner import run

# benchmarks/ import it under its old name.
_raw_connect = raw_connect

__all__ = ["DEFAULT_URLS", "HOW_TO_START", "main", "raw_connect", "run"]
