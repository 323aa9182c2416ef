"""``fastsess bench``: the command line."""

from __future__ import annotations

import argparse
import os
import sys

from .base import ALL_STACKS
from .connect import DEFAULT_URLS
from .scenarios import ALL_SCENARIOS

FULL_ROUNDS = 15
QUICK_ROUNDS = 3
# --callgrind's cycles per counted run.
FULL_CYCLES = 2_000
QUICK_CYCLES = 300


def _keys(known, what):
    def parse(text):
        keys = [k.strip() for k in text.split(",") if k.strip()]
        unknown = [k for k in keys if k not in known]
        if unknown or not keys:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
        return keys

    return parse


def _writable(path) -> str:
    """Why ``path`` cannot be written (empty when it can): checked before a
    long run rather than after it.  Creates the parent directory."""
    if not path:
        return ""
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        if os.path.isdir(path):
            return "it is a directory"
        if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            return "permission denied"
    except OSError as e:
        return str(e)
    return ""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastsess bench",
        description="Compare fastsess with RESTAlchemy, SQLAlchemy Core and the raw drivers, side by "
                    "side in one process, on PostgreSQL and MySQL/MariaDB; the async scenarios (a...) "
                    "compare fastsess async with SQLAlchemy async, asyncpg and the raw async drivers. "
                    "Prints a progress bar on stderr and the table of medians and ratios on stdout.",
        epilog=f"scenarios: {', '.join(ALL_SCENARIOS)}; stacks: "
               + ", ".join(f"{k} ({v})" for k, v in ALL_STACKS.items())
               + ". Environment: FASTSESS_BENCH_PG_URL, FASTSESS_BENCH_MYSQL_URL.")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run in seconds: small sizes, {QUICK_ROUNDS} rounds")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"timed rounds per scenario (default {FULL_ROUNDS}, {QUICK_ROUNDS} with --quick)")
    p.add_argument("--only", choices=["postgresql", "mysql"], help="one database only")
    p.add_argument("--pg-url", default=DEFAULT_URLS["postgresql"], metavar="URL",
                   help="PostgreSQL server (default: %(default)s)")
    p.add_argument("--mysql-url", default=DEFAULT_URLS["mysql"], metavar="URL",
                   help="MySQL/MariaDB server (default: %(default)s)")
    p.add_argument("--scenarios", type=_keys(list(ALL_SCENARIOS), "scenario"), metavar="A,B",
                   help="run only these scenarios")
    p.add_argument("--stacks", type=_keys(list(ALL_STACKS), "stack"), metavar="A,B",
                   help="run only these stacks (the raw drivers, raw and araw, always run)")
    p.add_argument("--json", metavar="FILE", help="write every round's raw times and the summary")
    p.add_argument("--chart", metavar="FILE.png", help="draw the ratios as a bar chart (needs matplotlib)")
    p.add_argument("--from-json", metavar="FILE",
                   help="run nothing: print the table (and draw --chart) of a saved --json file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--callgrind", action="store_true",
                   help="also count the session cycle's client CPU instructions (raw driver loop "
                        "and fastsess, sync and async) under valgrind's callgrind; a note when "
                        "valgrind is not installed")
    p.add_argument("--callgrind-cycles", type=int, default=None, metavar="N",
                   help=f"cycles per counted run (default {FULL_CYCLES}, {QUICK_CYCLES} with --quick)")
    return p


def main(argv=None) -> int:
    from . import report
    from .runner import Progress, run

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        print("fastsess bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.callgrind_cycles is not None and args.callgrind_cycles < 1:
        print("fastsess bench: --callgrind-cycles must be at least 1", file=sys.stderr)
        return 2
    if args.chart:
        from .chart import ChartUnavailable, require_matplotlib

        try:
            require_matplotlib()  # before a long run, not after it
        except ChartUnavailable as e:
            print(f"fastsess bench: {e}", file=sys.stderr)
            return 2

    for path in (args.json if not args.from_json else None, args.chart):
        problem = _writable(path)
        if problem:
            print(f"fastsess bench: cannot write {path}: {problem}", file=sys.stderr)
            return 2

    if args.from_json:
        try:
            doc = report.read_json(args.from_json)
        except (OSError, ValueError) as e:
            print(f"fastsess bench: cannot read {args.from_json}: {e}", file=sys.stderr)
            return 2
    else:
        rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
        urls = {"postgresql": args.pg_url, "mysql": args.mysql_url}
        if args.only:
            urls = {args.only: urls[args.only]}
        stacks = ["raw"] + [k for k in (args.stacks or ALL_STACKS) if k != "raw"]
        progress = Progress(not args.no_progress)
        from .stacks import versions

        v = versions()
        progress.note(f"fastsess {v['fastsess']} ({v['fastsess kernels']} kernels), Python "
                      f"{v['python']}: {rounds} interleaved rounds per scenario"
                      f"{', quick sizes' if args.quick else ''}")
        cycles = None
        if args.callgrind:
            cycles = args.callgrind_cycles or (QUICK_CYCLES if args.quick else FULL_CYCLES)
        doc = run(urls, args.quick, rounds, stacks, args.scenarios, progress, ["bench"] + argv,
                  callgrind_cycles=cycles)

    print(report.header(doc))
    print()
    print(report.format_table(doc), end="")
    status = 0
    if args.json and not args.from_json:
        report.write_json(doc, args.json)
    if args.chart:
        from .chart import draw

        try:
            draw(doc, args.chart)
        except ValueError as e:
            print(f"fastsess bench: no chart: {e}", file=sys.stderr)
            status = 1
    problems = report.failures(doc)
    for line in problems:
        print(f"fastsess bench: FAILED: {line}", file=sys.stderr)
    if doc["unreachable"] or problems:
        status = 1
    return status
