"""The ``fastsess`` command line: ``fastsess bench [options]`` (also ``python -m fastsess``)."""

from __future__ import annotations

import sys

USAGE = """\
usage: fastsess <command> [options]

commands:
  bench   compare fastsess with RESTAlchemy, SQLAlchemy Core and the raw drivers
          on the local PostgreSQL and MySQL servers (ratios measured side by side);
          'fastsess bench --quick' is a smoke run in seconds

'fastsess bench --help' lists the options."""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "bench":
        from .bench import main as bench_main

        try:
            return bench_main(argv[1:])
        except KeyboardInterrupt:
            print("\nfastsess bench: interrupted", file=sys.stderr)
            return 130
    print(f"fastsess: unknown command {argv[0]!r}; try 'fastsess bench'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
