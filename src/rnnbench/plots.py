"""Figures built from the tables alone, so they regenerate without retraining. Usage::

    python -m rnnbench.plots perplexity_vs_hidden --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/perplexity_vs_hidden.png  # and the .svg
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rnnbench import figstyle as fs  # noqa: E402
from rnnbench.figstyle import CELL_ORDER, SERIES_COLORS  # noqa: E402
from rnnbench.io import sigterm_exits, write_atomic  # noqa: E402

log = logging.getLogger(__name__)
CELL_STYLES = {c: {"color": SERIES_COLORS[c], "marker": "o", "label": c} for c in CELL_ORDER}
MARKERS = ["o", "X", "s", "D", "^", "v", "P", "*"]


def finished(runs: pd.DataFrame, column: str) -> tuple[pd.DataFrame, list[str]]:
    """Runs with status ok and a finite ``column``; one line for every other run, saying why."""
    ok = runs["status"] == "ok"
    finite = np.isfinite(pd.to_numeric(runs[column], errors="coerce"))
    lines = fs.not_finished(runs)
    lines += [f"{r['experiment']}/{r['run_id']}: ok, but {column} is {r[column]}"
              for _, r in runs[ok & ~finite].iterrows()]
    return runs[ok & finite], lines


def _nothing(what: str, lines: list[str]) -> Figure:
    return fs.note_figure(f"No finished run to plot: {what}.",
                          lines or ["(the tables hold no run)"])


def perplexity_vs_hidden(tables: Path) -> Figure:
    """Test perplexity vs hidden size (one column per size), one panel per experiment and layer
    count present; one colour per cell, mean ± sd over the seeds that finished."""
    runs = pd.read_csv(tables / "runs.csv")
    ok, missing = finished(runs, "test_ppl")
    if ok.empty:
        return _nothing("test perplexity against hidden size", missing)
    # name the experiment when the config has several, even if one has finished runs
    ok, panels = fs.with_panels(ok, ["layers"], experiment=runs["experiment"].nunique() > 1)
    fig, axes = fs.panel_grid(len(panels))
    counts = []
    for ax, panel in zip(axes, panels, strict=True):
        counts.append(fs.dodged_points(ax, ok[ok["panel"] == panel], "hidden", "test_ppl",
                                       "cell", CELL_STYLES))
        ax.set(title=panel, xlabel="hidden size")
        fs.legend(ax, "cell")
    for ax in axes:
        ax.set_ylabel(f"test perplexity\n({fs.spread(pd.concat(counts))})")
    fs.footnote(fig, [*fs.not_shown(missing), *fs.capped_note(runs)])
    return fig


def _positive(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows of ``df`` with a finite, positive ``column`` (none when there is no such
    column: epochs.csv of runs that all diverged before their first validation)."""
    if column not in df.columns:
        return df.iloc[0:0]
    values = pd.to_numeric(df[column], errors="coerce")
    return df[np.isfinite(values) & (values > 0)].assign(**{column: values})


def _status(df: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """``df`` with each run's ``status`` from runs.csv (``ok`` where unknown)."""
    if runs is None:
        return df.assign(status="ok")
    status = runs[["experiment", "run_id", "status"]]
    return df.merge(status, on=["experiment", "run_id"], how="left").fillna({"status": "ok"})


def _curves(ax: Axes, d: pd.DataFrame, x: str, y: str, band: str) -> pd.Series:
    """Per cell: the mean over finished seeds (band ``sd``, or ``range``, where several), and
    each run that did not finish as a dotted line ending in a cross. Returns seed counts."""
    counts = []
    for cell in fs.present(CELL_ORDER, d["cell"]):
        color = SERIES_COLORS[cell]
        ok = d[(d["cell"] == cell) & (d["status"] == "ok")]
        if len(ok):
            st = ok.groupby(x)[y].agg(["mean", "std", "min", "max", "count"])
            ax.plot(st.index, st["mean"], marker="o" if len(st) < 30 else None, color=color,
                    label=cell, markersize=4)
            lo, hi = ((st["mean"] - st["std"], st["mean"] + st["std"]) if band == "sd"
                      else (st["min"], st["max"]))
            if (st["count"] > 1).any():
                ax.fill_between(st.index, lo.clip(lower=st["mean"] / 10), hi, color=color,
                                alpha=0.2, linewidth=0)
            counts.append(st["count"])
        for _, run in d[(d["cell"] == cell) & (d["status"] != "ok")].groupby("run_id"):
            ax.plot(run[x], run[y], linestyle=":", color=color, label=f"{cell}, diverged")
            ax.plot(run[x].iloc[-1:], run[y].iloc[-1:], marker="x", color=color, markersize=7)
    return pd.concat(counts) if counts else pd.Series(dtype=int)


def _per_model(df: pd.DataFrame, runs: pd.DataFrame | None, x: str, y: str,
               band: str) -> tuple[Figure, pd.Series]:
    """One panel per experiment, hidden size and layer count present, curves of ``y``."""
    several = runs["experiment"].nunique() > 1 if runs is not None else None
    df, panels = fs.with_panels(_status(df, runs), ["hidden", "layers"], experiment=several)
    fig, axes = fs.panel_grid(len(panels), height=2.8)
    counts = [_curves(ax, df[df["panel"] == p], x, y, band) for ax, p in zip(axes, panels,
                                                                             strict=True)]
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(panel)
        fs.legend(ax, "cell")
    fs.plain_log_ticks(axes)
    return fig, pd.concat(counts)


def learning_curves(tables: Path) -> Figure:
    """Validation perplexity per epoch (log y), one panel per experiment and size present;
    runs that diverged after an epoch dotted, up to their last validation."""
    epochs = pd.read_csv(tables / "epochs.csv")
    runs = fs.read_runs(tables)
    epochs = _positive(epochs, "valid_ppl")
    if epochs.empty:
        return _nothing("validation perplexity per epoch (no run completed an epoch)",
                        fs.not_finished(runs))
    fig, counts = _per_model(epochs, runs, "epoch", "valid_ppl", "sd")
    for ax in fig.axes:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel=fs.log_label("validation perplexity") + "\n("
               + fs.spread(counts) + ")")
    fs.footnote(fig, [*fs.not_shown(fs.not_finished(runs), "Did not finish (dotted, ending in a"
                                    " cross, where they completed an epoch):"),
                      *fs.capped_note(runs)])
    return fig


def grad_norms(tables: Path) -> Figure:
    """Global gradient norm (before normalisation/clipping) over training, log y; runs that
    diverged dotted up to the divergence."""
    grads = pd.read_csv(tables / "grad_norms.csv")
    runs = fs.read_runs(tables)
    grads = _positive(grads, "grad_norm_median")
    if grads.empty:
        return _nothing("gradient norms (no finite gradient norm recorded)", fs.not_finished(runs))
    fig, counts = _per_model(grads, runs, "progress", "grad_norm_median", "range")
    seeds = int(counts.max()) if len(counts) else 1
    what = "median per bin" + (f"; mean of {seeds} seeds, band: their range" if seeds > 1 else "")
    for ax in fig.axes:
        ax.set(xlabel="share of training",
               ylabel=fs.log_label("global gradient norm") + f"\n({what})")
    fs.footnote(fig, fs.not_shown(fs.not_finished(runs), "Did not finish (dotted, ending in a "
                                  "cross at the last finite bin):"))
    return fig


def perplexity_vs_params(tables: Path) -> Figure:
    """Test perplexity against parameter count, one dot per finished run; colour cell, marker
    layers (or, with several experiments, experiment), all in one panel."""
    runs = pd.read_csv(tables / "runs.csv")
    ok, missing = finished(runs, "test_ppl")
    if ok.empty:
        return _nothing("test perplexity against parameter count", missing)
    style = "experiment" if runs["experiment"].nunique() > 1 else "layers"
    markers = dict(zip(dict.fromkeys(ok[style]), MARKERS * 4, strict=False))
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    for (cell, value), d in ok.groupby(["cell", style], sort=False):
        ax.scatter(d["params"], d["test_ppl"], color=SERIES_COLORS[cell], s=40, alpha=0.85,
                   marker=markers[value], label=f"{cell}, {style} {value}", edgecolor="white")
    is_log = fs.count_axis(ax, ok["params"])
    label = "trainable parameters"
    ax.set(xlabel=fs.log_label(label) if is_log else label, ylabel="test perplexity")
    fs.legend(ax, None, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fs.footnote(fig, [*fs.not_shown(missing), *fs.capped_note(runs)])
    return fig


FIGURES: dict[str, Callable[[Path], Figure]] = {
    "perplexity_vs_hidden": perplexity_vs_hidden,
    "learning_curves": learning_curves,
    "grad_norms": grad_norms,
    "perplexity_vs_params": perplexity_vs_params,
}


def reproduction(tables: Path, published: dict[str, dict]) -> Figure:
    """Each experiment's test perplexity against its published number, in percent: one dot
    per seed, the mean ± sd, the ±2% band of config/reproduce.yaml's goal."""
    runs = pd.read_csv(tables / "runs.csv")
    ok, missing = finished(runs, "test_ppl")
    order = [e for e in published if e in set(ok["experiment"])]
    if not order:
        return _nothing(f"no finished run of an experiment with a published number "
                        f"({', '.join(published) or 'none'})", missing)
    runs = ok[ok["experiment"].isin(order)].copy()
    target = runs["experiment"].map({e: published[e]["test_ppl"] for e in order})
    runs["delta_pct"] = 100 * (runs["test_ppl"] / target - 1)
    fig, ax = plt.subplots(figsize=(1.3 + 2.2 * len(order), 3.6), layout="constrained")
    ax.axhspan(-2, 2, color="0.88", zorder=0, label="within 2%", gid="reference")
    ax.axhline(0, color="0.2", linewidth=1, label="published", gid="reference")
    sns.stripplot(runs, x="experiment", y="delta_pct", order=order, ax=ax, size=7,
                  jitter=0.08, color="C0", label="one seed", legend=False)
    stats = runs.groupby("experiment")["test_ppl"].agg(["mean", "count"])
    sns.pointplot(runs, x="experiment", y="delta_pct", order=order, ax=ax, errorbar="sd",
                  linestyle="none", marker="D", markersize=5, color="black", capsize=0.15,
                  label="mean ± sd" if stats["count"].max() > 1 else "mean (one seed)")
    ax.set_xticks(range(len(order)), [
        f"{e}\npublished {published[e]['test_ppl']:g}\n"
        f"ours {stats.loc[e, 'mean']:.1f} (n={stats.loc[e, 'count']})" for e in order])
    bound = max(3.0, runs["delta_pct"].abs().max() * 1.25)
    ax.set_ylim(-bound, bound)
    ax.set_xlabel("")
    ax.set_ylabel("test perplexity vs published (%)")
    fs.legend(ax, None, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fs.footnote(fig, [*fs.not_shown(missing), *fs.capped_note(ok)])
    return fig


def model_comparison(tables: Path) -> Figure:
    """Each model's test perplexity, mean over seeds with its 95% CI (models.csv), one panel
    per experiment, size and depth; a model with one seed is its value alone, one with none
    is named below."""
    models = pd.read_csv(tables / "models.csv")
    done = models[models["n"] > 0] if len(models) else models
    lost = [f"{r['experiment']}/{r['model']} ({r['size']}, {r['layers']} "
            f"layer{'s' * (r['layers'] > 1)}): all {r['n_runs']} diverged"
            for _, r in models[models["n"] == 0].iterrows()] if len(models) else []
    if done.empty:
        return _nothing("no model has a finished run", lost)
    keys = ["corpus", "experiment", "size", "layers"]
    blocks = list(done.groupby(keys, sort=False))
    fig, axes = fs.panel_grid(len(blocks), ncols=2, width=4.6,
                              height=0.9 + 0.45 * done.groupby(keys).size().max())
    for ax, ((_, experiment, size, layers), block) in zip(axes, blocks, strict=True):
        y = np.arange(len(block))[::-1]
        for yi, (_, r) in zip(y, block.iterrows(), strict=True):
            color = SERIES_COLORS.get(r["model"].split("+")[0], "0.3")
            if r["n"] > 1:
                ax.errorbar(r["test_ppl_mean"], yi, color=color, marker="o", capsize=3,
                            xerr=[[r["test_ppl_mean"] - r["test_ppl_ci_low"]],
                                  [r["test_ppl_ci_high"] - r["test_ppl_mean"]]])
            else:
                ax.plot(r["test_ppl_mean"], yi, color=color, marker="D")
        ax.set_yticks(y, [f"{m} (n={n})" for m, n in zip(block["model"], block["n"],
                                                          strict=True)])
        ax.set_title(f"{experiment}: {size}, {layers} layer{'s' * (layers > 1)}")
        ax.set_xlabel("test perplexity (mean, 95% CI over seeds)")
    fs.footnote(fig, [*fs.not_shown(lost), "Diamonds: one seed, no interval."]
                if (done["n"] == 1).any() else fs.not_shown(lost))
    return fig


def tuning_curve(tables: Path) -> Figure:
    """Expected best validation perplexity of n random first-rung trials, n = 1..N, one line
    per model (Dodge et al. 2019); one panel per experiment."""
    from rnnbench.stats import expected_best

    trials = pd.read_csv(tables / "trials.csv")
    first = trials[trials["rung"] == 0]
    done = first[np.isfinite(pd.to_numeric(first["valid_ppl"], errors="coerce"))]
    lost = [f"{r['experiment']}/{r['run_id']}: {r['status']}" for _, r in
            first[~first.index.isin(done.index)].iterrows()]
    if done.empty:
        return _nothing("no first-rung trial finished", lost)
    experiments = list(dict.fromkeys(done["experiment"]))
    fig, axes = fs.panel_grid(len(experiments))
    for ax, experiment in zip(axes, experiments, strict=False):
        block = done[done["experiment"] == experiment]
        for i, (model, rows) in enumerate(block.groupby("model", sort=False)):
            n = np.arange(1, len(rows) + 1)
            best = [expected_best(rows["valid_ppl"].tolist(), int(k)) for k in n]
            color = SERIES_COLORS.get(rows["cell"].iloc[0], f"C{i}")
            ax.plot(n, best, marker=MARKERS[i % len(MARKERS)], color=color, label=model)
        ax.set_title(experiment)
        ax.set_xlabel("trials (first rung)")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_ylabel("expected best validation perplexity")
        fs.legend(ax, "model")
    fs.footnote(fig, fs.not_shown(lost, "Diverged first-rung trials, left out of the "
                                  "expectation:"))
    return fig


def save(figure: Figure | sns.FacetGrid | plt.Axes, png: Path) -> None:
    """Write the PNG and the SVG beside it, each atomically."""
    fig = figure.figure  # a Figure's .figure is itself
    # SVG text stays text (searchable, selectable), not glyph outlines.
    plt.rcParams["svg.fonttype"] = "none"
    for path, fmt in ((png, "png"), (png.with_suffix(".svg"), "svg")):
        write_atomic(path, lambda tmp, f=fmt: fig.savefig(tmp, format=f, dpi=120,
                                                          bbox_inches="tight"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=sorted([*FIGURES, "reproduction", "tuning_curve",
                                                  "model_comparison"]))
    parser.add_argument("--tables", required=True, type=Path, help="folder of the tables")
    parser.add_argument("--out", required=True, type=Path, help="PNG path (SVG beside it)")
    parser.add_argument("--published", default="{}",
                        help="reproduction only; JSON: experiment -> {test_ppl: ...}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sigterm_exits()  # a cancelled job leaves no .tmp beside its figure
    sns.set_theme(style="whitegrid", context="paper")
    if args.figure == "reproduction":
        save(reproduction(args.tables, json.loads(args.published)), args.out)
    elif args.figure == "tuning_curve":  # a tuned config's trials.csv, not runs.csv
        save(tuning_curve(args.tables), args.out)
    elif args.figure == "model_comparison":  # compare_models's models.csv
        save(model_comparison(args.tables), args.out)
    else:
        save(FIGURES[args.figure](args.tables), args.out)
    log.info("wrote %s and .svg", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
