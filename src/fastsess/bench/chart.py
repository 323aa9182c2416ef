"""``--chart FILE.png``: the ratios to the floor as grouped bars, one panel per database."""

from __future__ import annotations

import textwrap

from .base import ALL_STACKS
from .report import DAGGER, header, summarize

COLORS = {
    "raw": "#7f7f7f",
    "fastsess": "#1f77b4",
    "pure": "#9ecae1",
    "ra": "#d62728",
    "ra-fastsess": "#ff9896",
    "sqlalchemy": "#2ca02c",
    "afastsess": "#17becf",
    "asqlalchemy": "#98df8a",
    "asyncpg": "#9467bd",
}


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib():
    """Import matplotlib with a headless backend, or say how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ChartUnavailable(
            "--chart needs matplotlib, which is not installed: pip install 'fastsess[bench]' "
            "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(doc: dict, path) -> None:
    """Write the chart of ``doc`` (a run's JSON document) to ``path``."""
    plt = require_matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    databases = list(dict.fromkeys(s["database"] for s in doc["scenarios"]))
    if not databases:
        raise ValueError("nothing to draw: the run has no results")
    most = max(sum(s["database"] == d for s in doc["scenarios"]) for d in databases)
    fig, axes = plt.subplots(len(databases), 1, figsize=(max(12, 1.9 * most), 4.6 * len(databases) + 0.8),
                             squeeze=False)
    shown = []
    daggers = False
    for ax, database in zip(axes[:, 0], databases):
        scenarios = [s for s in doc["scenarios"] if s["database"] == database]
        summaries = [{r["key"]: r for r in summarize(s)} for s in scenarios]
        # The raw drivers are the 1.0 line itself.
        keys = [k for k in ALL_STACKS if k not in ("raw", "araw") and any(k in rows for rows in summaries)]
        shown += [k for k in keys if k not in shown]
        top = bottom = 1.0
        for key in keys:
            xs, ratios = [], []
            for j, rows in enumerate(summaries):
                if key in rows:
                    # Each scenario's bars side by side: only the stacks it ran (the sync
                    # and the async scenarios have different ones).
                    here = [k for k in keys if k in rows]
                    width = 0.8 / len(here)
                    xs.append(j + (here.index(key) - (len(here) - 1) / 2) * width)
                    ratios.append(rows[key]["x_floor"])
            # Bars grow from the floor (1.0): up is slower than the raw driver, down faster.
            widths = [0.8 / len([k for k in keys if k in rows]) * 0.92
                      for rows in summaries if key in rows]
            ax.bar(xs, [r - 1 for r in ratios], widths, bottom=1, color=COLORS.get(key, "#bcbd22"),
                   edgecolor="black", linewidth=0.4)
            for x, r in zip(xs, ratios):
                ax.annotate(f"{r:.2f}", (x, r), ha="center", va="bottom" if r >= 1 else "top",
                            fontsize=7, rotation=90, xytext=(0, 2 if r >= 1 else -2),
                            textcoords="offset points")
            if ratios:
                top, bottom = max(top, *ratios), min(bottom, *ratios)
        ax.set_yscale("log")
        ax.set_ylim(bottom / 1.6, top * 2.2)
        ax.axhline(1.0, color="black", linewidth=0.9)
        labels = []
        for s, rows in zip(scenarios, summaries):
            mark = any(not r["same_connection"] for r in rows.values())
            daggers = daggers or mark
            # Wrapped: nine scenarios side by side do not fit on one line each.
            labels.append(textwrap.fill(s["title"] + (DAGGER if mark else ""), 24))
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels(labels, fontsize=8)
        server = doc["databases"].get(database, {}).get("server", database)
        ax.set_title(f"{server}: median time relative to the raw driver on the same connection "
                     f"({doc['rounds']} rounds; lower is faster)", fontsize=10)
        ax.set_ylabel("x floor (log scale)")
        ax.grid(axis="y", which="both", alpha=0.3)
    handles = [Line2D([0], [0], color="black", linewidth=0.9)]
    handles += [Patch(facecolor=COLORS.get(k, "#bcbd22"), edgecolor="black", linewidth=0.4)
                for k in shown]
    fig.legend(handles, ["raw driver (= 1)"] + [ALL_STACKS[k] for k in shown], loc="upper center",
               ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()))
    fig.suptitle(header(doc), fontsize=9)
    if daggers:
        fig.text(0.01, 0.005, f"{DAGGER} a stack on another driver's connection (RESTAlchemy on MySQL: "
                 "mysql-connector; asyncpg) is compared with the raw driver on fastsess's connection "
                 "(fastsess async's)",
                 fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 1 - 0.75 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
