"""The one command that draws a figure of the registry (rnnbench.figures.registry) from a
folder of tables, no torch import. Usage::

    python -m rnnbench.figures.draw perplexity_vs_hidden --tables results/studies/grid/tables \\
        --out results/studies/grid/figures/perplexity_vs_hidden.png    # and the .svg beside it
    python -m rnnbench.figures.draw reproduction --tables DIR --out PNG \\
        --published '{"seed_rnn": {"test_ppl": 146.0}}'

Every drawing module is imported here, not looked up by name at run time, so that the source
files a figure rule runs are this module's imports (rnnbench.workflow.codedeps).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from matplotlib.figure import Figure

from rnnbench.figures import context_figures, curves, gradplots, plots, sizes
from rnnbench.figures import figstyle as fs
from rnnbench.figures.registry import FIGURES, spec

log = logging.getLogger(__name__)
MODULES: dict[str, ModuleType] = {m.__name__.rsplit(".", 1)[-1]: m
                                  for m in (context_figures, curves, gradplots, plots, sizes)}


def drawer(name: str) -> Callable[..., Figure]:
    """The function that draws the figure ``name`` (it takes the folder of tables)."""
    figure = spec(name)
    return getattr(MODULES[figure.module], figure.name)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=[f.name for f in FIGURES])
    fs.figure_flags(parser)
    parser.add_argument("--published", default="{}",
                        help="reproduction only; JSON: experiment -> {test_ppl: ...}")
    args = parser.parse_args(argv)
    fs.start_job()
    draw = drawer(args.figure)
    if args.figure == "reproduction":  # the config's published numbers, beside the tables
        figure = draw(args.tables, json.loads(args.published))
    else:
        figure = draw(args.tables)
    fs.save(figure, args.out)
    log.info("wrote %s and .svg", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
