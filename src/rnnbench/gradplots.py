"""Gradient diagnostics across runs: tables from the run folders, figures from the tables.

No torch import. Usage::

    python -m rnnbench.gradplots collect --out-dir results/studies/grid/tables results/runs/grid/*/
    python -m rnnbench.gradplots grad_vs_lag --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/grad_vs_lag.png          # also writes the .svg beside it

``collect`` writes, each with the run labels ``experiment, run_id, cell, hidden, layers,
seed`` first: ``grad_through_time.csv`` (every run's gradients.csv), ``grad_decay.csv``
(every run's decay.csv), ``spectra.csv`` (every run's spectra.csv) and ``grad_steps.csv``
(per run, ``STEP_QUANTILES + 1`` evenly spaced quantiles of the finite per-step global
gradient norms, min and max included: a fixed-size sample of the distribution however long
the run, with ``n_steps`` and ``n_nonfinite``).
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rnnbench import figstyle as fs  # noqa: E402
from rnnbench.figstyle import CELL_ORDER, SERIES_COLORS, SERIES_ORDER, wrap  # noqa: E402
from rnnbench.io import sigterm_exits, write_csv  # noqa: E402
from rnnbench.plots import save  # noqa: E402  (PNG + SVG, atomically)

log = logging.getLogger(__name__)
LABELS = ["corpus", "experiment", "run_id", "cell", "hidden", "layers", "seed"]
STEP_QUANTILES = 200
TABLES = {"gradients.csv": "grad_through_time.csv", "decay.csv": "grad_decay.csv",
          "spectra.csv": "spectra.csv"}
KINDS = ["trained", "init"]
# Legend titles.
CURVE, WEIGHTS = "cell (state)", "weights"
BLOCKS = {"rnn_tanh": "W_hh", "rnn_relu": "W_hh", "lstm": "LSTM gate blocks",
          "gru": "GRU gate blocks"}
BLOCKS_ORDER = ["whole W_hh", "LSTM gate blocks", "GRU gate blocks"]
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


# -- tables ------------------------------------------------------------------------------------
def run_labels(run_dir: Path) -> dict:
    """The corpus (published reference runs predate train.json's: they are all PTB),
    ``experiment`` (the parent folder's name) and the run's id and grid coordinates."""
    meta = json.loads((run_dir / "train.json").read_text())
    cfg = meta["config"]
    return {"corpus": meta.get("corpus", "ptb"), "experiment": run_dir.parent.name,
            "run_id": meta["run_id"], **{k: cfg[k] for k in LABELS[3:]}}


def labelled(frame: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """``frame`` with the label columns (re)set to ``labels`` and put first."""
    rest = frame.drop(columns=[c for c in LABELS if c in frame.columns])
    return pd.concat([pd.DataFrame({k: [v] * len(rest) for k, v in labels.items()},
                                   index=rest.index), rest], axis=1)


def step_quantiles(run_dir: Path, quantiles: int = STEP_QUANTILES) -> pd.DataFrame:
    """Evenly spaced quantiles (0, 1/q, ..., 1) of the run's finite per-step global norms.

    A published reference run keeps no per-step file, only the grad_quantiles.csv that
    publishing wrote with this same function.
    """
    if not (run_dir / "steps.csv.gz").exists():
        return pd.read_csv(run_dir / "grad_quantiles.csv")
    norms = pd.read_csv(run_dir / "steps.csv.gz", usecols=["grad_norm"])["grad_norm"]
    finite = norms[np.isfinite(norms)].to_numpy()
    levels = np.linspace(0.0, 1.0, quantiles + 1)
    values = np.quantile(finite, levels) if len(finite) else np.full(len(levels), np.nan)
    return pd.DataFrame({"quantile": levels, "grad_norm": values, "n_steps": len(norms),
                         "n_nonfinite": len(norms) - len(finite)})


def collect(run_dirs: list[Path], out_dir: Path) -> dict[str, pd.DataFrame]:
    """Concatenate every run's gradient files into the tables; write and return them."""
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in
                                            [*TABLES.values(), "grad_steps.csv"]}
    for run_dir in run_dirs:
        labels = run_labels(run_dir)
        for source, table in TABLES.items():
            parts[table].append(labelled(pd.read_csv(run_dir / source), labels))
        parts["grad_steps.csv"].append(labelled(step_quantiles(run_dir), labels))
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    for name, frame in tables.items():
        write_csv(frame, out_dir / name)
    return tables


# -- figures -----------------------------------------------------------------------------------
def _depth(df: pd.DataFrame) -> pd.Series:
    """Which layer of which depth: ``1 layer`` or ``2 layers, layer 0`` etc."""
    return np.where(df["layers"] == 1, "1 layer",
                    df["layers"].astype(str) + " layers, layer " + df["layer"].astype(str))


def _series(df: pd.DataFrame) -> pd.Series:
    """Curve name: the cell, or ``lstm (c)`` for the LSTM's cell state."""
    return np.where(df["state"] == "c", df["cell"] + " (c)", df["cell"])


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
    """One legend in a panel (lower left, where decaying curves leave room): the colours of
    its curves, then its line styles."""
    handles = [Line2D([], [], color=c, linewidth=2) for c in colors.values()]
    handles += [Line2D([], [], color="0.2", **st) for st in styles.values()]
    ax.legend(handles, [*colors, *styles], fontsize=6.5, loc="lower left", ncols=2,
              title=f"{CURVE}; {WEIGHTS}, state", title_fontsize=6.5)


def grad_vs_lag(tables: Path) -> Figure:
    """Gradient norm vs lag (log y, cut CUT_DECADES below the top): one panel per experiment,
    hidden size and layer present; colour the cell (LSTM c apart), line style weights/state."""
    df = pd.read_csv(tables / "grad_through_time.csv")
    # Lags where some norm was an exact zero or underflowed are dropped, as in the decay fit.
    df = df[(df["frac_floored"] == 0) & np.isfinite(df["log_grad_norm"])]
    if df.empty:
        return _nothing("no finite gradient norm through time", tables)
    df = df.assign(norm=np.exp(df["log_grad_norm"]), depth=_depth, series=_series,
                   style=lambda d: d["kind"] + ", " + d["state"])
    df, panels = fs.with_panels(df, ["hidden", "depth"], {"depth": ""})
    fig, axes = fs.panel_grid(len(panels), height=3.2)
    seeds = df.groupby(["panel", "series", "style"])["run_id"].nunique()
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        top = d["norm"].max() * 3
        floor = max(d["norm"].min() / 3, top * 10.0**-CUT_DECADES)
        left = []
        for series in fs.present(SERIES_ORDER, d["series"]):
            for style in fs.present(LAG_STYLES, d["style"]):
                c = d[(d["series"] == series) & (d["style"] == style)]
                if c.empty:
                    continue
                st = c.groupby("lag")["log_grad_norm"].agg(["mean", "min", "max"])
                color = SERIES_COLORS[series]
                ax.plot(st.index, np.exp(st["mean"]), color=color, **LAG_STYLES[style])
                if seeds[panel, series, style] > 1:
                    ax.fill_between(st.index, np.exp(st["min"]), np.exp(st["max"]), color=color,
                                    alpha=0.15, linewidth=0)
                below = st.index[np.exp(st["mean"]) < floor]
                if len(below):
                    left.append(f"{series} ({style.split(',')[0]}) at lag {below[0]}")
        ax.set(yscale="log", ylim=(floor, top), title=panel,
               xlabel="lag $k$ (steps back from the loss)")
        if left:
            ax.text(0.98, 0.98, wrap("below the axis: " + "; ".join(left), 40), fontsize=6.5,
                    transform=ax.transAxes, va="top", ha="right", color="0.3")
        _style_legends(ax, {s: SERIES_COLORS[s] for s in fs.present(SERIES_ORDER, d["series"])},
                       {s: LAG_STYLES[s] for s in fs.present(LAG_STYLES, d["style"])})
    fs.decade_ticks(axes)
    for ax in axes:
        ax.set_ylabel(fs.log_label(r"$\|\partial\ell_t / \partial h_{t-k}\|$"))
    n = int(seeds.max())
    fs.footnote(fig, [(f"Lines: geometric mean over up to {n} seeds, band: their range."
                       if n > 1 else "Lines: one seed each."),
                      f"Each y axis ends {CUT_DECADES} decades below its top; a curve that "
                      "falls below it is named in its panel.",
                      *_missing_trained(df, fs.read_runs(tables))])
    return fig


def grad_norm_distribution(tables: Path) -> Figure:
    """Per-step global gradient norms (quantile samples): one box per cell and depth, one panel
    per experiment and hidden size present."""
    df = pd.read_csv(tables / "grad_steps.csv").dropna(subset=["grad_norm"])
    df = df[np.isfinite(df["grad_norm"]) & (df["grad_norm"] > 0)]
    if df.empty:
        return _nothing("no finite per-step gradient norm", tables)
    df, panels = fs.with_panels(df, ["hidden"])
    fig, axes = fs.panel_grid(len(panels), width=3.4, height=3.2)
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        depths = d["layers"].nunique() > 1
        boxes = [(cell, layers) for cell in fs.present(CELL_ORDER, d["cell"])
                 for layers in sorted(d.loc[d["cell"] == cell, "layers"].unique())]
        art = ax.boxplot([d[(d["cell"] == c) & (d["layers"] == n)]["grad_norm"] for c, n in boxes],
                         tick_labels=[f"{c}\n{n} layers" if depths else c for c, n in boxes],
                         patch_artist=True, widths=0.6, flierprops={"markersize": 1.5},
                         medianprops={"color": "black"})
        for patch, (cell, _) in zip(art["boxes"], boxes, strict=True):
            patch.set(facecolor=SERIES_COLORS[cell], alpha=0.6)
        ax.set(title=panel)
    fs.plain_log_ticks(axes)
    runs = df.groupby(["panel", "cell", "layers"])["run_id"].nunique()
    pooled = f", {int(runs.max())} seeds pooled" if runs.max() > 1 else ""
    for ax in axes:
        ax.set_ylabel(fs.log_label("global gradient norm per step")
                      + f"\n(before normalising or clipping{pooled})")
    fs.footnote(fig, fs.not_shown(fs.not_finished(fs.read_runs(tables)),
                                  "Did not finish (their steps up to the divergence are in):"))
    return fig


def grad_spectra(tables: Path) -> Figure:
    """sigma_max of W_hh per epoch: one panel per experiment, size and block (whole matrix;
    LSTM/GRU gate blocks) present, each with its own legend; dotted line at 1."""
    df = pd.read_csv(tables / "spectra.csv").dropna(subset=["sigma_max"])
    if df.empty:
        return _nothing("no singular values recorded", tables)
    df = df.assign(block=np.where(df["gate"] == "all", "whole W_hh", df["cell"].map(BLOCKS)),
                   curve=np.where(df["gate"] == "all", df["cell"], df["gate"]))
    df["block"] = pd.Categorical(df["block"], BLOCKS_ORDER)  # whole matrix first
    df, panels = fs.with_panels(df, ["hidden", "layers", "block"], {"block": ""})
    fig, axes = fs.panel_grid(len(panels), height=3.0)
    for ax, panel in zip(axes, panels, strict=True):
        d = df[df["panel"] == panel]
        layered = d["layers"].iloc[0] > 1
        for curve in fs.present([*CELL_ORDER, *GATE_COLORS], d["curve"]):
            color = SERIES_COLORS[curve] if curve in SERIES_COLORS else GATE_COLORS[curve]
            for layer, c in d[d["curve"] == curve].groupby("layer"):
                st = c.groupby("epoch")["sigma_max"].agg(["mean", "min", "max"])
                ax.plot(st.index, st["mean"], marker="o", markersize=3, color=color,
                        linestyle=LAYER_DASHES[layer % len(LAYER_DASHES)],
                        label=f"{curve}, layer {layer}" if layered else curve)
                ax.fill_between(st.index, st["min"], st["max"], color=color, alpha=0.15,
                                linewidth=0)
        ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1, gid="reference")
        epochs = sorted(d["epoch"].unique())
        ax.set_xticks(epochs, ["init" if e < 0 else str(e) for e in epochs])
        ax.set(title=panel, xlabel="after epoch", ylabel="largest singular value")
        fs.legend(ax, "gate" if "gate" in panel else "cell", loc="best", ncols=2)
    fs.footnote(fig, ["Band: range over seeds where there are several.",
                      *fs.not_shown(fs.not_finished(fs.read_runs(tables)),
                                    "Did not finish (values up to the divergence included):")])
    return fig


def grad_decay_rate_vs_hidden(tables: Path) -> Figure:
    """Fitted log-norm decay per step vs hidden size (one column per size, points dodged):
    colour the cell (LSTM c apart), filled circle trained, cross init; a panel per depth."""
    df = pd.read_csv(tables / "grad_decay.csv")
    df = df[np.isfinite(df["decay_rate"])]
    if df.empty:
        return _nothing("no finite decay rate", tables)
    df = df.assign(depth=_depth, key=lambda d: _series(d) + ", " + d["kind"])
    df, panels = fs.with_panels(df, ["depth"], {"depth": ""})
    styles = {f"{s}, {k}": {"color": SERIES_COLORS[s], "marker": "o" if k == "trained" else "X",
                            "label": f"{s}, {k}"} for s in SERIES_ORDER for k in KINDS}
    fig, axes = fs.panel_grid(len(panels), width=3.8, height=3.2)
    counts = []
    for ax, panel in zip(axes, panels, strict=True):
        counts.append(fs.dodged_points(ax, df[df["panel"] == panel], "hidden", "decay_rate",
                                       "key", styles))
        ax.axhline(0.0, color="0.3", linestyle=":", linewidth=1, gid="reference")
        ax.set(title=panel, xlabel="hidden size")
        fs.legend(ax, f"{CURVE}, {WEIGHTS}", loc="upper center", bbox_to_anchor=(0.5, -0.3),
                  ncols=2)
    for ax in axes:
        ax.set_ylabel("decay rate per step\n(" + fs.spread(pd.concat(counts)) + ")")
    fs.footnote(fig, _missing_trained(df, fs.read_runs(tables)))
    return fig


FIGURES: dict[str, Callable[[Path], Figure]] = {
    "grad_vs_lag": grad_vs_lag,
    "grad_norm_distribution": grad_norm_distribution,
    "grad_spectra": grad_spectra,
    "grad_decay_rate_vs_hidden": grad_decay_rate_vs_hidden,
}


def plot(name: str, tables: Path, png: Path) -> None:
    """Build figure ``name`` from the tables in ``tables`` and save it (PNG and SVG)."""
    sns.set_theme(style="whitegrid", context="paper")
    save(FIGURES[name](tables), png)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``collect`` or one figure's name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    col = sub.add_parser("collect", help="concatenate the runs' gradient files into tables")
    col.add_argument("runs", nargs="+", type=Path, help="run folders")
    col.add_argument("--out-dir", required=True, type=Path)
    for name, func in FIGURES.items():
        fig = sub.add_parser(name, help=func.__doc__)
        fig.add_argument("--tables", required=True, type=Path, help="folder of the tables")
        fig.add_argument("--out", required=True, type=Path, help="PNG path (SVG beside it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sigterm_exits()  # a cancelled job leaves no .tmp beside its figure
    if args.command == "collect":
        tables = collect(args.runs, args.out_dir)
        log.info("%d runs -> %s (%s)", len(args.runs), args.out_dir, ", ".join(tables))
    else:
        plot(args.command, args.tables, args.out)
        log.info("wrote %s and .svg", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
