"""Figures built from the tables alone, so they regenerate without retraining. Usage::

    python -m rnnbench.plots perplexity_vs_hidden --tables results/tables \\
        --out results/figures/perplexity_vs_hidden.png     # also writes the .svg beside it
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from rnnbench.io import write_atomic  # noqa: E402

log = logging.getLogger(__name__)
CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"]


def _cells(df: pd.DataFrame) -> list[str]:
    return [c for c in CELL_ORDER if c in set(df["cell"])]


def perplexity_vs_hidden(tables: Path) -> sns.FacetGrid:
    """Test perplexity vs hidden size; hue cell, columns layers, error bars sd over seeds."""
    runs = _ok(pd.read_csv(tables / "runs.csv"))
    if runs["experiment"].nunique() > 1:  # one panel per experiment and layer count present
        label = runs["experiment"] + ": layers " + runs["layers"].astype(str)
        runs = runs.assign(panel=label)
        facets = {"col": "panel", "col_wrap": min(3, label.nunique()),
                  "col_order": list(dict.fromkeys(label)), "sharex": False}
    else:
        facets = {"col": "layers"}
    g = sns.catplot(runs, x="hidden", y="test_ppl", hue="cell", **facets,
                    hue_order=_cells(runs), kind="point", errorbar="sd", dodge=0.3,
                    height=3.5, aspect=1.1, markers="o")
    g.set_axis_labels("hidden size", "test perplexity (mean ± sd over seeds)")
    g.set_titles(col_template="{col_name}" if facets["col"] == "panel" else "layers = {col_name}")
    return g


def _model_panels(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Facets of the per-epoch figures: for one experiment a hidden × layers grid; for several
    (config/reproduce.yaml), one panel per experiment and size present, so none is empty."""
    if df["experiment"].nunique() <= 1:
        return df, {"col": "hidden", "row": "layers"}
    label = (df["experiment"] + ": hidden " + df["hidden"].astype(str) + ", layers "
             + df["layers"].astype(str))
    df = df.assign(panel=label)
    return df, {"col": "panel", "col_wrap": min(3, label.nunique()),
                "col_order": list(dict.fromkeys(label))}


def _titles(g: sns.FacetGrid, facets: dict) -> None:
    if facets["col"] == "panel":
        g.set_titles("{col_name}")
    else:
        g.set_titles("hidden {col_name}, layers {row_name}")


def _plain_log_ticks(g: sns.FacetGrid) -> None:
    """Log y axis labelled 100, 200, 300 rather than 10², 2×10², 3×10²: 120, 150, 200, 250,
    ... when the axis spans under a decade, the ticks at 1, 2, 3 and 5 × 10^k under two,
    10^k beyond; only the first column's panels carry labels."""
    g.set(yscale="log")

    def label(y: float, _pos) -> str:
        mantissa = round(y / 10 ** math.floor(math.log10(y) + 1e-9), 6) if y > 0 else 0
        return f"{y:g}" if mantissa in (1, 2, 3, 5) else ""

    for ax in g.axes.flat:
        low, high = ax.get_ylim()
        if 0 < low and high / low < 10:  # about evenly spaced on a log axis
            k = math.floor(math.log10(low))
            ticks = [m * 10 ** e for e in (k, k + 1) for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)]
            ax.yaxis.set_major_locator(ticker.FixedLocator(
                [round(t, 9) for t in ticks if low <= t <= high]))
            ax.yaxis.set_minor_locator(ticker.NullLocator())
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _pos: f"{y:g}"))
        elif 0 < low and high / low < 100:
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(label))
            ax.yaxis.set_minor_formatter(ticker.FuncFormatter(label))
        # wider: matplotlib's own 10^k labels on the decades
        if not ax.get_subplotspec().is_first_col():
            ax.tick_params(axis="y", which="both", labelleft=False)


def learning_curves(tables: Path) -> sns.FacetGrid:
    """Validation perplexity per epoch; hue cell, columns hidden, rows layers (or one panel
    per experiment and size when there are several experiments)."""
    epochs, facets = _model_panels(pd.read_csv(tables / "epochs.csv"))
    g = sns.relplot(epochs, x="epoch", y="valid_ppl", hue="cell", **facets,
                    hue_order=_cells(epochs), kind="line", errorbar="sd", marker="o",
                    height=3, aspect=1.1, facet_kws={"sharex": False})
    _plain_log_ticks(g)
    for ax in g.axes.flat:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    g.set_axis_labels("epoch", "validation perplexity")
    _titles(g, facets)
    return g


def grad_norms(tables: Path) -> sns.FacetGrid:
    """Global gradient norm (before normalisation/clipping) over training, log scale."""
    grads, facets = _model_panels(pd.read_csv(tables / "grad_norms.csv"))
    g = sns.relplot(grads, x="progress", y="grad_norm_median", hue="cell", **facets,
                    hue_order=_cells(grads), kind="line", errorbar=("pi", 80),
                    height=3, aspect=1.1)
    _plain_log_ticks(g)
    g.set_axis_labels("share of training", "global gradient norm (median per bin)")
    _titles(g, facets)
    return g


def perplexity_vs_params(tables: Path) -> sns.FacetGrid:
    """Test perplexity against parameter count, one dot per run; hue cell, style layers (or,
    with several experiments, style experiment, all in one panel)."""
    runs = _ok(pd.read_csv(tables / "runs.csv"))
    style = "experiment" if runs["experiment"].nunique() > 1 else "layers"
    g = sns.relplot(runs, x="params", y="test_ppl", hue="cell", style=style,
                    hue_order=_cells(runs), s=60, height=3.5, aspect=1.4)
    g.set(xscale="log")
    for ax in g.axes.flat:
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _pos: f"{x / 1e6:g}M"))
        ax.xaxis.set_minor_formatter(ticker.FuncFormatter(
            lambda x, _pos: f"{x / 1e6:g}M" if round(x / 10 ** math.floor(math.log10(x)))
            in (2, 3, 5) else ""))
    g.set_axis_labels("trainable parameters", "test perplexity")
    return g


FIGURES: dict[str, Callable[[Path], sns.FacetGrid]] = {
    "perplexity_vs_hidden": perplexity_vs_hidden,
    "learning_curves": learning_curves,
    "grad_norms": grad_norms,
    "perplexity_vs_params": perplexity_vs_params,
}


def reproduction(tables: Path, published: dict[str, dict]) -> plt.Axes:
    """Each experiment's test perplexity against its published number, in percent: one dot
    per seed, the mean ± sd, the ±2% band of config/reproduce.yaml's goal."""
    runs = _ok(pd.read_csv(tables / "runs.csv"))
    order = [e for e in published if e in set(runs["experiment"])]
    if not order:
        raise SystemExit(
            f"No finished run of an experiment with a published number in {tables / 'runs.csv'}"
            f" (experiments with one: {', '.join(published) or 'none'}). The reproduction "
            "figure needs at least one; run the config's experiments first.")
    runs = runs[runs["experiment"].isin(order)].copy()
    target = runs["experiment"].map({e: published[e]["test_ppl"] for e in order})
    runs["delta_pct"] = 100 * (runs["test_ppl"] / target - 1)
    fig, ax = plt.subplots(figsize=(1.3 + 2.2 * len(order), 3.6))
    ax.axhspan(-2, 2, color="0.88", zorder=0, label="within 2%")
    ax.axhline(0, color="0.2", linewidth=1, label="published")
    sns.stripplot(runs, x="experiment", y="delta_pct", order=order, ax=ax, size=7,
                  jitter=0.08, color="C0", label="one seed", legend=False)
    sns.pointplot(runs, x="experiment", y="delta_pct", order=order, ax=ax, errorbar="sd",
                  linestyle="none", marker="D", markersize=5, color="black", capsize=0.15,
                  label="mean ± sd")
    stats = runs.groupby("experiment")["test_ppl"].agg(["mean", "count"])
    ax.set_xticks(range(len(order)), [
        f"{e}\npublished {published[e]['test_ppl']:g}\n"
        f"ours {stats.loc[e, 'mean']:.1f} (n={stats.loc[e, 'count']})" for e in order])
    bound = max(3.0, runs["delta_pct"].abs().max() * 1.25)
    ax.set_ylim(-bound, bound)
    ax.set_xlabel("")
    ax.set_ylabel("test perplexity vs published (%)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1),
              frameon=False)
    return ax


def save(grid: sns.FacetGrid | plt.Axes, png: Path) -> None:
    """Write the PNG and the SVG beside it, each atomically."""
    for path, fmt in ((png, "png"), (png.with_suffix(".svg"), "svg")):
        write_atomic(path, lambda tmp, f=fmt: grid.figure.savefig(tmp, format=f, dpi=120,
                                                                 bbox_inches="tight"))
    plt.close(grid.figure)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=sorted([*FIGURES, "reproduction"]))
    parser.add_argument("--tables", required=True, type=Path, help="folder of the tables")
    parser.add_argument("--out", required=True, type=Path, help="PNG path (SVG beside it)")
    parser.add_argument("--published", default="{}",
                        help="reproduction only; JSON: experiment -> {test_ppl: ...}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sns.set_theme(style="whitegrid", context="paper")
    if args.figure == "reproduction":
        save(reproduction(args.tables, json.loads(args.published)), args.out)
    else:
        save(FIGURES[args.figure](args.tables), args.out)
    log.info("wrote %s and .svg", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
