"""The command line every figure module shares: ``--tables``/``--out``, the ``collect`` or
figure subcommands, the job's start (log lines, SIGTERM, the house style) and the atomic PNG +
SVG write. No torch import."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
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
    for path, fmt in ((png, "png"), (png.with_suffix(".svg"), "svg")):
        write_atomic(path, lambda tmp, f=fmt: fig.savefig(tmp, format=f, dpi=120,
                                                          bbox_inches="tight"))
    plt.close(fig)


def figure_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A figure command's ``--tables`` (the folder it reads) and ``--out`` (the PNG)."""
    parser.add_argument("--tables", required=True, type=Path, help="folder of the tables")
    parser.add_argument("--out", required=True, type=Path, help="PNG path (SVG beside it)")
    return parser


def tables_or_figure(argv: list[str] | None, description: str, what: str,
                     collect: Callable[[list[Path], Path], dict],
                     figures: dict[str, Callable[[Path], Figure]]) -> int:
    """The command line of a stage with tables and figures: ``collect RUN... --out-dir DIR``
    (``collect``, the runs' files into tables: ``what``) or ``NAME --tables DIR --out PNG``,
    one of ``figures`` (each builds its figure from the folder of tables)."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    col = sub.add_parser("collect", help=what)
    col.add_argument("runs", nargs="+", type=Path, help="run folders")
    col.add_argument("--out-dir", required=True, type=Path)
    for name, func in figures.items():
        figure_flags(sub.add_parser(name, help=func.__doc__))
    args = parser.parse_args(argv)
    start_job()
    if args.command == "collect":
        tables = collect(args.runs, args.out_dir)
        log.info("%d runs -> %s (%s)", len(args.runs), args.out_dir, ", ".join(tables))
    else:
        save(figures[args.command](args.tables), args.out)
        log.info("wrote %s and .svg", args.out)
    return 0


def start_job() -> None:
    """What every figure command does first: log lines, no .tmp left beside a figure by a
    cancelled job (SIGTERM), the house style."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sigterm_exits()
    sns.set_theme(style="whitegrid", context="paper")
