"""``fastsess bench --callgrind``: the session cycle's client CPU instructions, counted by valgrind.

Wall-time ratios on a VM move with its noise; instruction counts do not.  For
the raw driver's loop and fastsess (and their async twins), child processes
run the bench's own session-cycle code (``floor_impl``, ``session_impl``,
``afloor_impl``, ``AsyncFastsessStack``) on real connections under
``valgrind --tool=callgrind --callgrind-out-file=/dev/null``.  Every child
starts, connects each counted stack and runs one warm-up cycle on it alike;
then one child runs no further cycle, and one per stack runs N cycles of
that stack.  The difference of a stack's child's "Collected" total and the
idle child's, over N, is what one cycle costs the client; the server's work
and the time spent waiting are not in it.  (``benchmarks/cycle_cost.py``
counts the same way on a stub driver.)

The child is this module: ``python -m fastsess.bench.callgrind STACK=N ...``, the
database's URL in ``FASTSESS_BENCH_CALLGRIND_URL``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

from .base import ALL_STACKS

# (floor, stack) pairs counted, and the stack keys (--stacks) that ask for each.
PAIRS = (("raw", "fastsess"), ("araw", "afastsess"))
ASKED_BY = {"fastsess": ("fastsess", "pure"), "afastsess": ("afastsess",)}
NOT_RUN = ("not run: valgrind is not on PATH (install it, e.g. apt-get install valgrind, to count "
           "the session cycle's instructions)")
URL_VARIABLE = "FASTSESS_BENCH_CALLGRIND_URL"  # the child's database
TIMEOUT = 900  # seconds for one child: Python runs some 50 times slower under callgrind
_COLLECTED = re.compile(r"^==\d+== Collected\s*:\s*([\d,]+)\s*$", re.M)


def find_valgrind() -> str | None:
    return shutil.which("valgrind")


def collected(stderr: str) -> int:
    """The "Collected" total of valgrind's summary (on stderr)."""
    found = _COLLECTED.findall(stderr)
    if not found:
        raise ValueError("no 'Collected' total in valgrind's output")
    return int(found[-1].replace(",", ""))


def _count(valgrind: str, url: str, cycles: dict) -> tuple:
    """(Collected total, kernels) of one child running ``cycles[stack]`` cycles of each stack."""
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               "-m", "fastsess.bench.callgrind"] + [f"{k}={n}" for k, n in cycles.items()]
    # A fixed hash seed: dict and set layouts, and so the counts, repeat run to run.
    # The URL goes in the environment, where a password is not on show in ps.
    env = dict(os.environ, PYTHONHASHSEED="0", **{URL_VARIABLE: url})
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("==")]
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")
    return collected(proc.stderr), json.loads(proc.stdout.splitlines()[-1])["kernels"]


def _name(key: str, kernels: str) -> str:
    name = ALL_STACKS[key]
    # A process with FASTSESS_PURE_PYTHON=1 hands it to its children: say so.
    return f"{name} (pure twin)" if key in ("fastsess", "afastsess") and kernels == "python" else name


def measure(dialect: str, url: str, cycles: int, stack_keys, valgrind: str, progress) -> dict:
    """Instructions per cycle of each pair ``stack_keys`` asks for, on one database:
    {"entries": [{key, name, floor, kernels, collected: [idle, with N cycles], per_cycle}],
    "failed": {name: reason}, "skipped": {name: reason}}."""
    keys = [k for floor, stack in PAIRS if any(s in stack_keys for s in ASKED_BY[stack])
            for k in (floor, stack)]
    skipped = {}
    if dialect == "mysql" and importlib.util.find_spec("asyncmy") is None:
        for key in ("araw", "afastsess"):
            if key in keys:
                keys.remove(key)
                skipped[ALL_STACKS[key]] = "not run: asyncmy (the async driver) is not installed"
    if not keys:
        return {"entries": [], "failed": {}, "skipped": skipped}
    runs = [None] + keys  # the idle child, then one per stack
    progress.note(f"{dialect}: counting instructions per session cycle under callgrind "
                  f"({', '.join(ALL_STACKS[k] for k in keys)}; {len(runs)} runs)")
    results = {}
    # All children at once: the counts do not depend on the machine's load.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {run: pool.submit(_count, valgrind, url,
                                    {k: cycles if k == run else 0 for k in keys})
                   for run in runs}
        for run, future in futures.items():
            try:
                results[run] = future.result()
            except Exception as e:  # noqa: BLE001 - reported with the stack
                results[run] = e
    entries, failed = [], {}
    idle = results[None]
    for key in keys:
        problem = next((r for r in (idle, results[key]) if isinstance(r, Exception)), None)
        if problem is not None:
            failed[ALL_STACKS[key]] = f"failed under callgrind: {type(problem).__name__}: {problem}"
            continue
        total, kernels = results[key]
        floor = next(f for f, s in PAIRS if key in (f, s))
        entries.append({"key": key, "name": _name(key, kernels), "floor": floor, "kernels": kernels,
                        "collected": [idle[0], total], "per_cycle": (total - idle[0]) / cycles})
    return {"entries": entries, "failed": failed, "skipped": skipped}


# -- the child -------------------------------------------------------------------


class _Cycles:
    """What the session-cycle code reads of a ``Workload``, without its tables."""

    def __init__(self, url, cycles):
        from ..url import DatabaseURL

        self.url = url
        self.dialect = DatabaseURL.parse(url).dialect
        self.size = {"cycle": cycles, "acycle": cycles}
        self.sql = {}
        self.loop = asyncio.new_event_loop()

    def run_async(self, coroutine):
        return self.loop.run_until_complete(coroutine)


def child(url: str, cycles: dict) -> str:
    """Connect each stack of ``cycles`` and run one warm-up cycle on it, then
    ``cycles[stack]`` cycles of each; returns the kernels fastsess ran on."""
    import fastsess

    from .aio import AsyncFastsessStack, afloor_impl
    from .base import session_impl
    from .connect import raw_connect, raw_connect_async
    from .scenarios import floor_impl

    w = _Cycles(url, 1)
    makers, closing = {}, []
    for stack in cycles:
        if stack == "raw":
            conn = raw_connect(url)
            closing.append(conn.close)
            makers[stack] = lambda conn=conn: floor_impl("cycle", w, lambda: conn)
        elif stack == "fastsess":
            engine = fastsess.create_engine(url, max_size=1)
            closing.append(engine.close)
            makers[stack] = lambda engine=engine: session_impl("cycle", engine, w)
        elif stack == "araw":
            aconn = w.run_async(raw_connect_async(url))
            closing.append(lambda aconn=aconn: w.run_async(
                aconn.close() if w.dialect == "postgresql" else aconn.ensure_closed()))
            makers[stack] = lambda aconn=aconn: afloor_impl("acycle", w, lambda: aconn)
        elif stack == "afastsess":
            astack = AsyncFastsessStack(w)
            closing.append(astack.close)
            makers[stack] = lambda astack=astack: astack.impl("acycle")
        else:
            raise ValueError(f"unknown stack {stack!r}")
    for make in makers.values():
        make().run()  # the warm-up every child does (first statements, lazy imports)
    for stack, n in cycles.items():
        if n:
            w.size = {"cycle": n, "acycle": n}
            makers[stack]().run()
    for close in closing:
        close()
    w.loop.close()
    return fastsess.__impl__


def main(argv=None) -> int:
    pairs = sys.argv[1:] if argv is None else argv
    cycles = {key: int(n) for key, n in (pair.split("=") for pair in pairs)}
    print(json.dumps({"kernels": child(os.environ[URL_VARIABLE], cycles)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
