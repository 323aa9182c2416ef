"""``fastsess bench`` end to end: every installed stack is reported, every ratio is the quotient of
the measured medians, every skipped stack says why."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys

import pytest

import fastsess
from fastsess.__main__ import main
from fastsess.bench import callgrind, report

from .conftest import URLS

ROUNDS = 2
SCENARIOS = ["fetch", "insert", "models", "cycle", "point", "cache", "mix", "acycle", "apoint",
             "afetch"]
ASYNC_SCENARIOS = {"acycle", "apoint", "afetch"}
STACK_NAMES = {"raw": "raw driver", "fastsess": "fastsess", "pure": "fastsess pure",
               "ra": "RESTAlchemy", "ra-fastsess": "RESTAlchemy on fastsess",
               "sqlalchemy": "SQLAlchemy Core"}
# The async scenarios' floor and stacks (none of them shows in a sync block, nor the other way).
ASYNC_STACK_NAMES = {"araw": "raw async driver", "afastsess": "fastsess async",
                     "asqlalchemy": "SQLAlchemy async", "asyncpg": "asyncpg"}
# (scenario, stack) pairs that do not apply: the scenario notes them instead.
NOT_APPLICABLE = {("insert", "ra"), ("insert", "ra-fastsess"), ("models", "fastsess"),
                  ("models", "pure"), ("models", "sqlalchemy"), ("cache", "sqlalchemy"),
                  ("mix", "fastsess"), ("mix", "pure"), ("mix", "sqlalchemy")}
DAGGER = "\u2020"
CALLGRIND_TITLE = "session cycle in CPU instructions"


def stack_names(scenario: str) -> dict:
    return ASYNC_STACK_NAMES if scenario in ASYNC_SCENARIOS else STACK_NAMES


def not_applicable(scenario: str, stack: str, dialect: str) -> bool:
    return (scenario, stack) in NOT_APPLICABLE or (stack == "asyncpg" and dialect == "mysql")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def installed_stacks(dialect: str) -> set:
    """The stacks this environment can run, decided apart from the bench's own checks."""
    stacks = {"raw", "pure"}
    if fastsess.__impl__ == "cython":
        stacks.add("fastsess")
    if _installed("restalchemy"):
        stacks.add("ra")
        if _installed("fastsess.restalchemy"):
            stacks.add("ra-fastsess")
    if _installed("sqlalchemy"):
        stacks.add("sqlalchemy")
    # The async floor: psycopg's own AsyncConnection, or asyncmy.
    if dialect == "postgresql" or _installed("asyncmy"):
        stacks.add("araw")
        if hasattr(fastsess, "create_async_engine"):
            stacks.add("afastsess")
        if _installed("sqlalchemy") and _installed("greenlet"):
            stacks.add("asqlalchemy")
        if _installed("asyncpg"):
            stacks.add("asyncpg")
    return stacks


def parse_table(text: str) -> dict:
    """(database, title) -> {"rows": {stack: [cells]}, "notes": {stack: reason}}: 7 cells in a
    scenario's block, 3 in the callgrind block (title "session cycle in CPU instructions")."""
    blocks, block = {}, None
    for line in text.splitlines():
        if not line.strip():
            block = None
        elif not line.startswith(" ") and " \u00b7 " in line:
            database, title, _floor = line.split(" \u00b7 ", 2)
            block = blocks[(database, title)] = {"rows": {}, "notes": {}}
            width = 3 if title == CALLGRIND_TITLE else 7
        elif block is None or line.startswith("  stack "):
            continue
        elif line.startswith("  - "):
            name, reason = line[4:].split(": ", 1)
            block["notes"][name] = reason
        else:
            cells = line.split()
            block["rows"][" ".join(cells[:-width])] = cells[-width:]
    return blocks


def recompute(scenario: dict) -> dict:
    """stack -> (x floor, vs the reference stack (RESTAlchemy; SQLAlchemy async in the async
    scenarios), cpu x floor) from the raw rounds of the JSON document."""
    entries = scenario["entries"]
    med = {name: statistics.median(e["times"]) for name, e in entries.items()}
    cpu = {name: statistics.median(e["cpu"]) for name, e in entries.items()}
    x = {r["name"]: med[r["name"]] / med[r["floor"]] for r in scenario["stacks"]}
    c = {r["name"]: cpu[r["name"]] / cpu[r["floor"]] for r in scenario["stacks"]}
    reference = "SQLAlchemy async" if scenario["scenario"] in ASYNC_SCENARIOS else "RESTAlchemy"
    ref = x.get(reference)
    return {name: (x[name], x[name] / ref if ref else None, c[name]) for name in x}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """One ``python -m fastsess bench --quick`` per database, run once for the module."""
    runs = {}

    def run(dialect, url):
        if dialect not in runs:
            out = tmp_path_factory.mktemp("bench") / "run.json"
            args = [sys.executable, "-m", "fastsess", "bench", "--quick", "--rounds", str(ROUNDS),
                    "--only", dialect, "--pg-url" if dialect == "postgresql" else "--mysql-url", url,
                    "--json", str(out)]
            proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
            doc = json.loads(out.read_text()) if out.exists() else None
            runs[dialect] = (proc, doc)
        return runs[dialect]

    return run


def test_quick_run_reports_every_installed_stack(quick_runs, dialect, url):
    proc, doc = quick_runs(dialect, url)
    assert proc.returncode == 0, proc.stderr
    assert doc is not None and doc["format"] == 1 and doc["quick"] and doc["rounds"] == ROUNDS
    assert doc["unreachable"] == {} and list(doc["databases"]) == [dialect]
    blocks = parse_table(proc.stdout)
    expected = installed_stacks(dialect)
    scenarios = [s for s in doc["scenarios"] if s["database"] == dialect]
    assert [s["scenario"] for s in scenarios] == SCENARIOS
    for scenario in scenarios:
        key_ = scenario["scenario"]
        block = blocks[(dialect, scenario["title"])]
        timed = {r["key"] for r in scenario["stacks"]}
        shown = {n.rstrip(DAGGER) for n in block["rows"]}
        assert scenario["failed"] == {}
        names = stack_names(key_)
        # A stack of the other family is neither timed nor noted.
        every = set(STACK_NAMES.values()) | set(ASYNC_STACK_NAMES.values())
        assert not (shown | set(block["notes"])) & (every - set(names.values()))
        for key, name in names.items():
            if key in expected and not not_applicable(key_, key, dialect):
                assert key in timed and name in shown, (scenario["title"], name)
            else:
                # Skipped, and the table and the JSON both say why.
                assert key not in timed and name not in shown
                assert block["notes"][name] and scenario["skipped"][name] == block["notes"][name]
                if not_applicable(key_, key, dialect):
                    assert block["notes"][name].startswith("not applicable: ")
                else:
                    assert block["notes"][name].startswith("not run: ")


def test_ratios_are_the_quotients_of_the_measured_medians(quick_runs, dialect, url):
    proc, doc = quick_runs(dialect, url)
    assert proc.returncode == 0, proc.stderr
    blocks = parse_table(proc.stdout)
    for scenario in doc["scenarios"]:
        block = blocks[(dialect, scenario["title"])]
        ratios = recompute(scenario)
        summary = {r["name"]: r for r in scenario["summary"]}
        for row in scenario["stacks"]:
            name = row["name"]
            times = scenario["entries"][name]["times"]
            assert len(times) == ROUNDS and all(t > 0 for t in times)
            assert len(scenario["entries"][row["floor"]]["times"]) == ROUNDS
            x, vs_ref, cpu = ratios[name]
            s = summary[name]
            assert s["x_floor"] == x and s["vs_reference"] == vs_ref and s["cpu_x_floor"] == cpu
            assert s["vs_ra"] == (vs_ref if scenario["reference"] == "ra" else None)
            assert s["median"] == statistics.median(times) and s["min"] == min(times)
            cells = block["rows"][name + ("" if row["same_connection"] else DAGGER)]
            median_ms, min_ms, us_op, floor_ms, x_cell, ra_cell, cpu_cell = cells
            assert median_ms == f"{statistics.median(times) * 1e3:.3f}"
            assert floor_ms == f"{statistics.median(scenario['entries'][row['floor']]['times']) * 1e3:.3f}"
            assert us_op == f"{statistics.median(times) / scenario['ops'] * 1e6:.3f}"
            assert x_cell == f"{x:.2f}" and cpu_cell == f"{cpu:.2f}"
            assert ra_cell == ("-" if vs_ref is None else f"{vs_ref:.2f}")
        if "RESTAlchemy" in summary:
            assert summary["RESTAlchemy"]["vs_ra"] == 1.0
        if "SQLAlchemy async" in summary:
            assert summary["SQLAlchemy async"]["vs_reference"] == 1.0
        assert summary[scenario["floor"]]["x_floor"] == 1.0


def test_each_stack_meets_its_floor_on_its_own_connection(quick_runs, dialect, url):
    proc, doc = quick_runs(dialect, url)
    assert proc.returncode == 0, proc.stderr
    for scenario in doc["scenarios"]:
        rows = {r["key"]: r for r in scenario["stacks"]}
        if scenario["scenario"] in ASYNC_SCENARIOS:
            # fastsess async, when it lends its connection, runs on the async floor's own.
            floor, on_floor_engine = "raw async driver", {"araw", "afastsess"}
        else:
            # fastsess runs on the floor's own engine; so does the twin in a pure-Python process.
            floor = "raw driver"
            on_floor_engine = {"raw", "fastsess"} if fastsess.__impl__ == "cython" else {"raw", "pure"}
        assert scenario["floor"] == floor and rows[scenario["stacks"][0]["key"]]["floor"] == floor
        for key in on_floor_engine & set(rows):
            assert rows[key]["floor"] == floor and rows[key]["same_connection"]
        for key, row in rows.items():
            if key in on_floor_engine or not scenario["paired"]:
                continue
            # mysql-connector, asyncpg: no floor can run on their connections
            if (key == "ra" and dialect == "mysql") or key == "asyncpg":
                assert not row["same_connection"] and row["floor"] == floor
                continue
            assert row["same_connection"] and row["floor"] == f"{floor} on {row['name']}'s connection"
        for name, entry in scenario["entries"].items():
            if "connections" in entry:  # every round of a floor ran on one connection
                assert len(entry["connections"]) == 1, (scenario["title"], name)


def test_progress_goes_to_stderr(quick_runs, dialect, url):
    proc, doc = quick_runs(dialect, url)
    assert "interleaved rounds per scenario" in proc.stderr
    for scenario in doc["scenarios"]:
        assert f"{scenario['title']}" in proc.stderr
    assert "interleaved rounds" in proc.stdout.splitlines()[0]  # the header line


def test_from_json_prints_the_same_table_and_draws_the_chart(quick_runs, dialect, url, tmp_path,
                                                             capsys):
    proc, doc = quick_runs(dialect, url)
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(doc))
    chart = tmp_path / "chart.png"
    pytest.importorskip("matplotlib")
    assert main(["bench", "--from-json", str(saved), "--chart", str(chart)]) == 0
    assert capsys.readouterr().out == proc.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_is_installed():
    script = shutil.which("fastsess", path=os.path.dirname(sys.executable))
    assert script, "the 'fastsess' console script is missing: reinstall with pip install -e ."
    proc = subprocess.run([script, "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--chart" in proc.stdout


def test_unreachable_server_says_how_to_start(capsys):
    assert main(["bench", "--quick", "--only", "mysql", "--no-progress", "--mysql-url",
                 "mysql://root:hunter2@127.0.0.1:1/test"]) == 1
    captured = capsys.readouterr()
    assert "cannot reach" in captured.err and "start it with" in captured.err
    assert "mysql: not run" in captured.out
    assert "hunter2" not in captured.err + captured.out


def test_chart_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["bench", "--quick", "--chart", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install" in err
    assert not (tmp_path / "c.png").exists()


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--scenarios", "fetch,nope"])
    assert e.value.code == 2 and "unknown scenario nope" in capsys.readouterr().err
    assert main(["bench", "--rounds", "0"]) == 2
    assert main(["bench", "--from-json", "/nonexistent/run.json"]) == 2
    assert main(["bench", "--quick", "--json", "/proc/fastsess-bench/run.json"]) == 2
    assert "cannot write /proc/fastsess-bench/run.json" in capsys.readouterr().err


def test_unknown_command_and_help(capsys):
    assert main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "fastsess bench" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0 and "--json FILE" in capsys.readouterr().out


def test_summary_of_a_known_run():
    """The ratios on made-up rounds, worked by hand."""
    scenario = {
        "database": "postgresql", "scenario": "fetch", "title": "fetch 4 rows as dicts", "ops": 4,
        "floor_description": "tuple rows", "paired": True, "skipped": {}, "failed": {},
        "stacks": [
            {"key": "raw", "name": "raw driver", "floor": "raw driver", "same_connection": True},
            {"key": "fastsess", "name": "fastsess", "floor": "raw driver", "same_connection": True},
            {"key": "ra", "name": "RESTAlchemy", "floor": "floor2", "same_connection": True},
        ],
        "entries": {
            "raw driver": {"times": [1.0, 3.0, 2.0], "cpu": [1.0, 1.0, 1.0]},
            "fastsess": {"times": [2.0, 4.0, 3.0], "cpu": [2.0, 2.0, 2.0]},
            "floor2": {"times": [4.0, 4.0, 5.0], "cpu": [1.0, 1.0, 1.0]},
            "RESTAlchemy": {"times": [12.0, 10.0, 14.0], "cpu": [4.0, 4.0, 4.0]},
        },
    }
    rows = {r["name"]: r for r in report.summarize(scenario)}
    assert rows["fastsess"]["x_floor"] == 1.5 and rows["fastsess"]["us_per_op"] == 0.75e6
    assert rows["RESTAlchemy"]["x_floor"] == 3.0 and rows["RESTAlchemy"]["floor_median"] == 4.0
    assert rows["fastsess"]["vs_ra"] == 0.5 and rows["raw driver"]["vs_ra"] == 1 / 3
    assert rows["fastsess"]["cpu_x_floor"] == 2.0 and rows["RESTAlchemy"]["cpu_x_floor"] == 4.0
    doc = {"scenarios": [scenario], "unreachable": {}}
    table = parse_table(report.format_table(doc))[("postgresql", "fetch 4 rows as dicts")]
    assert table["rows"]["fastsess"][4:] == ["1.50", "0.50", "2.00"]
    assert table["rows"]["raw driver"][4:] == ["1.00", "0.33", "1.00"]


# -- --callgrind: instructions per session cycle ----------------------------------------------


def test_collected_reads_valgrinds_summary():
    stderr = ("==41== Callgrind, a call-graph generating cache profiler\n==41== \n"
              "==41== Events    : Ir\n==41== Collected : 1037859524\n==41== \n"
              "==41== I   refs:      1,037,859,524\n")
    assert callgrind.collected(stderr) == 1037859524
    with pytest.raises(ValueError):
        callgrind.collected("Traceback (most recent call last):\n")


def test_callgrind_without_valgrind_is_a_note(dialect, url, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind on it
    out = tmp_path / "run.json"
    status = main(["bench", "--quick", "--rounds", "1", "--no-progress", "--only", dialect,
                   "--pg-url" if dialect == "postgresql" else "--mysql-url", url,
                   "--scenarios", "cycle", "--stacks", "fastsess", "--callgrind", "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "callgrind: not run: valgrind is not on PATH" in captured.out
    assert "callgrind: not run: valgrind is not on PATH" in captured.err  # and said at the start
    doc = json.loads(out.read_text())
    assert doc["callgrind"]["note"].startswith("not run: ") and doc["callgrind"]["databases"] == {}
    assert [s["scenario"] for s in doc["scenarios"]] == ["cycle"]  # the bench itself ran


@pytest.mark.db
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_counts_instructions_per_cycle(tmp_path):
    """``fastsess bench --callgrind`` end to end on PostgreSQL with 20 cycles: three children
    under valgrind (the sync pair only), some 20-40 s."""
    cycles = 20
    out = tmp_path / "run.json"
    # The stack whose wall ratio stands beside the counted fastsess: in a process with
    # FASTSESS_PURE_PYTHON=1 that is the twin.
    same = "fastsess" if fastsess.__impl__ == "cython" else "pure"
    args = [sys.executable, "-m", "fastsess", "bench", "--quick", "--rounds", "1", "--no-progress",
            "--only", "postgresql", "--pg-url", URLS["postgresql"], "--scenarios", "cycle",
            "--stacks", same, "--callgrind", "--callgrind-cycles", str(cycles), "--json", str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    counted = doc["callgrind"]
    assert counted["cycles"] == cycles and counted["note"] is None and counted["valgrind"]
    result = counted["databases"]["postgresql"]
    assert result["failed"] == {}
    entries = {e["key"]: e for e in result["entries"]}
    assert list(entries) == ["raw", "fastsess"]  # the async pair was not asked for
    assert entries["fastsess"]["kernels"] == fastsess.__impl__
    for e in entries.values():
        at_zero, at_n = e["collected"]
        assert 0 < at_zero < at_n and e["per_cycle"] == (at_n - at_zero) / cycles
    # The ratios are the quotients of the counts, beside the cycle scenario's wall ratio.
    cycle = next(s for s in doc["scenarios"] if s["scenario"] == "cycle")
    wall = {r["key"]: r["x_floor"] for r in cycle["summary"]}
    summary = {r["key"]: r for r in result["summary"]}
    x = entries["fastsess"]["per_cycle"] / entries["raw"]["per_cycle"]
    assert summary["fastsess"]["x_floor"] == x and summary["fastsess"]["wall_x_floor"] == wall[same]
    assert summary["raw"]["x_floor"] == 1.0
    block = parse_table(proc.stdout)[("postgresql", CALLGRIND_TITLE)]
    assert block["rows"][entries["fastsess"]["name"]] == [
        f"{entries['fastsess']['per_cycle']:,.0f}", f"{x:.2f}", f"{wall[same]:.2f}"]
    assert "instr/cycle: valgrind's count" in proc.stdout  # the legend


def test_callgrind_summary_of_a_known_run():
    """The instruction ratios on made-up counts, worked by hand, beside the cycle's wall ratio."""
    cycle = {
        "database": "mysql", "scenario": "cycle", "title": "session cycle x10", "ops": 10,
        "floor_description": "SELECT 1", "paired": True, "skipped": {}, "failed": {},
        "stacks": [
            {"key": "raw", "name": "raw driver", "floor": "raw driver", "same_connection": True},
            {"key": "fastsess", "name": "fastsess", "floor": "raw driver", "same_connection": True},
        ],
        "entries": {"raw driver": {"times": [2.0, 2.0], "cpu": [1.0, 1.0]},
                    "fastsess": {"times": [3.0, 3.0], "cpu": [1.0, 1.0]}},
    }

    def counted(key, name, floor, idle, total):
        return {"key": key, "name": name, "floor": floor, "kernels": "cython",
                "collected": [idle, total], "per_cycle": (total - idle) / 10}

    doc = {"scenarios": [cycle], "unreachable": {}, "callgrind": {
        "cycles": 10, "note": None, "valgrind": "/usr/bin/valgrind", "databases": {"mysql": {
            "entries": [counted("raw", "raw driver", "raw", 5000, 6000),
                        counted("fastsess", "fastsess", "raw", 5000, 6500),
                        counted("araw", "raw async driver", "araw", 5000, 9000),
                        counted("afastsess", "fastsess async", "araw", 5000, 10000)],
            "failed": {}, "skipped": {"SQLAlchemy async": "not run: because"}}}}}
    rows = {r["key"]: r for r in report.summarize_callgrind(doc, "mysql")}
    assert rows["fastsess"]["per_cycle"] == 150 and rows["fastsess"]["x_floor"] == 1.5
    assert rows["afastsess"]["x_floor"] == 1.25 and rows["araw"]["x_floor"] == 1.0
    assert rows["fastsess"]["wall_x_floor"] == 1.5
    assert rows["afastsess"]["wall_x_floor"] is None  # no async cycle scenario in this run
    table = parse_table(report.format_table(doc))[("mysql", CALLGRIND_TITLE)]
    assert table["rows"]["fastsess"] == ["150", "1.50", "1.50"]
    assert table["rows"]["fastsess async"] == ["500", "1.25", "-"]
    assert table["notes"] == {"SQLAlchemy async": "not run: because"}
    assert json.loads(report.to_json(doc))["callgrind"]["databases"]["mysql"]["summary"] == list(
        rows.values())
    # A failed count fails the run; a note (valgrind missing) does not.
    doc["callgrind"]["databases"]["mysql"]["failed"] = {"fastsess": "failed under callgrind: x"}
    assert report.failures(doc) == ["mysql callgrind: fastsess: failed under callgrind: x"]
