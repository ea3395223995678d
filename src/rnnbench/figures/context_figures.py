"""The effective context's figure, drawn from context.csv (rnnbench.analysis.context_tables)
alone; no torch import::

    python -m rnnbench.figures.draw context_vs_k --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/context_vs_k.png     # also writes the .svg beside it
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rnnbench.analysis.context_tables import model_band, model_context  # noqa: E402
from rnnbench.diagnostics.context_stats import THRESHOLD  # noqa: E402
from rnnbench.figures import figstyle as fs  # noqa: E402

# each ablation of context.csv, the context it gives (analysis.context_tables), its title
ABLATIONS = {"truncate": "effective_context", "shuffle": "order_context"}
TITLES = {"truncate": "truncated to the last k", "shuffle": "order beyond k shuffled"}


def context_vs_k(tables: Path) -> Figure:
    """Relative loss increase (%) against the context length k (log x, symlog y above 1%):
    one row per experiment, size and depth, the context truncated to the last k tokens on the
    left and the order beyond k shuffled on the right; colour the model
    (rnnbench.analysis.labels: a variant such as irnn or lstm+fb1 is a model of its own), the
    1% line, and each model's context (effective, or word-order) marked on it."""
    df = pd.read_csv(tables / "context.csv")
    missing = [f"{r.experiment}/{r.run_id}: {r.status}"
               for r in df.drop_duplicates(["experiment", "run_id"]).itertuples()
               if r.status != "ok"]
    df = df[(df["status"] == "ok") & df["k"].notna()]
    if df.empty:
        return fs.note_figure("Nothing to plot: no run's effective context was measured.",
                              missing or ["(the table holds no row)"])
    df, panels = fs.with_panels(df, ["size", "layers"], {"size": ""})
    styles = fs.model_styles(df["model"])
    fig, axes = fs.panel_grid(len(ABLATIONS) * len(panels), ncols=len(ABLATIONS), width=4.0,
                              height=3.3)
    for i, panel in enumerate(panels):
        d = df[df["panel"] == panel]
        models = fs.model_order(d["model"])
        row = axes[i * len(ABLATIONS):(i + 1) * len(ABLATIONS)]
        for ax, (ablation, name) in zip(row, ABLATIONS.items(), strict=True):
            placed: list[float] = []
            for model in models:
                c, st = d[d["model"] == model], styles[model]
                k = model_context(c, name)[name]
                band = model_band(c, ablation)
                ax.plot(band["k"], 100 * band["mean"], color=st.color, linewidth=1.8,
                        linestyle=st.linestyle)
                ax.fill_between(band["k"], 100 * band["low"], 100 * band["high"],
                                color=st.color, alpha=0.15, linewidth=0)
                ax.plot([k], [_stagger(k, placed)],
                        marker=st.marker, markersize=7, linestyle="none", color=st.color,
                        markeredgecolor="black", markeredgewidth=0.5, gid="context-mark")
            ax.axhline(100 * THRESHOLD, color="0.3", linestyle=":", linewidth=1,
                       gid="reference")
            ax.set(xscale="log", title=f"{panel}: {TITLES[ablation]}",
                   xlabel="context k (tokens before the target, log)")
            ax.set_yscale("symlog", linthresh=100 * THRESHOLD)
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _p: f"{y:g}"))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _p: f"{x:g}"))
        row[0].set_ylabel("loss increase over full context (%)\n(linear below 1%, log above)")
        handles = [Line2D([], [], color=styles[m].color, linewidth=2,
                          linestyle=styles[m].linestyle, marker=styles[m].marker,
                          markeredgecolor="black", markeredgewidth=0.5) for m in models]
        row[-1].legend(handles, models, fontsize=7, title="model (marker: its context)",
                       title_fontsize=7, **fs.OUTSIDE)
    seeds = df.groupby(["panel", "model"])["run_id"].nunique()
    prefix, targets = int(df["k"].max()), int(df["targets"].max())
    width = 2 * 70  # characters of footnote under the two panels of a row
    fs.footnote(fig, [fs.wrap(line, width) for line in [
        f"{targets} validation targets, full context = the {prefix} tokens before each. "
        + (f"Lines: mean over {_seeds(seeds)} seeds of each model; band: 95%, the t interval "
           "over seeds and the bootstrap over the targets they share, in quadrature (one seed: its "
           "bootstrap interval)." if seeds.max() > 1 else
           "Lines: one seed each, band: its bootstrap 95% interval over target positions."),
        "Marker: the smallest k from which on the mean line stays within "
        f"{100 * THRESHOLD:g}% (dotted line), one marker per model, stacked above the line "
        "where several models share a k: the effective context (left; the table's) and the "
        "word-order context (right).",
        *fs.not_shown(missing, "Not measured (no trained weights or a non-finite loss):")]])
    return fig


def _seeds(seeds: pd.Series) -> str:
    """``5`` when every model's line pools 5 seeds, ``3–5`` when they differ."""
    low, high = int(seeds.min()), int(seeds.max())
    return str(high) if low == high else f"{low}–{high}"


def _stagger(k: float, placed: list[float]) -> float:
    """The y of a context marker at ``k``: on the 1% line, or a marker's height above it for
    each marker already ``placed`` within a factor 1.4 of k (a marker wide on the log x axis),
    so that none covers another."""
    same = sum(1 for p in placed if abs(math.log(max(p, 1e-9) / max(k, 1e-9))) < 0.35)
    placed.append(k)
    return 100 * THRESHOLD * 1.3 ** same
