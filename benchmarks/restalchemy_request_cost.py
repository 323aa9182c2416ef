"""One of RESTAlchemy's probe requests in a loop, for callgrind or cProfile.

The request is the perf probe's own (``restalchemy.tests.functional.perf``:
list a page of 50 of 200 rows, get one, create one) through its WSGI app.
Set-up and 200 warm-up requests run whatever N is, so under callgrind the
instructions of one request are (run with N - run with 0) / N:

    for n in 0 200; do DATABASE_URI=postgresql://postgres@127.0.0.1:5432/SCRATCH \\
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
      .venv/bin/python benchmarks/restalchemy_request_cost.py collection $n --install; done

``--install`` runs it on the drop-in; ``--cprofile`` prints the hot functions
of the N requests.  DATABASE_URI must name a PostgreSQL database the run may
use: the probe's table is made there and dropped at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("collection", "resource", "create"))
    parser.add_argument("n", type=int, help="requests to run after the warm-up")
    parser.add_argument("--install", action="store_true", help="fastsess.restalchemy.install()")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    if args.install:
        import fastsess.restalchemy

        fastsess.restalchemy.install()
    from restalchemy.tests.functional.perf import stacks

    url = os.environ["DATABASE_URI"]
    book = stacks.connect(url)
    try:
        stacks.seed(book, 200)
        stack = stacks.RestAlchemyStack(url, 50)
        stack.setup()
        stacks.check(stack, 50)
        ask = stacks.ASK[args.scenario]
        for _ in range(200):
            ask(stack)
        stacks.sweep(book)
        profile = cProfile.Profile() if args.cprofile else None
        if profile:
            profile.enable()
        for _ in range(args.n):
            ask(stack)
        if profile:
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        stack.teardown()
    finally:
        stacks.drop(book)
        book.close()


if __name__ == "__main__":
    main()
