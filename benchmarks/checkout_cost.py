"""Instructions per pool checkout + checkin, for ``valgrind --tool=callgrind``.

Runs ``--n`` checkout/checkin pairs on one real connection (no statement).
Run it twice, with ``--n 0`` and with ``--n N``, and divide the difference of
the two callgrind totals by N: start-up cancels out and what is left is the
client-side work of one pair.  Instruction counts do not move with the VM's
noise; the system call of the liveness check is not counted (callgrind sees
user space only), so its wall cost comes from ``benchmarks/test_bench_pool.py``.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/checkout_cost.py --n 20000 postgresql
"""

from __future__ import annotations

import argparse
import os

import fastsess

URLS = {
    "postgresql": os.environ.get("FASTSESS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("FASTSESS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dialect", choices=sorted(URLS))
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    engine = fastsess.create_engine(URLS[args.dialect], max_size=1)
    pool = engine._pool
    pool.checkin(pool.checkout(), False)  # the connection is open and idle before the loop
    checkout, checkin = pool.checkout, pool.checkin
    for _ in range(args.n):
        checkin(checkout(), False)
    engine.close()


if __name__ == "__main__":
    main()
