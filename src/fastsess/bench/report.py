"""The bench's results: ratios from the measured medians, the text table, the JSON file.

Everything shown is computed here from the rounds a run recorded (the
``entries`` of each scenario in the JSON document), so a table printed from a
saved file (``fastsess bench --from-json``) is the table of the run.
"""

from __future__ import annotations

import json
import statistics

DAGGER = "\u2020"

LEGEND = """\
x floor: the stack's median over the median of the raw (async) driver run on the same
  connection ("floor ms"), measured in the same interleaved rounds; 1.00 is the driver alone.
vs RA: x floor over RESTAlchemy's x floor (below 1: faster than stock RESTAlchemy);
  in the async scenarios vs SA: over SQLAlchemy async's x floor.
cpu x floor: the same ratio for this process's CPU time.
{dagger} no same-connection floor (the stack's connection is not the floor's driver):
  compared with the raw driver on fastsess's connection (async: on fastsess async's, or
  on the bench's own when fastsess async does not run).""".format(dagger=DAGGER)
CALLGRIND_LEGEND = """\
instr/cycle: valgrind's count of this client's CPU instructions for one session cycle: a
  child running N cycles minus one running none, over N (the server's work and the waits
  are not in it, nor this machine's timing noise); x floor: over the raw driver's loop;
  wall x floor: the session cycle scenario's x floor of the same run."""
# The session-cycle scenario whose wall ratio stands beside a callgrind floor's pair.
CYCLE_SCENARIO = {"raw": "cycle", "araw": "acycle"}
# A scenario's reference stack (``reference`` in the JSON) -> its column's heading.
REFERENCE_HEADINGS = {"ra": "vs RA", "asqlalchemy": "vs SA"}


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(scenario: dict) -> list:
    """One dict per stack: median, min, µs/op, floor median and the ratios."""
    entries = scenario["entries"]
    ops = scenario["ops"]

    def x_floor(row):
        return _median(entries[row["name"]]["times"]) / _median(entries[row["floor"]]["times"])

    reference = scenario.get("reference", "ra")  # runs saved before the async scenarios: "ra"
    ref = next((r for r in scenario["stacks"] if r["key"] == reference), None)
    ref_x = x_floor(ref) if ref is not None else None
    out = []
    for row in scenario["stacks"]:
        times = entries[row["name"]]["times"]
        floor = entries[row["floor"]]
        median = _median(times)
        floor_median = _median(floor["times"])
        x = median / floor_median
        floor_cpu = _median(floor["cpu"])
        out.append({
            "key": row["key"],
            "name": row["name"],
            "median": median,
            "min": min(times),
            "us_per_op": median / ops * 1e6,
            "floor_median": floor_median,
            "x_floor": x,
            "vs_reference": x / ref_x if ref_x else None,
            "vs_ra": x / ref_x if ref_x and reference == "ra" else None,
            "cpu_x_floor": _median(entries[row["name"]]["cpu"]) / floor_cpu if floor_cpu > 0 else None,
            "same_connection": row["same_connection"],
        })
    return out


def summarize_callgrind(doc: dict, database: str) -> list:
    """One dict per counted stack: instructions per cycle, its ratio to its
    floor's, and the wall x floor of the same stack in the cycle scenario."""
    counted = doc["callgrind"]["databases"][database]["entries"]
    per_cycle = {e["key"]: e["per_cycle"] for e in counted}
    out = []
    for e in counted:
        floor = per_cycle.get(e["floor"])
        key = CYCLE_SCENARIO[e["floor"]]
        scenario = next((s for s in doc["scenarios"]
                         if s["database"] == database and s["scenario"] == key), None)
        # In a process with FASTSESS_PURE_PYTHON=1 the counted "fastsess" is
        # the twin, whose wall figure is the "fastsess pure" row.
        same = "pure" if e["key"] == "fastsess" and e["kernels"] == "python" else e["key"]
        wall = next((r["x_floor"] for r in summarize(scenario) if r["key"] == same), None) \
            if scenario else None
        out.append({"key": e["key"], "name": e["name"], "per_cycle": e["per_cycle"],
                    "x_floor": e["per_cycle"] / floor if floor else None, "wall_x_floor": wall})
    return out


def format_callgrind(doc: dict) -> list:
    """The lines of the --callgrind table (none when it was not asked for)."""
    counted = doc.get("callgrind")
    if not counted:
        return []
    if counted["note"]:
        return [f"callgrind: {counted['note']}", ""]
    lines = []
    for database, result in counted["databases"].items():
        lines.append(f"{database} \u00b7 session cycle in CPU instructions \u00b7 callgrind, "
                     f"{counted['cycles']} cycles against none")
        rows = summarize_callgrind(doc, database)
        if rows:
            lines.append(f"  {'stack':<30} {'instr/cycle':>12} {'x floor':>8} {'wall x floor':>13}")
        for r in rows:
            lines.append(f"  {r['name']:<30} {r['per_cycle']:>12,.0f} {_num(r['x_floor'], '.2f'):>8} "
                         f"{_num(r['wall_x_floor'], '.2f'):>13}")
        for name, reason in {**result.get("skipped", {}), **result["failed"]}.items():
            lines.append(f"  - {name}: {reason}")
        lines.append("")
    return lines


def _num(value, fmt):
    return "-" if value is None else format(value, fmt)


def table_header(reference="ra") -> str:
    return (f"  {'stack':<25} {'median ms':>10} {'min ms':>10} {'µs/op':>9} {'floor ms':>10} "
            f"{'x floor':>8} {REFERENCE_HEADINGS.get(reference, 'vs ref'):>7} {'cpu x floor':>12}")


HEADER = table_header()


def format_table(doc: dict) -> str:
    """The run as text: a block per (database, scenario), then the legend."""
    lines = []
    daggers = False
    for scenario in doc["scenarios"]:
        lines.append(f"{scenario['database']} \u00b7 {scenario['title']} \u00b7 floor: "
                     f"{scenario['floor_description']}")
        rows = summarize(scenario)
        if rows:
            lines.append(table_header(scenario.get("reference", "ra")))
        for r in rows:
            name = r["name"] + ("" if r["same_connection"] else DAGGER)
            daggers = daggers or not r["same_connection"]
            lines.append(f"  {name:<25} {r['median'] * 1e3:>10.3f} {r['min'] * 1e3:>10.3f} "
                         f"{r['us_per_op']:>9.3f} {r['floor_median'] * 1e3:>10.3f} "
                         f"{r['x_floor']:>8.2f} {_num(r['vs_reference'], '.2f'):>7} "
                         f"{_num(r['cpu_x_floor'], '.2f'):>12}")
        for name, reason in {**scenario["skipped"], **scenario["failed"]}.items():
            lines.append(f"  - {name}: {reason}")
        lines.append("")
    counted = format_callgrind(doc)
    lines.extend(counted)
    for dialect, message in doc.get("unreachable", {}).items():
        lines.append(f"{dialect}: not run: {message}")
    if doc["scenarios"]:
        lines.append(LEGEND if daggers else LEGEND.split("\n" + DAGGER)[0])
    if any("instr/cycle" in line for line in counted):
        lines.append(CALLGRIND_LEGEND)
    return "\n".join(lines).rstrip() + "\n"


def header(doc: dict) -> str:
    """One line saying what ran where."""
    v = doc["versions"]
    servers = ", ".join(f"{d['server']}" for d in doc["databases"].values())
    return (f"fastsess {v['fastsess']} ({v['fastsess kernels']} kernels), Python {v['python']}, "
            f"{doc['machine']['cpus']} cpus; {doc['rounds']} interleaved rounds per scenario"
            f"{' (quick)' if doc['quick'] else ''}" + (f"; {servers}" if servers else ""))


def failures(doc: dict) -> list:
    """Every stack that failed (not merely skipped), as 'database scenario: stack: reason'."""
    out = [f"{s['database']} {s['scenario']}: {name}: {reason}"
           for s in doc["scenarios"] for name, reason in s["failed"].items()]
    counted = doc.get("callgrind") or {}
    for database, result in counted.get("databases", {}).items():
        out += [f"{database} callgrind: {name}: {reason}" for name, reason in result["failed"].items()]
    return out


def to_json(doc: dict) -> str:
    """The document with each scenario's computed summary added."""
    out = dict(doc)
    out["scenarios"] = [{**s, "summary": summarize(s)} for s in doc["scenarios"]]
    counted = doc.get("callgrind")
    if counted and counted["databases"]:
        out["callgrind"] = {**counted, "databases": {
            d: {**result, "summary": summarize_callgrind(doc, d)}
            for d, result in counted["databases"].items()}}
    return json.dumps(out, indent=1, allow_nan=False) + "\n"


def write_json(doc: dict, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_json(doc))


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("format") != 1:
        raise ValueError(f"{path}: not a fastsess bench result (format {doc.get('format')!r})")
    return doc
