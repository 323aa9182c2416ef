"""Interleaved rounds: warm-up and equality check first, then every entry once per round, order rotated."""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .aio import AsyncFastsessStack, RawAsyncLender, afloor_impl
from .base import ALL_STACKS, FAMILIES, NotApplicable, Unavailable
from .connect import connection_id, unreachable_message
from .scenarios import ALL_SCENARIOS, FLOORS, Impl, Workload, floor_impl
from .stacks import EngineLender, open_stack, versions

FLOOR = ALL_STACKS["raw"]  # the sync scenarios' floor; the async ones' is ALL_STACKS["araw"]
FORMAT = 1  # version of the JSON document


@dataclass(eq=False)
class Entry:
    """One timed thing in a scenario: a stack, or the floor on some stack's connection."""

    name: str  # shown, and the key of its rounds in the JSON
    impl: Impl
    active: Callable[[], Any] = contextlib.nullcontext
    floor: str = FLOOR  # the entry this one is compared with
    stack: str | None = None  # stack key, None for the floors of other stacks' connections
    same_connection: bool = True  # whether ``floor`` ran on this entry's own connection
    connection: Callable[[], Any] | None = None  # id of the connection a floor runs on
    times: list = field(default_factory=list)
    cpu: list = field(default_factory=list)
    connections: list = field(default_factory=list)


def paired_floor_name(stack_name: str, floor: str = FLOOR) -> str:
    return f"{floor} on {stack_name}'s connection"


def floor_entry(name, key, w, stack) -> Entry:
    """The floor of scenario ``key``, run on ``stack``'s own connection."""
    held = []
    make = afloor_impl if ALL_SCENARIOS[key].floor == "araw" else floor_impl

    @contextlib.contextmanager
    def active():
        with stack.borrow() as conn:
            held.append(conn)
            try:
                yield
            finally:
                held.pop()

    return Entry(name, make(key, w, lambda: held[-1]), active, floor=name,
                 connection=lambda: connection_id(w.dialect, held[-1]))


def build_entries(key, w, floor_stack, stacks, unavailable):
    """(entries in run order, stack rows for the report, skipped stack -> reason)."""
    scenario = ALL_SCENARIOS[key]
    not_for = dict(scenario.not_for)
    floor = ALL_STACKS[scenario.floor]
    entries = [floor_entry(floor, key, w, floor_stack)]
    entries[0].stack = scenario.floor
    rows = [{"key": scenario.floor, "name": floor, "floor": floor, "same_connection": True}]
    skipped = {}
    for skey in FAMILIES[scenario.floor]:
        stack_name = ALL_STACKS[skey]
        if skey in not_for:
            skipped[stack_name] = f"not applicable: {not_for[skey]}"
            continue
        if skey in unavailable:
            skipped[stack_name] = unavailable[skey]
            continue
        stack = stacks.get(skey)
        if stack is None:  # not asked for (--stacks)
            continue
        try:
            impl = stack.impl(key)
        except Unavailable as e:
            skipped[stack_name] = str(e)
            continue
        entry = Entry(stack_name, impl, stack.active, floor=floor, stack=skey)
        extra = []
        if not scenario.paired or stack.on_floor_engine:
            pass  # the floor's own connection: the same one for on_floor_engine stacks
        elif stack.pairable():
            paired = floor_entry(paired_floor_name(stack_name, floor), key, w, stack)
            entry.floor = paired.name
            extra.append(paired)
        else:
            entry.same_connection = False
        entries.append(entry)
        entries.extend(extra)
        rows.append({"key": skey, "name": stack_name, "floor": entry.floor,
                     "same_connection": entry.same_connection})
    return entries, rows, skipped


def _call(entry: Entry, timed: bool):
    """One run of ``entry``: (wall s, cpu s) when timed, else its outcome."""
    impl = entry.impl
    with entry.active():
        try:
            if impl.prepare is not None:
                impl.prepare()
            if timed:
                gc.collect()
                cpu0 = time.process_time()
                t0 = time.perf_counter()
                impl.run()
                t1 = time.perf_counter()
                cpu1 = time.process_time()
                result = (t1 - t0, cpu1 - cpu0)
            else:
                result = impl.outcome(impl.run())
            if entry.connection is not None:
                cid = entry.connection()
                if cid not in entry.connections:
                    entry.connections.append(cid)
        finally:
            if impl.finish is not None:
                impl.finish()
    return result


def check_run(entry: Entry):
    """One untimed run of ``entry``; returns what its check compares with the floor's."""
    return _call(entry, timed=False)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _difference(got, expected) -> str:
    """Where ``got`` first differs from ``expected``, briefly."""
    if isinstance(got, (list, tuple)) and isinstance(expected, (list, tuple)):
        for i, (a, b) in enumerate(zip(got, expected)):
            if a != b:
                return f"item {i}: {a!r:.120} instead of {b!r:.120}"
        if len(got) != len(expected):
            return f"{len(got)} items instead of {len(expected)}"
    return f"{got!r:.160} instead of {expected!r:.160}"


def _drop(entries, rows, failed, name, reason, floor=FLOOR):
    """Remove a failed entry with what cannot be compared without it: a
    stack goes with the floor run on its connection and the other way round;
    when the floor's own run (``floor``) fails, the whole scenario goes."""
    entry = next(e for e in entries if e.name == name)
    if name == floor:
        gone = {e.name for e in entries}
    elif entry.stack is None:  # a floor on some stack's connection
        gone = {name} | {e.name for e in entries if e.floor == name}
        reason = f"the {floor} on its connection {reason}"
    else:
        gone = {name} | ({entry.floor} if entry.floor != floor else set())
    for e in entries:
        if e.name in gone and e.stack is not None:
            failed.setdefault(e.name, reason)
    entries[:] = [e for e in entries if e.name not in gone]
    rows[:] = [r for r in rows if r["name"] not in gone]


def _floorless(key, reason, stacks, unavailable) -> tuple:
    """(entries, rows, skipped) of a scenario whose floor cannot run here:
    nothing is timed, and every stack it would have run says why."""
    scenario = ALL_SCENARIOS[key]
    skipped = {ALL_STACKS[scenario.floor]: reason}
    for skey in FAMILIES[scenario.floor]:
        if skey in stacks or skey in unavailable:
            skipped[ALL_STACKS[skey]] = unavailable.get(skey) or f"not run: no floor ({reason})"
    return [], [], skipped


def run_scenario(key, w, floor_stack, stacks, unavailable, quick, rounds, progress) -> dict:
    """``floor_stack`` lends the floor's connection; a string instead says
    why the floor cannot run (the scenario is then skipped, not failed)."""
    scenario = ALL_SCENARIOS[key]
    floor = ALL_STACKS[scenario.floor]
    if isinstance(floor_stack, str):
        entries, rows, skipped = _floorless(key, floor_stack, stacks, unavailable)
    else:
        entries, rows, skipped = build_entries(key, w, floor_stack, stacks, unavailable)
    failed = {}
    title = scenario.title(quick)
    started = time.perf_counter()
    progress.start(w.dialect, title, rounds + 1, len(entries))

    # Warm-up, untimed: every entry once, and its outcome must be the floor's.
    try:
        expected = check_run(entries[0]) if entries else None
    except Exception as e:  # noqa: BLE001 - reported, and the other scenarios still run
        failed[floor] = f"failed in the warm-up: {_describe(e)}"
        entries, rows = [], []
    for entry in list(entries[1:]):
        if all(entry is not e for e in entries):
            continue
        try:
            got = check_run(entry)
        except Exception as e:  # noqa: BLE001
            _drop(entries, rows, failed, entry.name, f"failed in the warm-up: {_describe(e)}", floor)
            continue
        if got != expected:
            _drop(entries, rows, failed, entry.name,
                  f"result differs from the {floor}'s: {_difference(got, expected)}", floor)
        progress.tick()
    progress.next_round()

    for r in range(rounds):
        n = len(entries)
        order = entries[r % n:] + entries[:r % n] if n else []
        for entry in order:
            if all(entry is not e for e in entries):  # dropped earlier in this round
                continue
            try:
                wall, cpu = _call(entry, timed=True)
            except Exception as e:  # noqa: BLE001
                _drop(entries, rows, failed, entry.name, f"failed in round {r + 1}: {_describe(e)}",
                      floor)
                continue
            entry.times.append(wall)
            entry.cpu.append(cpu)
            progress.tick()
        progress.next_round()
    seconds = time.perf_counter() - started
    progress.end(seconds, failed)
    if floor in failed or not entries:
        rows = []
    return {
        "database": w.dialect,
        "scenario": key,
        "title": title,
        "size": w.size[key],
        "ops": scenario.ops(quick),
        "unit": scenario.unit,
        "floor": floor,
        "floor_description": FLOORS[(key, w.dialect)],
        "reference": scenario.reference,
        "paired": scenario.paired,
        "stacks": rows,
        "entries": {e.name: {"times": e.times, "cpu": e.cpu,
                             **({"connections": e.connections} if e.connection else {})}
                    for e in entries},
        "skipped": skipped,
        "failed": failed,
        "seconds": round(seconds, 3),
    }


class Progress:
    """A progress bar on stderr (redrawn in place on a terminal, one line per scenario otherwise).

    ``enabled=False`` hides the bar; ``note()`` messages are always shown.
    """

    def __init__(self, enabled=True, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def start(self, database, title, total, per_round):
        """A scenario of ``total`` rounds (the warm-up included) of ``per_round`` runs."""
        self.label = f"{database:<11} {title:<34}"
        self.total = total
        self.per_round = max(per_round, 1)
        self.round = 0
        self.runs = 0
        self._draw()

    def tick(self):
        """One run done."""
        self.runs = min(self.runs + 1, self.per_round)
        self._draw()

    def next_round(self):
        self.round += 1
        self.runs = 0
        self._draw()

    def _draw(self):
        if self.tty:
            width = 30
            done = (self.round + self.runs / self.per_round) / max(self.total, 1)
            filled = min(int(width * done), width)
            bar = "#" * filled + "." * (width - filled)
            shown = "warm-up" if self.round == 0 else f"round {min(self.round, self.total - 1)}"
            self.stream.write(f"\r{self.label} [{bar}] {shown}/{self.total - 1}")
            self.stream.flush()

    def end(self, seconds, failed):
        if not self.enabled:
            return
        problems = f"  ({len(failed)} failed)" if failed else ""
        if self.tty:
            self.stream.write(f"\r{self.label} done in {seconds:.1f} s{problems}".ljust(90) + "\n")
        else:
            self.stream.write(f"{self.label} {self.total - 1} rounds in {seconds:.1f} s{problems}\n")
        self.stream.flush()

    def note(self, text):
        """A message that is not progress (shown with or without the bar)."""
        self.stream.write(text + "\n")
        self.stream.flush()


def _async_floor(w, stacks, opened):
    """What lends the async floor its connection: fastsess async's engine
    when it runs and can lend (then fastsess async runs on the floor's own
    connection, as fastsess does in the sync scenarios), else a connection
    of the bench's own.  A string when the async driver is missing."""
    fs = stacks.get("afastsess")
    if isinstance(fs, AsyncFastsessStack):
        fs.on_floor_engine = True
        return fs
    try:
        lender = RawAsyncLender(w)
    except Unavailable as e:
        return f"not run: {e}"
    opened.append(lender)
    return lender


def run_database(dialect, url, quick, rounds, stack_keys, scenario_keys, progress) -> dict:
    """Every scenario on one database.  Raises ConnectionError (with the
    how-to-start message) when the server cannot be reached."""
    import fastsess

    try:
        w = Workload(url, quick)
    except Exception as e:  # noqa: BLE001 - any driver error here means "cannot reach"
        raise ConnectionError(unreachable_message(dialect, url, e)) from None
    # Only the stacks of the scenarios asked for are opened (each holds a connection).
    floors = {ALL_SCENARIOS[k].floor for k in scenario_keys}
    wanted = [k for k in stack_keys if any(k in FAMILIES[f] for f in floors)]
    opened = []
    engine = None
    try:
        engine = fastsess.create_engine(url, max_size=1)
        stacks, unavailable = {}, {}
        for key in wanted:
            try:
                stacks[key] = open_stack(key, w, engine)
                opened.append(stacks[key])
            except NotApplicable as e:
                unavailable[key] = f"not applicable: {e}"
            except Unavailable as e:
                unavailable[key] = f"not run: {e}"
        # The sync floor borrows the connection of the engine fastsess runs on.
        floor_stacks = {"raw": EngineLender(w, engine)}
        if "araw" in floors:
            floor_stacks["araw"] = _async_floor(w, stacks, opened)
        results = [run_scenario(key, w, floor_stacks[ALL_SCENARIOS[key].floor], stacks, unavailable,
                                quick, rounds, progress)
                   for key in scenario_keys]
        return {"server": w.server, "url": str(fastsess.DatabaseURL.parse(url)), "scenarios": results,
                "unavailable": {ALL_STACKS[k]: v for k, v in unavailable.items()}}
    finally:
        for stack in reversed(opened):
            try:
                stack.close()
            except Exception as e:  # noqa: BLE001 - close what can be closed
                progress.note(f"{dialect}: closing {stack.name} failed: {_describe(e)}")
        if engine is not None:
            engine.close()
        w.close()


def run(urls: dict, quick: bool, rounds: int, stack_keys=None, scenario_keys=None,
        progress: Progress | None = None, argv=None, callgrind_cycles: int | None = None) -> dict:
    """Run the bench; returns the JSON document (see ``fastsess.bench.report``).
    ``callgrind_cycles``: also count the session cycle's instructions under
    valgrind (``fastsess.bench.callgrind``) with that many cycles."""
    progress = progress or Progress(False)
    stack_keys = list(stack_keys or ALL_STACKS)
    scenario_keys = list(scenario_keys or ALL_SCENARIOS)
    started = datetime.datetime.now(datetime.timezone.utc)
    doc = {
        "format": FORMAT,
        "command": argv,
        "started": started.isoformat(timespec="seconds"),
        "quick": quick,
        "rounds": rounds,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "versions": versions(),
        "databases": {},
        "unreachable": {},
        "scenarios": [],
        "callgrind": None,
    }
    valgrind = None
    if callgrind_cycles:
        # Imported here: the child runs this module as __main__ (python -m).
        from . import callgrind

        valgrind = callgrind.find_valgrind()
        doc["callgrind"] = {"cycles": callgrind_cycles, "valgrind": valgrind,
                            "note": None if valgrind else callgrind.NOT_RUN, "databases": {}}
        if not valgrind:
            progress.note(f"callgrind: {callgrind.NOT_RUN}")
    for dialect, url in urls.items():
        try:
            result = run_database(dialect, url, quick, rounds, stack_keys, scenario_keys, progress)
        except ConnectionError as e:
            doc["unreachable"][dialect] = str(e)
            progress.note(str(e))
            continue
        doc["databases"][dialect] = {"server": result["server"], "url": result["url"],
                                     "unavailable": result["unavailable"]}
        doc["scenarios"].extend(result["scenarios"])
        if valgrind:
            doc["callgrind"]["databases"][dialect] = callgrind.measure(
                dialect, url, callgrind_cycles, stack_keys, valgrind, progress)
    doc["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return doc
