"""What every figure shares: panels with none empty, axes, legends beside the data, points
with their 95% CI. Split by concern: each model's look is rnnbench.figures.palette,
the words under a figure rnnbench.figures.notes, the command line rnnbench.figures.cli; their
names are re-exported here, so ``figstyle.X`` keeps working.

No torch import. Used by every drawing module of rnnbench.figures (rnnbench.figures.registry):
a figure built from tables that may hold one run or hundreds, and runs that finished or diverged,
must say what it shows (how many seeds a point is, which runs are missing and why, where an axis is
cut) rather than crash or mislead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rnnbench.analysis.stats import mean_ci  # noqa: E402
from rnnbench.figures.cli import (  # noqa: E402,F401  (re-exported)
    figure_flags,
    save,
    start_job,
)
from rnnbench.figures.notes import (  # noqa: E402,F401  (re-exported)
    INTERVAL,
    MAX_LISTED,
    capped_note,
    footnote,
    log_label,
    not_finished,
    not_shown,
    note_figure,
    spread,
    wrap,
)
from rnnbench.figures.palette import (  # noqa: E402,F401  (re-exported)
    MODEL_STYLES,
    Style,
    model_colors,
    model_order,
    model_styles,
)

CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru", "min_gru", "min_lstm"]
# Curves of the gradient figures: the cells, plus the LSTM's cell state as a series of its own.
SERIES_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "lstm (c)", "gru", "min_gru", "min_lstm"]
# Each model's colour, line style and marker: rnnbench.figures.palette (re-exported here).
SERIES_COLORS = {name: MODEL_STYLES[name].color for name in SERIES_ORDER}
# The gate-block panels of the spectra figure (the vanilla cells' W_hh has one block).
GATE_BLOCKS = {"lstm": "LSTM gate blocks", "gru": "GRU gate blocks"}


def present(order: Iterable, values: Iterable) -> list:
    """The entries of ``order`` that occur in ``values``, in that order."""
    seen = set(values)
    return [v for v in order if v in seen]


def panel_grid(n: int, ncols: int = 3, width: float = 3.6,
               height: float = 2.9) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels, at most ``ncols`` a row; the unused cells of the last row are
    removed, so no panel is ever empty."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def with_panels(df: pd.DataFrame, parts: list[str], names: dict[str, str] | None = None,
                experiment: bool | None = None) -> tuple[pd.DataFrame, list[str]]:
    """``df`` with a ``panel`` column (see :func:`panel_key`) and the panels that exist, in
    the experiments' order of appearance, then by ``parts``."""
    df = df.assign(panel=panel_key(df, parts, names, experiment))
    rank = {e: i for i, e in enumerate(dict.fromkeys(df["experiment"]))}
    first = df.drop_duplicates("panel")
    first = first.assign(_rank=first["experiment"].map(rank)).sort_values(
        ["_rank", *parts], kind="stable")
    return df, first["panel"].tolist()


def si(value: float, _pos=None) -> str:
    """``652k``, ``653.5k``, ``1.5M``: a count in up to four significant digits."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g}{suffix}"  # 653.5k: close ticks stay distinct
    return f"{value:.4g}"


def count_axis(ax: Axes, values: pd.Series, axis: str = "x") -> bool:
    """Scale an axis for counts such as parameters: logarithmic when they span more than a
    factor of 3, else linear (a log axis over 652k-658k has no tick inside it); labelled in
    k/M either way. Returns whether the axis is logarithmic."""
    values = values[values > 0]
    target = ax.xaxis if axis == "x" else ax.yaxis
    is_log = bool(len(values)) and values.max() / values.min() > 3
    if is_log:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        target.set_minor_locator(ticker.NullLocator())
    else:
        target.set_major_locator(ticker.MaxNLocator(5))
    target.set_major_formatter(ticker.FuncFormatter(si))
    return is_log

OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}


def legend(ax: Axes, title: str | None = None, **kwargs) -> None:
    """A legend beside the panel, outside its data (``kwargs`` may place it below instead),
    with each label once (seaborn and loops can repeat them)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), title=title, fontsize=7, title_fontsize=7,
                  **{**OUTSIDE, **kwargs})


def read_runs(tables: Path) -> pd.DataFrame | None:
    """``runs.csv`` of the tables folder, or None when it is not there."""
    path = tables / "runs.csv"
    return pd.read_csv(path) if path.exists() else None


def plain_log_ticks(axes: Iterable[Axes]) -> None:
    """Log y axes labelled 100, 200, 300 rather than 10², 2×10², 3×10²: 120, 150, 200, 250,
    ... when an axis spans under a decade, the ticks at 1, 2, 3 and 5 × 10^k under two, and
    matplotlib's own 10^k labels on the decades beyond."""
    def label(y: float, _pos) -> str:
        mantissa = round(y / 10 ** math.floor(math.log10(y) + 1e-9), 6) if y > 0 else 0
        return f"{y:g}" if mantissa in (1, 2, 3, 5) else ""

    for ax in axes:
        ax.set_yscale("log")
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


def ci_stats(df: pd.DataFrame, keys: list[str], y: str) -> pd.DataFrame:
    """Per group of ``keys``: ``n``, ``mean`` and the t 95% CI (``ci_low``/``ci_high``, NaN for
    one value) of ``y`` (rnnbench.analysis.stats.mean_ci)."""
    rows = [{**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
             **mean_ci(block[y].tolist())}
            for key, block in df.groupby(keys, sort=False)]
    return pd.DataFrame(rows, columns=[*keys, "n", "mean", "sd", "ci_low", "ci_high"])


def dodged_points(ax: Axes, df: pd.DataFrame, x: str, y: str, key: str,
                  styles: dict[str, dict]) -> pd.Series:
    """Mean and t 95% CI of ``y`` per (``x``, ``key``) on a categorical ``x`` (its sorted
    values, so a single hidden size is one column, not a line), each ``key`` shifted sideways
    so that no point hides another; ``styles[key]`` holds its matplotlib style and label.
    Returns the number of values behind each point."""
    xs = sorted(df[x].unique())
    pos = {v: i for i, v in enumerate(xs)}
    keys = present(styles, df[key])
    step = min(0.18, 0.7 / max(len(keys), 1))
    stats = ci_stats(df, [key, x], y).sort_values([key, x])
    for i, k in enumerate(keys):
        s = stats[stats[key] == k]
        px = s[x].map(pos) + (i - (len(keys) - 1) / 2) * step
        err = [(s["mean"] - s["ci_low"]).fillna(0.0), (s["ci_high"] - s["mean"]).fillna(0.0)]
        style = {"linestyle": "-", **styles[k]}
        if len(s) < 2:
            style["linestyle"] = "none"
        ax.errorbar(px, s["mean"], yerr=err, capsize=3, markersize=6, linewidth=1, **style)
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlim(-0.6, len(xs) - 0.4)
    return stats["n"]


def panel_key(df: pd.DataFrame, parts: list[str], names: dict[str, str] | None = None,
              experiment: bool | None = None) -> pd.Series:
    """A panel title per row, e.g. ``hidden 32, layers 1``, led by ``experiment:`` when the
    frame holds several experiments (each has its own recipe, so they never share a panel)."""
    names = names or {}
    if not parts:
        return df["experiment"].astype(str)
    label = pd.Series([""] * len(df), index=df.index)
    for i, col in enumerate(parts):
        name = names.get(col, col)
        label = label + ("" if i == 0 else ", ") + (f"{name} " if name else "") \
            + df[col].astype(str)
    if experiment if experiment is not None else df["experiment"].nunique() > 1:
        label = df["experiment"] + ": " + label
    return label


def decade_ticks(axes: list[Axes], most: int = 7) -> None:
    """Log-axis ticks every 1, 2, 5, 10, 20, ... decades: round exponents, at most ``most``."""
    for ax in axes:
        low, high = ax.get_ylim()
        lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
        step = next(n * 10**e for e in range(6) for n in (1, 2, 5) if (hi - lo) / (n * 10**e)
                    < most)
        ax.set_yticks([10.0**k for k in range(lo - lo % step, hi + 1, step)])
        ax.yaxis.set_minor_locator(ticker.NullLocator())
        ax.set_ylim(low, high)
