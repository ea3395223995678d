"""What the figure command (rnnbench.figures.draw) shares with tests and scripts: its
``--tables``/``--out`` flags, the job's start (log lines, SIGTERM, the house style) and the
atomic PNG + SVG write. No torch import."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rnnbench.io import sigterm_exits, write_atomic  # noqa: E402

log = logging.getLogger(__name__)


def save(figure: Figure | sns.FacetGrid | Axes, png: Path) -> None:
    """Write the PNG and the SVG beside it, each atomically."""
    fig = figure.figure  # a Figure's .figure is itself
    # SVG text stays text (searchable, selectable), not glyph outlines.
    plt.rcParams["svg.fonttype"] = "none"
    # The same figure gives the same bytes: no date, and the SVG's element ids from a fixed salt.
    plt.rcParams["svg.hashsalt"] = "rnnbench"
    for path, fmt in ((png, "png"), (png.with_suffix(".svg"), "svg")):
        write_atomic(path, lambda tmp, f=fmt: fig.savefig(
            tmp, format=f, dpi=120, bbox_inches="tight",
            metadata={"Date": None} if f == "svg" else None))
    plt.close(fig)


def figure_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A figure command's ``--tables`` (the folder it reads) and ``--out`` (the PNG)."""
    parser.add_argument("--tables", required=True, type=Path, help="folder of the tables")
    parser.add_argument("--out", required=True, type=Path, help="PNG path (SVG beside it)")
    return parser


def start_job() -> None:
    """What every figure command does first: log lines, no .tmp left beside a figure by a
    cancelled job (SIGTERM), the house style."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sigterm_exits()
    sns.set_theme(style="whitegrid", context="paper")
