"""Curves over training and over tuning, one line per model (no torch import). Usage::

    python -m rnnbench.figures.draw learning_curves --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/learning_curves.png  # and the .svg

- :func:`learning_curves`: validation perplexity against training tokens seen, the mean over
  seeds with its t-based 95% band, from ``learning_curves.csv``
  (rnnbench.analysis.learning_curves) and, for the runs drawn one by one, ``epochs.csv``;
- :func:`grad_norms`: the global gradient norm over training, from ``grad_norms.csv``;
- :func:`tuning_curve`: expected best validation perplexity of n tuning trials, from
  ``trials.csv`` (Dodge et al. 2019), diverged trials left out and named.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rnnbench.analysis.labels import group_label, size_label  # noqa: E402
from rnnbench.analysis.learning_curves import PANEL, positive, with_status, with_tokens  # noqa: E402
from rnnbench.analysis.stats import expected_best  # noqa: E402
from rnnbench.figures import figstyle as fs  # noqa: E402

MARKERS = ["o", "X", "s", "D", "^", "v", "P", "*"]


def _nothing(what: str, lines: list[str]) -> Figure:
    return fs.note_figure(f"No finished run to plot: {what}.",
                          lines or ["(the tables hold no run)"])


def _size_panels(df: pd.DataFrame, runs: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """Panels per experiment, size (hidden size or budget: one panel for the models of one
    budget, whatever their hidden sizes) and depth, sizes in numeric order."""
    several = runs["experiment"].nunique() > 1 if runs is not None else None
    number = df["size"].str[1:].str.replace("k", "e3").str.replace("M", "e6").astype(float)
    order = list(dict.fromkeys(df.assign(_n=number).sort_values("_n")["size"]))
    df = df.assign(size=pd.Categorical(df["size"], order))
    return fs.with_panels(df, ["size", "layers"], {"size": ""}, experiment=several)


def _dotted_runs(ax: Axes, d: pd.DataFrame, x: str, y: str, color: str, model: str) -> None:
    """Each run of ``d`` that did not finish: dotted, ending in a cross."""
    for _, run in d[d["status"] != "ok"].groupby("run_id"):
        ax.plot(run[x], run[y], linestyle=":", color=color, label=f"{model}, diverged")
        ax.plot(run[x].iloc[-1:], run[y].iloc[-1:], marker="x", color=color, markersize=7)


def grad_norms(tables: Path) -> Figure:
    """Global gradient norm (before normalisation/clipping) over training, log y, one line per
    model (mean of seeds, band its t 95% CI); runs that diverged dotted up to the divergence."""
    runs = fs.read_runs(tables)
    grads = positive(pd.read_csv(tables / "grad_norms.csv"), "grad_norm_median")
    if grads.empty:
        return _nothing("gradient norms (no finite gradient norm recorded)", fs.not_finished(runs))
    df, panels = _size_panels(with_status(grads, runs), runs)
    styles = fs.model_styles(df["model"])
    colors = {m: st.color for m, st in styles.items()}
    fig, axes = fs.panel_grid(len(panels), height=2.8)
    seeds = 1
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        for model in fs.model_order(d["model"]):
            m, color = d[d["model"] == model], colors[model]
            st = fs.ci_stats(m[m["status"] == "ok"], ["progress"], "grad_norm_median")
            st = st.set_index("progress").sort_index()
            if len(st):
                ax.plot(st.index, st["mean"], color=color, label=model,
                        linestyle=styles[model].linestyle)
                low = st["ci_low"].clip(lower=st["mean"] / 10)  # a log axis has no 0
                ax.fill_between(st.index, low, st["ci_high"], color=color, alpha=0.2,
                                linewidth=0)
                seeds = max(seeds, int(st["n"].max()))
            _dotted_runs(ax, m, "progress", "grad_norm_median", color, model)
        ax.set_title(panel)
        fs.legend(ax, "model")
    fs.plain_log_ticks(axes)
    what = "median per bin" + (f"; mean of up to {seeds} seeds of each model, band: t 95% CI"
                               if seeds > 1 else "")
    for ax in axes:
        ax.set(xlabel="share of training",
               ylabel=fs.log_label("global gradient norm") + f"\n({what})")
    fs.footnote(fig, fs.not_shown(fs.not_finished(runs), "Did not finish (dotted, ending in a "
                                  "cross at the last finite bin):"))
    return fig


def _seeds_text(table: pd.DataFrame) -> str:
    """How many seeds a line is, for the footnote."""
    n = table.groupby([*PANEL, "model"])["n"].max()
    if n.max() <= 1:
        return "Lines: one seed per model, no band."
    spread = str(n.max()) if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return f"Lines: mean over {spread} seeds of each model, band: its t 95% CI" + (
        " (none where 1)." if n.min() == 1 else ".")


def learning_curves(tables: Path) -> Figure:
    """Validation perplexity against training tokens seen (log y): one line per model, the
    mean over its finished seeds with the t-based 95% band; one panel per experiment, size and
    depth. Runs that diverged after an epoch dotted, up to their last validation."""
    runs = fs.read_runs(tables)
    epochs = positive(pd.read_csv(tables / "epochs.csv"), "valid_ppl")
    # every float as written (the C parser's default can differ in the last digit); names
    # stay text even where one looks like a number
    table = pd.read_csv(tables / "learning_curves.csv", float_precision="round_trip",
                        dtype={"experiment": str, "size": str, "model": str})
    if epochs.empty:
        return _nothing("validation perplexity per epoch (no run completed an epoch)",
                        fs.not_finished(runs))
    d, panels = _size_panels(with_tokens(with_status(epochs, runs)), runs)
    styles = fs.model_styles(d["model"])
    one = len(panels) == 1  # a single comparison (one budget): room for every model's line
    fig, axes = fs.panel_grid(len(panels), width=5.6 if one else 3.6, height=3.8 if one else 2.8)
    cut = fewer = False
    for ax, panel in zip(axes, panels, strict=True):
        mine = d[d["panel"] == panel]
        first = mine.iloc[0]
        block = table[(table["experiment"] == str(first["experiment"]))
                      & (table["size"] == first["size"]) & (table["layers"] == first["layers"])]
        for model in fs.model_order(mine["model"]):
            line, st = block[block["model"] == model], styles[model]
            runs_of = mine[mine["model"] == model]
            full = _full_prefix(line)
            mean = line.iloc[:full]
            marker = st.marker if len(line) < 30 else None
            ax.plot(mean["tokens"], mean["mean"], color=st.color, linestyle=st.linestyle,
                    label=model, markersize=4, marker=marker)
            low = mean["ci_low"].clip(lower=mean["mean"] / 10)  # a log axis has no 0
            cut |= bool((low > mean["ci_low"]).any())
            ax.fill_between(mean["tokens"], low, mean["ci_high"], color=st.color, alpha=0.2,
                            linewidth=0)
            if full < len(line):
                fewer = True
                _seed_tails(ax, runs_of, float(mean["tokens"].iloc[-1]) if full else -1.0, st)
            _dotted_runs(ax, runs_of, "tokens_seen", "valid_ppl", st.color, model)
        ax.set_title(panel)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(fs.si))
        fs.legend(ax, "model")
    fs.plain_log_ticks(axes)
    for ax in axes:
        ax.set(xlabel="training tokens seen", ylabel=fs.log_label("validation perplexity"))
    fs.footnote(fig, [_seeds_text(table),
                      *(["Bands cut at a tenth of the mean (the interval reaches 0)."]
                        if cut else []),
                      *([fs.wrap(FEWER, 90)] if fewer else []),
                      *fs.not_shown(fs.not_finished(runs), "Did not finish (dotted, ending in a"
                                    " cross, where they completed an epoch):"),
                      *fs.capped_note(runs)])
    return fig


FEWER = ("A mean line ends where its model's first seed stopped (plateau schedule); the thin "
         "faint lines past it are the seeds still training, each on its own, not a mean.")


def _full_prefix(line: pd.DataFrame) -> int:
    """How many of a model's first points pool all its seeds: the mean line ends there."""
    short = np.flatnonzero((line["n"] < line["n"].max()).to_numpy())
    return int(short[0]) if len(short) else len(line)


def _seed_tails(ax: Axes, runs_of: pd.DataFrame, start: float, st: fs.Style) -> None:
    """Each finished seed past ``start`` tokens (where the mean line ends), thin and faint."""
    for _, run in runs_of[runs_of["status"] == "ok"].groupby("run_id"):
        tail = run[run["tokens_seen"] >= start]
        if len(tail) > 1 or (len(tail) == 1 and start < 0):
            ax.plot(tail["tokens_seen"], tail["valid_ppl"], color=st.color, alpha=0.45,
                    linewidth=0.8, linestyle=st.linestyle, gid="seed-tail")


def _left_out(first: pd.DataFrame, vocab: float) -> pd.Series:
    """Why each first-rung trial is left out of the expectation ('' where it is kept): not
    finished, a perplexity that is not a number, or one above the vocabulary size (worse than
    a uniform guess: the trial diverged without a non-finite loss)."""
    ppl = pd.to_numeric(first["valid_ppl"], errors="coerce")
    why = pd.Series("", index=first.index)
    why[first["status"] != "ok"] = first["status"].astype(str)
    why[(why == "") & ~np.isfinite(ppl)] = "no finite validation perplexity"
    if math.isfinite(vocab):
        above = (why == "") & (ppl > vocab)
        why[above] = [f"validation perplexity {p:.3g} > vocabulary size {vocab:g}"
                      for p in ppl[above]]
    return why


def _point(run_id: str, group: str) -> str:
    """A trial's point, from its run id less its model's (``gradclip-lr1``)."""
    common = set(group.split("-"))
    return "-".join(t for t in run_id.split("-") if t not in common
                    and not re.fullmatch(r"rung\d+|s\d+", t))


def _lost_lines(first: pd.DataFrame, why: pd.Series) -> list[str]:
    """The trials left out of the expectation: those that diverged, one line per model with
    their points; any other (a perplexity that is not a number, or above the vocabulary
    size), one line each with its reason."""
    lines = []
    left = first.assign(why=why)[why != ""]
    status = left["why"] == left["status"].astype(str)
    for (experiment, model, reason), block in left[status].groupby(
            ["experiment", "model", "why"], sort=False):
        points = ", ".join(_point(r, g) for r, g in zip(block["run_id"], block["group"],
                                                        strict=True))
        lines.append(fs.wrap(f"{experiment}/{model}: {len(block)} {reason} ({points})", 110))
    lines += [f"{r['experiment']}/{r['run_id']} ({r['model']}): {r['why']}"
              for _, r in left[~status].iterrows()]
    return lines


def tuning_curve(tables: Path) -> Figure:
    """Expected best validation perplexity of n random first-rung trials, n = 1..N, log y, one
    line per model (Dodge et al. 2019); one panel per experiment, size and depth. Diverged
    trials are left out of the expectation and counted (the legend per model; trials.csv
    names them)."""
    trials = pd.read_csv(tables / "trials.csv")
    runs = fs.read_runs(tables)
    vocab = (float(runs["vocab_size"].max()) if runs is not None and "vocab_size" in runs
             else math.nan)
    first = trials[trials["rung"] == 0]
    first = first.assign(group=first["model"], model=first["model"].map(group_label),
                         size=first.apply(size_label, axis=1) if len(first) else "")
    why = _left_out(first, vocab)
    lost = _lost_lines(first, why)
    done = first[why == ""].assign(valid_ppl=lambda d: d["valid_ppl"].astype(float))
    if done.empty:
        return _nothing("no first-rung trial finished", lost)
    done, panels = fs.with_panels(done, ["size", "layers"], {"size": ""},
                                  experiment=True)
    styles = fs.model_styles(done["model"])
    left = first.assign(why=why)
    fig, axes = fs.panel_grid(len(panels), width=4.4, height=3.2)
    for ax, panel in zip(axes, panels, strict=True):
        block = done[done["panel"] == panel]
        for model in fs.model_order(block["model"]):
            ppl = block.loc[block["model"] == model, "valid_ppl"].tolist()
            n = np.arange(1, len(ppl) + 1)
            out = left[(left["experiment"] == block["experiment"].iloc[0])
                       & (left["size"] == block["size"].iloc[0])
                       & (left["layers"] == block["layers"].iloc[0])
                       & (left["model"] == model) & (left["why"] != "")]
            st = styles[model]
            ax.plot(n, [expected_best(ppl, int(k)) for k in n], color=st.color,
                    linestyle=st.linestyle, marker=st.marker, markersize=4,
                    label=f"{model} ({len(ppl)} trials" + (f", {len(out)} left out)"
                                                           if len(out) else ")"))
        ax.set(title=panel, xlabel="trials (first rung)")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=6, integer=True, min_n_ticks=1))
        fs.legend(ax, "model (finished trials)")
    fs.plain_log_ticks(axes)
    for ax in axes:
        ax.set_ylabel(fs.log_label("expected best validation perplexity"))
    fs.footnote(fig, _lost_summary(left))
    return fig


def _lost_summary(left: pd.DataFrame) -> list[str]:
    """One line: how many first-rung trials are left out of the expectation and why (the
    legend gives each model's count; trials.csv names every trial)."""
    out = left[left["why"] != ""]
    if out.empty:
        return []
    diverged = int((out["why"] == out["status"].astype(str)).sum())
    other = len(out) - diverged
    parts = ([f"{diverged} diverged"] if diverged else []) + (
        [f"{other} with no finite perplexity or one above the vocabulary size"] if other else [])
    return [fs.wrap(f"Left out of the expectation: {len(out)} of {len(left)} first-rung trials "
                    f"({', '.join(parts)}); trials.csv lists each.", 80)]
