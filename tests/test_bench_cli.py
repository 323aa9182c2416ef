"""The ``fastsess bench`` command runs end to end and reports every stack."""

from __future__ import annotations

import statistics

from fastsess import bench
from fastsess.__main__ import main


def test_bench_quick_reports_every_stack(capsys, dialect, url):
    rows, failed = bench.collect({dialect: url}, quick=True, rounds=2, progress=False)
    assert failed == []
    by_scenario = {}
    for r in rows:
        by_scenario.setdefault(r.scenario, {})[r.stack] = r
    assert len(by_scenario) == 2
    for stacks in by_scenario.values():
        assert {"raw driver", "fastsess"} <= set(stacks)
        floor = stacks["raw driver"]
        assert floor.ratio == 1.0
        # psycopg_pool is measured against the raw driver on its own connection.
        if "psycopg_pool" in stacks:
            assert stacks["psycopg_pool"].floor_median == statistics.median(stacks["raw driver²"].times)
        for r in stacks.values():
            assert len(r.times) == 2 and all(t > 0 for t in r.times) and len(r.cpu) == 2
            assert r.ratio == statistics.median(r.times) / r.floor_median
    table = bench.format_table(rows).splitlines()
    assert len(table) == len(rows) + 1
    for r, line in zip(rows, table[1:]):
        assert line.startswith(r.database) and f" {r.stack} " in line
        assert line.split()[-3] == f"{r.ratio:.2f}"
        assert line.split()[-1] == f"{r.cpu_ratio:.2f}"


def test_bench_cli_exit_status(capsys, dialect, url):
    args = ["bench", "--quick", "--rounds", "1", "--only", dialect,
            "--pg-url" if dialect == "postgresql" else "--mysql-url", url]
    assert main(args) == 0
    assert "fastsess" in capsys.readouterr().out


def test_bench_unreachable_server_says_how_to_start(capsys):
    assert main(["bench", "--quick", "--only", "mysql", "--mysql-url",
                 "mysql://root:hunter2@127.0.0.1:1/test"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and "start it with" in err and "hunter2" not in err


def test_unknown_command_and_help(capsys):
    assert main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "fastsess bench" in capsys.readouterr().out
