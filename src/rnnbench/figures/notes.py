"""What a figure says in words: its notes (runs not shown and why, capped evaluation), what
a point and its bar are (the one interval of every figure, the t 95% CI), log-axis labels, and
the figure that stands in when there is nothing to plot. No torch import."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

MAX_LISTED = 8  # runs named in a note before "and N more"


def wrap(text: str, width: int = 60) -> str:
    """``text`` broken into lines of at most ``width`` characters."""
    return "\n".join(textwrap.wrap(text, width)) or text


def not_finished(runs: pd.DataFrame | None) -> list[str]:
    """One line per run that did not finish: ``experiment/run: diverged at step N``."""
    if runs is None or runs.empty:
        return []
    lines = []
    for _, r in runs[runs["status"] != "ok"].iterrows():
        step = r.get("diverged_step")
        where = f" at step {int(step)}" if pd.notna(step) else ""
        lines.append(f"{r['experiment']}/{r['run_id']}: {r['status']}{where}")
    if len(lines) > MAX_LISTED:
        lines = [*lines[:MAX_LISTED], f"... and {len(lines) - MAX_LISTED} more (runs.csv)"]
    return lines


def note_figure(title: str, lines: list[str]) -> Figure:
    """A one-panel figure that says, in words, why there is nothing to plot."""
    fig, ax = plt.subplots(figsize=(6.4, 0.4 + 0.2 * (len(lines) + 2)))
    ax.set_axis_off()
    body = "\n".join([wrap(title, 70), "", *lines])
    ax.text(0.0, 1.0, body, ha="left", va="top", transform=ax.transAxes, fontsize=10)
    return fig


def footnote(fig: Figure, lines: list[str]) -> None:
    """Lines of small text under the panels (kept by ``bbox_inches="tight"``)."""
    if lines:
        fig.text(0.0, 0.0, "\n".join(lines), ha="left", va="top", fontsize=8, color="0.25")


def not_shown(lines: list[str], header: str = "Not shown (no finished result):") -> list[str]:
    """``lines`` under a header, or nothing when there are none."""
    return [header, *lines] if lines else []

INTERVAL = "95% CI"  # the one kind of interval of every figure: the t interval over seeds


def spread(counts: pd.Series, what: str = "seeds") -> str:
    """What a point and its bar are, given how many runs each point pools: ``one seed per
    point`` when every ``n`` is 1 (no bar), ``mean, 95% CI over 3 seeds``, or a range."""
    counts = counts[counts > 0]
    if counts.empty or counts.max() == 1:
        return f"one {what[:-1]} per point, no interval"
    low, high = int(counts.min()), int(counts.max())
    n = str(high) if low == high else f"{low}–{high}"
    return f"mean, {INTERVAL} over {n} {what}" + (" (no bar where 1)" if low == 1 else "")


def log_label(label: str) -> str:
    """An axis label that says the axis is logarithmic."""
    return f"{label} (log scale)"


def capped_note(runs: pd.DataFrame | None) -> list[str]:
    """A line when some shown perplexities cover only part of a split (``eval_capped``)."""
    if runs is None or "eval_capped" not in runs.columns:
        return []
    capped = runs["eval_capped"].fillna(False).astype(bool)
    if not capped.any():
        return []
    return [f"Capped evaluation (max_eval_batches) in {int(capped.sum())} of {len(runs)} runs: "
            "their perplexities cover only the first minibatches of each split."]
