"""The ``fastsess`` command line: ``fastsess bench [options]``."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: fastsess bench [--quick] [--only postgresql|mysql] [--pg-url URL] "
              "[--mysql-url URL] [--rounds N]\n\n"
              "  bench   compare fastsess with the raw drivers on the local servers")
        return 0 if argv else 2
    if argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    print(f"fastsess: unknown command {argv[0]!r}; try 'fastsess bench'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
