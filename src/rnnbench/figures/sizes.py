"""Figures of the answer across sizes, drawn from sizes.csv (rnnbench.analysis.sizes) and
runs.csv only: test perplexity, Δ against the reference model and the effective context, each
against the total (or recurrent) parameter count on a log axis, one line per model.

    python -m rnnbench.figures.draw perplexity_vs_size --tables DIR --out DIR/../figures/X.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rnnbench.analysis.labels import with_model
from rnnbench.diagnostics.context_stats import K_GRID
from rnnbench.figures import figstyle as fs
from rnnbench.figures.palette import model_styles


def _read(tables: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """sizes.csv, and the finished runs of runs.csv with their model names."""
    sizes = pd.read_csv(tables / "sizes.csv")
    sizes["x"] = _x(sizes)
    runs = with_model(pd.read_csv(tables / "runs.csv"))
    return sizes, runs[(runs["status"] == "ok") & runs["test_ppl"].notna()]


def _axes(title: str, ylabel: str, kind: str) -> tuple[Figure, plt.Axes]:
    """One panel with a log x axis of parameters; the legend goes beside it."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    ax.set_xscale("log")
    ax.set(title=title, xlabel=f"{kind} parameters (log scale)", ylabel=ylabel)
    return fig, ax


def _kind(sizes: pd.DataFrame) -> str:
    """``total`` or ``recurrent``: what the budgets count."""
    kinds = sizes["budget_kind"].dropna()
    return str(kinds.iloc[0]) if len(kinds) else "recurrent"


def _x(sizes: pd.DataFrame) -> pd.Series:
    """Where a row is drawn: its nominal budget (every cell of a size at one x), else its
    parameter count (sizes given as hidden sizes)."""
    return sizes["budget"].fillna(sizes["params"])


def _finish(fig: Figure, ax: plt.Axes, sizes: pd.DataFrame) -> Figure:
    """Ticks at the budgets, the legend outside the data, the seeds note."""
    ticks = sorted(_x(sizes).unique())
    ax.set_xticks(ticks, [fs.si(t) for t in ticks])
    ax.minorticks_off()
    fs.legend(ax, "model", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    n = sizes["n"]
    fs.footnote(fig, [f"Seeds per point: {n.min():.0f}" + (f"–{n.max():.0f}" if n.max() > n.min()
                                                           else "") + " (finished runs only)."])
    return fig


def perplexity_vs_size(tables: Path) -> Figure:
    """Test perplexity against parameters: each model's mean with its 95% band, the seeds as
    dots."""
    sizes, runs = _read(tables)
    fig, ax = _axes("Test perplexity across sizes", "test perplexity", _kind(sizes))
    styles = model_styles(sizes["model"])
    colors = {m: st.color for m, st in styles.items()}
    for model, d in sizes.groupby("model", sort=False):
        d = d.sort_values("x")
        st = styles[model]
        ax.plot(d["x"], d["test_ppl_mean"], color=st.color, linestyle=st.linestyle,
                marker=st.marker, label=model)
        ax.fill_between(d["x"], d["test_ppl_ci_low"], d["test_ppl_ci_high"],
                        color=colors[model], alpha=0.18, linewidth=0)
        seeds = runs[(runs["model"] == model) & runs["experiment"].isin(d["experiment"])]
        # each seed at its size's x (its hidden size is the size's), spread a little
        x = seeds["hidden"].map(dict(zip(d["hidden"], d["x"], strict=True)))
        jitter = np.exp(np.linspace(-0.03, 0.03, len(seeds))) if len(seeds) else []
        ax.scatter(x * jitter, seeds["test_ppl"], color=colors[model], s=12, alpha=0.6,
                   edgecolor="none")
    return _finish(fig, ax, sizes)


def delta_vs_size(tables: Path) -> Figure:
    """Δ test perplexity against the reference model of each size, with the simultaneous 95%
    intervals of the whole family."""
    sizes, _ = _read(tables)
    ref = sizes["reference"].dropna().iloc[0] if sizes["reference"].notna().any() else "?"
    fig, ax = _axes(f"Test perplexity minus {ref}'s", f"Δ vs {ref} (simultaneous 95% CI)",
                    _kind(sizes))
    ax.axhline(0, color="0.4", linewidth=0.8)
    styles = model_styles(sizes["model"])
    shown = sizes[sizes["model"] != sizes["reference"]]
    models = list(dict.fromkeys(shown["model"]))
    for i, (model, d) in enumerate(shown.groupby("model", sort=False)):
        d = d.sort_values("x")
        x = d["x"] * np.exp(0.04 * (i - (len(models) - 1) / 2))  # side by side
        err = np.vstack([d["delta"] - d["delta_ci_low"], d["delta_ci_high"] - d["delta"]])
        st = styles[model]
        ax.errorbar(x, d["delta"], yerr=np.nan_to_num(err), color=st.color, marker=st.marker,
                    linestyle=st.linestyle, capsize=3, label=model)
    return _finish(fig, ax, sizes)


def context_vs_size(tables: Path) -> Figure:
    """Each model's effective context (tokens, log scale) against parameters, with its 95%
    interval."""
    sizes, _ = _read(tables)
    fig, ax = _axes("Effective context across sizes", "effective context, tokens (log)",
                    _kind(sizes))
    ax.set_yscale("log")
    styles = model_styles(sizes["model"])
    models = list(dict.fromkeys(sizes["model"]))
    for i, (model, d) in enumerate(sizes.groupby("model", sort=False)):
        d = d[d["effective_context"].notna()].sort_values("x")
        x = d["x"] * np.exp(0.04 * (i - (len(models) - 1) / 2))
        err = np.vstack([d["effective_context"] - d["effective_context_ci_low"],
                         d["effective_context_ci_high"] - d["effective_context"]])
        st = styles[model]
        ax.errorbar(x, d["effective_context"], yerr=np.nan_to_num(err), color=st.color,
                    marker=st.marker, linestyle=st.linestyle, capsize=3, label=model)
    low, high = ax.get_ylim()
    ticks = [k for k in K_GRID if low <= k <= high]  # the measured grid, in plain numbers
    ax.set_yticks(ticks, [str(k) for k in ticks])
    ax.yaxis.set_minor_locator(plt.NullLocator())
    return _finish(fig, ax, sizes)
