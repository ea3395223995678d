"""Perplexity figures, drawn from the tables alone, so they regenerate without retraining:
against hidden size and parameter count (runs.csv), against published numbers, and the model
comparison (models.csv). Usage::

    python -m rnnbench.figures.draw perplexity_vs_hidden --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/perplexity_vs_hidden.png  # and the .svg
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rnnbench.analysis.labels import with_model  # noqa: E402
from rnnbench.figures import curves  # noqa: E402
from rnnbench.figures import figstyle as fs  # noqa: E402

MARKERS = curves.MARKERS


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
    count present; one colour and marker per model, the mean over the seeds that finished with
    its t 95% CI."""
    runs = with_model(pd.read_csv(tables / "runs.csv"))
    ok, missing = finished(runs, "test_ppl")
    if ok.empty:
        return _nothing("test perplexity against hidden size", missing)
    # name the experiment when the config has several, even if one has finished runs
    ok, panels = fs.with_panels(ok, ["layers"], experiment=runs["experiment"].nunique() > 1)
    fig, axes = fs.panel_grid(len(panels))
    styles = {m: {"color": st.color, "marker": st.marker, "linestyle": st.linestyle, "label": m}
              for m, st in fs.model_styles(ok["model"]).items()}
    counts = []
    for ax, panel in zip(axes, panels, strict=True):
        counts.append(fs.dodged_points(ax, ok[ok["panel"] == panel], "hidden", "test_ppl",
                                       "model", styles))
        ax.set(title=panel, xlabel="hidden size")
        fs.legend(ax, "model")
    for ax in axes:
        ax.set_ylabel(f"test perplexity\n({fs.spread(pd.concat(counts))})")
    fs.footnote(fig, [*fs.not_shown(missing), *fs.capped_note(runs)])
    return fig


def perplexity_vs_params(tables: Path) -> Figure:
    """Test perplexity against parameter count, one dot per finished run; colour model, marker
    layers (or, with several experiments, experiment), all in one panel."""
    runs = with_model(pd.read_csv(tables / "runs.csv"))
    ok, missing = finished(runs, "test_ppl")
    if ok.empty:
        return _nothing("test perplexity against parameter count", missing)
    style = "experiment" if runs["experiment"].nunique() > 1 else "layers"
    markers = dict(zip(dict.fromkeys(ok[style]), MARKERS * 4, strict=False))
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    colors = fs.model_colors(ok["model"])
    for (model, value), d in ok.groupby(["model", style], sort=False):
        ax.scatter(d["params"], d["test_ppl"], color=colors[model], s=40, alpha=0.85,
                   marker=markers[value], label=f"{model}, {style} {value}", edgecolor="white")
    is_log = fs.count_axis(ax, ok["params"])
    label = "trainable parameters"
    ax.set(xlabel=fs.log_label(label) if is_log else label, ylabel="test perplexity")
    fs.legend(ax, None, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fs.footnote(fig, [*fs.not_shown(missing), *fs.capped_note(runs)])
    return fig


def reproduction(tables: Path, published: dict[str, dict]) -> Figure:
    """Each experiment's test perplexity against its published number, in percent: one dot
    per seed, the mean with its t 95% CI, the ±2% band of config/reproduce.yaml's goal."""
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
    for i, experiment in enumerate(order):  # the seeds side by side, the same every build
        seeds = runs.loc[runs["experiment"] == experiment, "delta_pct"].to_numpy()
        # left of the mean and its interval (at x = i), so no seed hides behind them
        spread = np.linspace(-0.22, -0.08, len(seeds)) if len(seeds) > 1 else np.full(1, -0.12)
        ax.scatter(i + spread, seeds, s=49, color="C0", label="one seed" if i == 0 else None,
                   zorder=3)
    stats = runs.groupby("experiment")["test_ppl"].agg(["mean", "count"])
    ci = fs.ci_stats(runs, ["experiment"], "delta_pct").set_index("experiment").loc[order]
    ax.errorbar(range(len(order)), ci["mean"], marker="D", markersize=5, color="black",
                capsize=4, linestyle="none", zorder=4,
                yerr=[(ci["mean"] - ci["ci_low"]).fillna(0.0),
                      (ci["ci_high"] - ci["mean"]).fillna(0.0)],
                label=f"mean, {fs.INTERVAL}" if stats["count"].max() > 1 else "mean (one seed)")
    ax.set_xticks(range(len(order)), [
        f"{e}\npublished {published[e]['test_ppl']:g}\n"
        f"ours {stats.loc[e, 'mean']:.1f} (n={stats.loc[e, 'count']})" for e in order])
    # every seed and every interval in view
    bound = max(3.0, runs["delta_pct"].abs().max() * 1.25,
                ci[["ci_low", "ci_high"]].abs().max().max() * 1.1)
    ax.set_ylim(-bound, bound)
    ax.set_xlabel("")
    ax.set_ylabel("test perplexity vs published (%)")
    fs.legend(ax, None, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fs.footnote(fig, [*fs.not_shown(missing), *fs.capped_note(ok)])
    return fig


def _seed_values(tables: Path) -> pd.DataFrame:
    """The finished runs' test perplexities of runs.csv (none when the folder has no runs.csv),
    with the keys of models.csv, for the seeds' dots of :func:`model_comparison`."""
    runs = fs.read_runs(tables)
    if runs is None or runs.empty:
        return pd.DataFrame(columns=["experiment", "size", "layers", "model", "test_ppl"])
    ok, _ = finished(with_model(runs), "test_ppl")
    return ok.assign(test_ppl=ok["test_ppl"].astype(float))


def _seed_dots(ax, seeds: pd.DataFrame, yi: float, style: fs.Style) -> None:
    """One small dot per seed, spread a little up and down so that equal values stay apart."""
    if seeds.empty:
        return
    jitter = np.linspace(-0.18, 0.18, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    ax.scatter(seeds.to_numpy(), yi + jitter, s=14, color=style.color, alpha=0.55,
               marker=style.marker, linewidths=0, zorder=3, gid="seed")


def model_comparison(tables: Path) -> Figure:
    """Each model's test perplexity, mean over seeds with its 95% CI (models.csv) and each
    finished seed as a dot (runs.csv), one panel per experiment, size and depth; a model with
    one seed is its value alone, one with none is named below."""
    models = pd.read_csv(tables / "models.csv")
    done = models[models["n"] > 0] if len(models) else models
    lost = [f"{r['experiment']}/{r['model']} ({r['size']}, {r['layers']} "
            f"layer{'s' * (r['layers'] > 1)}): all {r['n_runs']} diverged"
            for _, r in models[models["n"] == 0].iterrows()] if len(models) else []
    if done.empty:
        return _nothing("no model has a finished run", lost)
    seeds = _seed_values(tables)
    keys = ["corpus", "experiment", "size", "layers"]
    blocks = list(done.groupby(keys, sort=False))
    styles = fs.model_styles(done["model"])
    fig, axes = fs.panel_grid(len(blocks), ncols=2, width=4.6,
                              height=0.9 + 0.45 * done.groupby(keys).size().max())
    dots = False
    for ax, ((_, experiment, size, layers), block) in zip(axes, blocks, strict=True):
        y = np.arange(len(block))[::-1]
        mine = seeds[(seeds["experiment"] == experiment) & (seeds["size"] == size)
                     & (seeds["layers"] == layers)]
        for yi, (_, r) in zip(y, block.iterrows(), strict=True):
            st = styles[r["model"]]
            values = mine.loc[mine["model"] == r["model"], "test_ppl"]
            if r["n"] > 1:
                _seed_dots(ax, values, yi, st)
                dots |= not values.empty
                ax.errorbar(r["test_ppl_mean"], yi, color=st.color, marker=st.marker,
                            markersize=7, capsize=4, linewidth=1.6, zorder=4,
                            markeredgecolor="white", markeredgewidth=0.6,
                            xerr=[[r["test_ppl_mean"] - r["test_ppl_ci_low"]],
                                  [r["test_ppl_ci_high"] - r["test_ppl_mean"]]])
            else:
                ax.plot(r["test_ppl_mean"], yi, color=st.color, marker="D")
        ax.set_yticks(y, [f"{m} (n={n})" for m, n in zip(block["model"], block["n"],
                                                          strict=True)])
        ax.set_title(f"{experiment}: {size}, {layers} layer{'s' * (layers > 1)}")
        ax.set_xlabel(f"test perplexity (mean, {fs.INTERVAL} over its seeds)")
    notes = (["Large marker and bar: the mean and its t 95% CI; small dots: each seed."]
             if dots else [])
    if (done["n"] == 1).any():
        notes.append("Diamonds: one seed, no interval.")
    fs.footnote(fig, [*fs.not_shown(lost), *notes])
    return fig
