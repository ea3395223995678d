"""Gradient diagnostics across runs: the figures, drawn from the gradient tables
(rnnbench.analysis.gradtables) alone. No torch import. Usage::

    python -m rnnbench.figures.draw grad_vs_lag --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/grad_vs_lag.png          # also writes the .svg beside it

Each figure draws one curve, box or point per model (rnnbench.analysis.labels), never pooling
a variant into its cell.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rnnbench.analysis.labels import model_rank, with_model  # noqa: E402
from rnnbench.figures import figstyle as fs  # noqa: E402
from rnnbench.figures.figstyle import GATE_BLOCKS, wrap  # noqa: E402

KINDS = ["trained", "init"]
# Legend titles.
CURVE, WEIGHTS = "model (state)", "weights"
# Gate blocks in distinct colours (not shades of one hue, which a reader cannot tell apart).
GATE_COLORS = dict(zip("ifgorzn", sns.color_palette("colorblind", 7).as_hex(), strict=True))
LAYER_DASHES = ["-", "--", ":", "-."]
# Weights x state of grad_vs_lag: trained thick, init thin; the LSTM's c dashed so its h line,
# often right under it, stays visible.
LAG_STYLES = {"trained, h": {"linestyle": "-", "linewidth": 1.8},
              "trained, c": {"linestyle": (0, (5, 2)), "linewidth": 1.8},
              "init, h": {"linestyle": (0, (1, 1.5)), "linewidth": 1.2},
              "init, c": {"linestyle": (0, (4, 1.5, 1, 1.5)), "linewidth": 1.2}}
# grad_vs_lag's y axis ends this many decades below its top: a trained tanh RNN decays by
# ~3 nats per step (10^-135 at lag 100), which would flatten every other curve.
CUT_DECADES = 25


def _depth(df: pd.DataFrame) -> pd.Series:
    """Which layer of which depth: ``1 layer`` or ``2 layers, layer 0`` etc."""
    return np.where(df["layers"] == 1, "1 layer",
                    df["layers"].astype(str) + " layers, layer " + df["layer"].astype(str))


def _series(df: pd.DataFrame) -> pd.Series:
    """Curve name: the model, or ``lstm+fb1 (c)`` for an LSTM's cell state."""
    return np.where(df["state"] == "c", df["model"] + " (c)", df["model"])


def _count(seeds: pd.Series) -> str:
    """``3``, or ``1–3`` where the curves pool different numbers of seeds."""
    low, high = int(seeds.min()), int(seeds.max())
    return str(high) if low == high else f"{low}–{high}"


def _seeds_line(seeds: pd.Series) -> str:
    """What a line of grad_vs_lag is, given the seeds behind each curve."""
    if seeds.max() <= 1:
        return "Lines: one seed of each model."
    return (f"Lines: geometric mean over {_count(seeds)} seeds of each model, band: the t 95% "
            "CI of their mean log norm.")


def _gate_block(df: pd.DataFrame) -> pd.Series:
    """The gate-block panel of each row: ``LSTM gate blocks``, ``LSTM gate blocks, lstm+fb1``
    for a variant (each model's gates apart, never pooled)."""
    block = df["cell"].map(GATE_BLOCKS).fillna("W_hh")
    return np.where(df["model"] == df["cell"], block, block + ", " + df["model"])


def _block_rank(block: str) -> tuple:
    """The whole matrix first, then the LSTM's and the GRU's gates, plain model first."""
    if block == "whole W_hh":
        return (0,)
    kind, _, model = block.partition(", ")
    return (1, list(GATE_BLOCKS.values()).index(kind) if kind in GATE_BLOCKS.values() else 9,
            model_rank(model) if model else (-1, ""))


def _missing_trained(df: pd.DataFrame, runs: pd.DataFrame | None) -> list[str]:
    """A note per run measured at initialisation only (it diverged before any validation)."""
    kinds = df.groupby(["experiment", "run_id"])["kind"].agg(set)
    steps = ({} if runs is None else
             runs.set_index(["experiment", "run_id"])["diverged_step"].dropna().to_dict())
    lines = [f"{e}/{r}: init only" + (f" (diverged at step {int(steps[e, r])})"
                                      if (e, r) in steps else "")
             for (e, r), k in kinds.items() if "trained" not in k]
    return fs.not_shown(lines, "No trained weights (no validation before divergence):")


def _nothing(what: str, tables: Path) -> Figure:
    lines = fs.not_finished(fs.read_runs(tables))
    return fs.note_figure(f"Nothing to plot: {what}.", lines or ["(the tables hold no row)"])


def _style_legends(ax: Axes, colors: dict[str, str], styles: dict[str, dict]) -> None:
    """One legend beside a panel, outside its curves: the colours of its curves, then its
    line styles."""
    handles = [Line2D([], [], color=c, linewidth=2) for c in colors.values()]
    handles += [Line2D([], [], color="0.2", **st) for st in styles.values()]
    ax.legend(handles, [*colors, *styles], fontsize=6.5, title=f"{CURVE};\n{WEIGHTS}, state",
              title_fontsize=6.5, **fs.OUTSIDE)


def grad_vs_lag(tables: Path) -> Figure:
    """Gradient norm vs lag (log y, cut CUT_DECADES below the top): one panel per experiment,
    size and layer present; colour the model (LSTM c apart), line style weights/state."""
    df = with_model(pd.read_csv(tables / "grad_through_time.csv"))
    # Lags where some norm was an exact zero or underflowed are dropped, as in the decay fit.
    df = df[(df["frac_floored"] == 0) & np.isfinite(df["log_grad_norm"])]
    if df.empty:
        return _nothing("no finite gradient norm through time", tables)
    df = df.assign(norm=np.exp(df["log_grad_norm"]), depth=_depth, series=_series,
                   style=lambda d: d["kind"] + ", " + d["state"])
    df, panels = fs.with_panels(df, ["size", "depth"], {"size": "", "depth": ""})
    fig, axes = fs.panel_grid(len(panels), width=4.4, height=3.2)
    seeds = df.groupby(["panel", "series", "style"])["run_id"].nunique()
    colors = fs.model_colors(df["series"])
    below_axis: list[str] = []  # the curves that leave a panel's axis, one line per panel
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        top = d["norm"].max() * 3
        floor = max(d["norm"].min() / 3, top * 10.0**-CUT_DECADES)
        left: list[str] = []
        for series in fs.model_order(d["series"]):
            for style in fs.present(LAG_STYLES, d["style"]):
                c = d[(d["series"] == series) & (d["style"] == style)]
                if c.empty:
                    continue
                st = fs.ci_stats(c, ["lag"], "log_grad_norm").set_index("lag").sort_index()
                color = colors[series]
                ax.plot(st.index, np.exp(st["mean"]), color=color, **LAG_STYLES[style])
                if seeds[panel, series, style] > 1:
                    ax.fill_between(st.index, np.exp(st["ci_low"]), np.exp(st["ci_high"]),
                                    color=color, alpha=0.15, linewidth=0)
                below = st.index[np.exp(st["mean"]) < floor]
                if len(below):
                    left.append(f"{series} ({style.split(',')[0]}) at lag {below[0]}")
        if left:
            below_axis.append(f"{panel}: " + "; ".join(left))
        ax.set(yscale="log", ylim=(floor, top), title=panel,
               xlabel="lag $k$ (steps back from the loss)")
        _style_legends(ax, {s: colors[s] for s in fs.model_order(d["series"])},
                       {s: LAG_STYLES[s] for s in fs.present(LAG_STYLES, d["style"])})
    fs.decade_ticks(axes)
    for ax in axes:
        ax.set_ylabel(fs.log_label(r"$\|\partial\ell_t / \partial h_{t-k}\|$"))
    fs.footnote(fig, [_seeds_line(seeds),
                      f"Each y axis ends {CUT_DECADES} decades below its top; below the axis:"
                      if below_axis else f"Each y axis ends {CUT_DECADES} decades below its top.",
                      *[wrap(line, 90) for line in below_axis],
                      *_missing_trained(df, fs.read_runs(tables))])
    return fig


def grad_norm_distribution(tables: Path) -> Figure:
    """Per-step global gradient norms (quantile samples): one box per cell and depth, one panel
    per experiment and size present."""
    df = with_model(pd.read_csv(tables / "grad_steps.csv")).dropna(subset=["grad_norm"])
    df = df[np.isfinite(df["grad_norm"]) & (df["grad_norm"] > 0)]
    if df.empty:
        return _nothing("no finite per-step gradient norm", tables)
    df, panels = fs.with_panels(df, ["size"], {"size": ""})
    colors = fs.model_colors(df["model"])
    fig, axes = fs.panel_grid(len(panels), width=3.4, height=3.2)
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        depths = d["layers"].nunique() > 1
        boxes = [(model, layers) for model in fs.model_order(d["model"])
                 for layers in sorted(d.loc[d["model"] == model, "layers"].unique())]
        art = ax.boxplot([d[(d["model"] == m) & (d["layers"] == n)]["grad_norm"]
                          for m, n in boxes],
                         tick_labels=[f"{c}\n{n} layers" if depths else c for c, n in boxes],
                         patch_artist=True, widths=0.6, flierprops={"markersize": 1.5},
                         medianprops={"color": "black"})
        for patch, (model, _) in zip(art["boxes"], boxes, strict=True):
            patch.set(facecolor=colors[model], alpha=0.6)
        ax.set(title=panel)
    fs.plain_log_ticks(axes)
    runs = df.groupby(["panel", "model", "layers"])["run_id"].nunique()
    pooled = (f", {_count(runs)} seeds of each model pooled" if runs.max() > 1 else "")
    for ax in axes:
        ax.set_ylabel(fs.log_label("global gradient norm per step")
                      + f"\n(before normalising or clipping{pooled})")
    fs.footnote(fig, fs.not_shown(fs.not_finished(fs.read_runs(tables)),
                                  "Did not finish (their steps up to the divergence are in):"))
    return fig


def grad_spectra(tables: Path) -> Figure:
    """sigma_max of W_hh per epoch: one panel per experiment, size and block (whole matrix;
    LSTM/GRU gate blocks) present, each with its own legend; dotted line at 1."""
    df = pd.read_csv(tables / "spectra.csv")
    # minGRU/minLSTM runs write no rows (no W_hh): a table of them alone has no such column
    df = with_model(df).dropna(subset=["sigma_max"]) if "sigma_max" in df else df.iloc[0:0]
    if df.empty:
        return _nothing("no singular values recorded", tables)
    df = df.assign(block=np.where(df["gate"] == "all", "whole W_hh", _gate_block(df)),
                   curve=np.where(df["gate"] == "all", df["model"], df["gate"]))
    order = sorted(set(df["block"]), key=_block_rank)  # whole matrix, then each model's gates
    df["block"] = pd.Categorical(df["block"], order)
    colors = fs.model_colors(df.loc[df["gate"] == "all", "model"])
    df, panels = fs.with_panels(df, ["size", "layers", "block"], {"size": "", "block": ""})
    fig, axes = fs.panel_grid(len(panels), height=3.0)
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        layered = d["layers"].iloc[0] > 1
        for curve in [*fs.model_order(set(d["curve"]) - set(GATE_COLORS)),
                      *fs.present(GATE_COLORS, d["curve"])]:
            color = GATE_COLORS[curve] if curve in GATE_COLORS else colors[curve]
            for layer, c in d[d["curve"] == curve].groupby("layer"):
                st = fs.ci_stats(c, ["epoch"], "sigma_max").set_index("epoch").sort_index()
                ax.plot(st.index, st["mean"], marker="o", markersize=3, color=color,
                        linestyle=LAYER_DASHES[layer % len(LAYER_DASHES)],
                        label=f"{curve}, layer {layer}" if layered else curve)
                ax.fill_between(st.index, st["ci_low"], st["ci_high"], color=color, alpha=0.15,
                                linewidth=0)
        ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1, gid="reference")
        epochs = sorted(d["epoch"].unique())
        every = max(1, math.ceil(len(epochs) / 8))  # at most 8 labels: none run together
        ax.set_xticks(epochs, ["init" if e < 0 else str(e) if i % every == 0 else ""
                               for i, e in enumerate(epochs)])
        ax.set(title=panel, xlabel="after epoch", ylabel="largest singular value")
        fs.legend(ax, "gate" if "gate" in panel else "model")
    fs.footnote(fig, ["Band: the t 95% CI of the mean over seeds where there are several.",
                      *fs.not_shown(fs.not_finished(fs.read_runs(tables)),
                                    "Did not finish (values up to the divergence included):")])
    return fig


def grad_decay_rate_vs_hidden(tables: Path) -> Figure:
    """Fitted log-norm decay per step vs hidden size (one column per size, points dodged):
    colour the cell (LSTM c apart), filled circle trained, cross init; a panel per depth."""
    df = with_model(pd.read_csv(tables / "grad_decay.csv"))
    df = df[np.isfinite(df["decay_rate"])]
    if df.empty:
        return _nothing("no finite decay rate", tables)
    df = df.assign(depth=_depth, key=lambda d: _series(d) + ", " + d["kind"])
    df, panels = fs.with_panels(df, ["depth"], {"depth": ""})
    series = fs.model_order(_series(df))
    styles = {f"{s}, {k}": {"color": c, "marker": "o" if k == "trained" else "X",
                            "label": f"{s}, {k}"}
              for s, c in fs.model_colors(series).items() for k in KINDS}
    styles = {k: styles[k] for k in (f"{s}, {k}" for s in series for k in KINDS)}
    fig, axes = fs.panel_grid(len(panels), width=3.8, height=3.2)
    counts = []
    for ax, panel in zip(axes, panels, strict=True):
        counts.append(fs.dodged_points(ax, df[df["panel"] == panel], "hidden", "decay_rate",
                                       "key", styles))
        ax.axhline(0.0, color="0.3", linestyle=":", linewidth=1, gid="reference")
        ax.set(title=panel, xlabel="hidden size")
        fs.legend(ax, f"{CURVE}, {WEIGHTS}", loc="upper center", bbox_to_anchor=(0.5, -0.4),
                  ncols=2)
    for ax in axes:
        ax.set_ylabel("decay rate per step\n(" + fs.spread(pd.concat(counts)) + ")")
    fs.footnote(fig, _missing_trained(df, fs.read_runs(tables)))
    return fig
