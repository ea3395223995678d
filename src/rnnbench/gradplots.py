"""Gradient diagnostics across runs: tables from the run folders, figures from the tables.

No torch import. Usage::

    python -m rnnbench.gradplots collect --out-dir results/tables results/runs/grid/*/
    python -m rnnbench.gradplots grad_vs_lag --tables results/tables \\
        --out results/figures/grad_vs_lag.png          # also writes the .svg beside it

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
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from rnnbench.io import write_atomic  # noqa: E402
from rnnbench.plots import save  # noqa: E402  (PNG + SVG, atomically)

log = logging.getLogger(__name__)
LABELS = ["experiment", "run_id", "cell", "hidden", "layers", "seed"]
CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
STEP_QUANTILES = 200
TABLES = {"gradients.csv": "grad_through_time.csv", "decay.csv": "grad_decay.csv",
          "spectra.csv": "spectra.csv"}
# Curves: the cells, plus the LSTM's cell state as a series of its own.
SERIES_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "lstm (c)", "gru"]
GATE_ORDER = ["all", "i", "f", "g", "o", "r", "z", "n"]
KINDS = ["trained", "init"]
# Legend titles, used as column names of the plotted frames.
CURVE, WEIGHTS, GATE_CURVE, LAYER = "cell (state)", "weights", "cell / gate block", "layer"
BLOCKS = {"rnn_tanh": "W_hh", "rnn_relu": "W_hh", "lstm": "LSTM gate blocks",
          "gru": "GRU gate blocks"}


# -- tables ------------------------------------------------------------------------------------
def run_labels(run_dir: Path) -> dict:
    """``experiment`` (the parent folder's name) and the run's id and grid coordinates."""
    meta = json.loads((run_dir / "train.json").read_text())
    cfg = meta["config"]
    return {"experiment": run_dir.parent.name, "run_id": meta["run_id"],
            **{k: cfg[k] for k in LABELS[2:]}}


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


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table atomically."""
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


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
def _present(order: list, values: pd.Series) -> list:
    """The entries of ``order`` that occur in ``values``, in that order."""
    seen = set(values)
    return [v for v in order if v in seen]


def _layer_label(df: pd.DataFrame) -> pd.Series:
    """Which layer of which depth: ``1 layer`` or ``2 layers, layer 0`` etc."""
    return np.where(df["layers"] == 1, "1 layer",
                    df["layers"].astype(str) + " layers, layer " + df["layer"].astype(str))


def _series(df: pd.DataFrame) -> pd.Series:
    """Curve name: the cell, or ``lstm (c)`` for the LSTM's cell state."""
    return np.where(df["state"] == "c", df["cell"] + " (c)", df["cell"])


def _series_colors() -> dict[str, str]:
    """One fixed colour per curve name, the same in every figure."""
    return dict(zip(SERIES_ORDER, sns.color_palette("deep", 5).as_hex(), strict=True))


def _layer_order(labels: pd.Series) -> list[str]:
    return sorted(set(labels), key=lambda s: (s != "1 layer", s))


def grad_vs_lag(tables: Path) -> sns.FacetGrid:
    """Gradient norm vs lag (log y): hue cell (and LSTM c), style trained/init, cols hidden."""
    df = pd.read_csv(tables / "grad_through_time.csv")
    # Lags where some norm was an exact zero or underflowed are dropped, as in the decay fit.
    df = df[df["frac_floored"] == 0].assign(
        norm=lambda d: np.exp(d["log_grad_norm"]), panel=_layer_label)
    df[CURVE], df[WEIGHTS] = _series(df), df["kind"]
    rows = _layer_order(df["panel"])
    g = sns.relplot(df, x="lag", y="norm", hue=CURVE, style=WEIGHTS, col="hidden",
                    row="panel" if len(rows) > 1 else None, row_order=rows,
                    hue_order=_present(SERIES_ORDER, df[CURVE]), palette=_series_colors(),
                    style_order=_present(KINDS, df["kind"]), kind="line",
                    estimator=_geomean, errorbar=("pi", 100), height=3, aspect=1.2)
    g.set(yscale="log")
    _decade_ticks(g)
    g.set_axis_labels("lag $k$ (steps back from the loss)",
                      r"$\|\partial\ell_t / \partial h_{t-k}\|$ (geometric mean)")
    g.set_titles(col_template="hidden {col_name}", row_template="{row_name}")
    return g


def _decade_ticks(grid: sns.FacetGrid, most: int = 8) -> None:
    """Log-axis ticks every 1, 2, 5, 10, 20, 50, ... decades: round exponents, at most ``most``."""
    low, high = grid.axes.flat[0].get_ylim()
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    step = next(n * 10**e for e in range(6) for n in (1, 2, 5) if (hi - lo) / (n * 10**e) < most)
    ticks = [10.0**k for k in range(lo - lo % step, hi + 1, step)]
    for ax in grid.axes.flat:
        ax.set_yticks(ticks)
        ax.set_ylim(low, high)


def _geomean(values: pd.Series) -> float:
    return float(np.exp(np.mean(np.log(values))))


def grad_norm_distribution(tables: Path) -> sns.FacetGrid:
    """Per-step global gradient norms (quantile samples), box per cell, hue layers, cols hidden."""
    df = pd.read_csv(tables / "grad_steps.csv").dropna(subset=["grad_norm"])
    df = df[df["grad_norm"] > 0]
    with warnings.catch_warnings():
        # seaborn 0.13 passes matplotlib 3.11's deprecated `vert` to bxp; harmless here.
        warnings.filterwarnings("ignore", message=".*vert: bool", category=DeprecationWarning)
        g = sns.catplot(df, x="cell", y="grad_norm", hue="layers", col="hidden", kind="box",
                        order=_present(CELL_ORDER, df["cell"]), log_scale=True, height=3.5,
                        aspect=1.1, fliersize=1.5, palette="crest")
    g.set_axis_labels("", "global gradient norm per step\n(before normalising or clipping)")
    g.set_titles(col_template="hidden {col_name}")
    return g


def grad_spectra(tables: Path) -> sns.FacetGrid:
    """sigma_max of W_hh (rows: whole matrix, LSTM and GRU gate blocks) per epoch, line at 1."""
    df = pd.read_csv(tables / "spectra.csv")
    df = df.assign(block=np.where(df["gate"] == "all", "whole W_hh", df["cell"].map(BLOCKS)))
    df[GATE_CURVE] = np.where(df["gate"] == "all", df["cell"], df["cell"] + " " + df["gate"])
    df[LAYER] = _layer_label(df)
    blocks = _present(["whole W_hh", "LSTM gate blocks", "GRU gate blocks"], df["block"])
    order = [*_present(CELL_ORDER, df[GATE_CURVE]),
             *[f"{c} {gate}" for c in ("lstm", "gru") for gate in GATE_ORDER[1:]
               if f"{c} {gate}" in set(df[GATE_CURVE])]]
    palette = {**{c: _series_colors()[c] for c in CELL_ORDER},
               **_shades("lstm", "Greens", df), **_shades("gru", "Purples", df)}
    layers = _layer_order(df[LAYER])
    g = sns.relplot(df, x="epoch", y="sigma_max", hue=GATE_CURVE,
                    style=LAYER if len(layers) > 1 else None, col="hidden", row="block",
                    row_order=blocks, hue_order=order, palette=palette,
                    style_order=layers, kind="line", marker="o",
                    errorbar=("pi", 100), height=2.8, aspect=1.3,
                    facet_kws={"sharey": False})
    epochs = sorted(df["epoch"].unique())
    for ax in g.axes.flat:
        ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1)
        ax.set_xticks(epochs, ["init" if e < 0 else str(e) for e in epochs])
    g.set_axis_labels("after epoch", "largest singular value")
    g.set_titles(col_template="hidden {col_name}", row_template="{row_name}")
    return g


def _shades(cell: str, cmap: str, df: pd.DataFrame) -> dict[str, tuple]:
    """Colours for one gated cell's gate blocks, shades of one hue."""
    gates = [g for g in GATE_ORDER[1:] if f"{cell} {g}" in set(df[GATE_CURVE])]
    colors = sns.color_palette(cmap, len(gates) + 2)[2:]
    return {f"{cell} {g}": c for g, c in zip(gates, colors, strict=True)}


def grad_decay_rate_vs_hidden(tables: Path) -> sns.FacetGrid:
    """Fitted log-norm decay per step vs hidden size; hue cell (and LSTM c), style kind."""
    df = pd.read_csv(tables / "grad_decay.csv")
    df = df.assign(panel=_layer_label)
    df[CURVE], df[WEIGHTS] = _series(df), df["kind"]
    cols = _layer_order(df["panel"])
    g = sns.relplot(df, x="hidden", y="decay_rate", hue=CURVE, style=WEIGHTS,
                    col="panel" if len(cols) > 1 else None, col_order=cols,
                    hue_order=_present(SERIES_ORDER, df[CURVE]), palette=_series_colors(),
                    style_order=_present(KINDS, df["kind"]), kind="line",
                    markers=True, markersize=8, errorbar="sd", err_style="bars", height=3.5,
                    aspect=1.1)
    hidden = sorted(df["hidden"].unique())
    for ax in g.axes.flat:
        ax.axhline(0.0, color="0.3", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xticks(hidden, [str(h) for h in hidden])
        ax.minorticks_off()
    g.set_axis_labels("hidden size", "decay rate per step (slope of log norm vs lag)")
    g.set_titles(col_template="{col_name}")
    return g


FIGURES: dict[str, Callable[[Path], sns.FacetGrid]] = {
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
    if args.command == "collect":
        tables = collect(args.runs, args.out_dir)
        log.info("%d runs -> %s (%s)", len(args.runs), args.out_dir, ", ".join(tables))
    else:
        plot(args.command, args.tables, args.out)
        log.info("wrote %s and .svg", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
