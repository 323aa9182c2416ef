"""Fixtures and helpers of the fault-injection tests.

Tests on the shared servers (``url``, ``raw_connect`` from tests/conftest.py)
kill only backends their own engine opened, found through the session
itself (``backend_id``).  Tests that stop or crash a server use a private one
(``private_server``, see tests/servers.py), made once per test module and
dialect and removed after the module, also when a test fails.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback

import pytest

from .. import servers
from ..conftest import raw_query


def backend_id(session) -> int:
    """The server-side id of the connection ``session`` uses (checks one out)."""
    if session.engine.dialect_name == "postgresql":
        sql = "SELECT pg_backend_pid() AS id"
    else:
        sql = "SELECT CONNECTION_ID() AS id"
    return int(session.execute(sql).fetchone()["id"])


def stat(engine, name: str) -> int:
    """One counter of ``engine.pool_stats()``; a missing counter fails the
    test with a message saying so (rather than a bare KeyError)."""
    stats = engine.pool_stats()
    if name not in stats:
        pytest.fail(f"engine.pool_stats() has no {name!r} counter (it has: {', '.join(sorted(stats))})",
                    pytrace=False)
    return stats[name]


def alive_backends(admin, dialect: str, ids) -> set:
    """Which of the server-side connection ``ids`` the server still has."""
    ids = [int(i) for i in ids]
    if not ids:
        return set()
    marks = ", ".join(["%s"] * len(ids))
    if dialect == "postgresql":
        rows = raw_query(admin, f"SELECT pid FROM pg_stat_activity WHERE pid IN ({marks})", ids)
    else:
        rows = raw_query(admin, f"SELECT id FROM information_schema.processlist WHERE id IN ({marks})",
                         ids)
    return {int(r[0]) for r in rows}


def wait_statement_running(admin, dialect: str, bid: int, needle: str, timeout: float = 5.0) -> None:
    """Wait until backend ``bid`` is executing a statement containing ``needle``."""
    if dialect == "postgresql":
        probe = "SELECT query FROM pg_stat_activity WHERE pid = %s AND state = 'active'"
    else:
        probe = "SELECT info FROM information_schema.processlist WHERE id = %s AND command = 'Query'"
    deadline = time.monotonic() + timeout
    while True:
        rows = raw_query(admin, probe, (bid,))
        if rows and needle.lower() in str(rows[0][0] or "").lower():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"backend {bid} was not seen running {needle!r} within {timeout} s")
        time.sleep(0.01)


def run_in_child(body, timeout: float = 20.0):
    """Fork; the child runs ``body()`` and reports its JSON-able result
    through a pipe, then leaves with ``os._exit`` (no atexit handlers, no
    pytest teardown, no finalizers in the child).  Returns ``(exit code,
    report)``; ``report`` is ``{"result": ...}`` or ``{"error": ...,
    "traceback": ...}``.  A child that runs longer than ``timeout`` is killed
    (SIGALRM inside, SIGKILL from here as a last resort)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return from here
        code = 3
        try:
            os.close(r)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(int(timeout) + 1)
            try:
                report = {"result": body()}
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                report = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                code = 1
            data = json.dumps(report, default=repr).encode()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout + 5
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([r], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)  # our own child, and only it
        _, status = os.waitpid(pid, 0)
        pytest.fail(f"the forked child ran longer than {timeout} s and was killed")
    code = os.waitstatus_to_exitcode(status)
    try:
        report = json.loads(b"".join(chunks).decode()) if chunks else {"error": "no report"}
    except ValueError as e:
        report = {"error": f"unreadable report: {e}"}
    return code, report


@pytest.fixture(scope="module")
def private_servers():
    """``get(dialect)``: this module's private server of ``dialect``, made on
    first use.  All are closed (stopped, directory removed) after the module,
    also when a test failed."""
    made: dict = {}

    def get(dialect):
        if dialect not in made:
            reason = servers.missing_binaries(dialect)
            if reason:
                pytest.skip(reason)
            made[dialect] = servers.start_server(dialect)
        return made[dialect]

    try:
        yield get
    finally:
        for server in made.values():
            server.close()


@pytest.fixture
def private_server(dialect, private_servers):
    """A running private server of ``dialect`` (started again if an earlier
    test left it down)."""
    server = private_servers(dialect)
    if not server.running:
        server.start()
    return server
