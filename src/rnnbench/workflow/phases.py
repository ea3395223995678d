"""A long study in phases, the smallest budget first (no torch).

A study across sizes is a curve only once each size is finished, so its driver
(``workflow/scripts/train_study.sh``) trains it one budget at a time: for each budget the
published copy of every final run at that budget (``results/reference/{experiment}/{run}/
train.json``), which brings in their tuning trials, evaluation and measurements. This module
prints those targets. Usage::

    python -m rnnbench.workflow.phases config/scaling.yaml            # the budgets, in order
    python -m rnnbench.workflow.phases config/scaling.yaml 500000     # that budget's targets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from rnnbench.experiment.grid import expand
from rnnbench.model.params import corpus_vocab
from rnnbench.workflow.wiring import published_dir


def final_runs(config: dict, data_dir: Path) -> list:
    """The config's final (and untuned) runs, in config order."""
    vocab = corpus_vocab(config["corpus"], data_dir / "stats.json")
    runs, _ = expand(config, vocab)
    return [r for r in runs if r.role != "trial"]


def budgets(runs: list) -> list[int]:
    """The budgets of ``runs``, each once, smallest first."""
    return sorted({r.config.budget for r in runs if r.config.budget is not None})


def targets(runs: list, budget: int) -> list[str]:
    """The published train.json of every run at ``budget``."""
    return [f"{published_dir(r)}/train.json" for r in runs if r.config.budget == budget]


def main(argv: list[str] | None = None) -> int:
    """Print the budgets, or one budget's targets, one per line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path, help="the study's config file")
    p.add_argument("budget", type=int, nargs="?", help="print this budget's targets")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the tokenized corpus (default results/data/{corpus})")
    args = p.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())
    data_dir = args.data_dir or Path("results/data", config["corpus"]["name"])
    runs = final_runs(config, data_dir)
    lines = targets(runs, args.budget) if args.budget else [str(b) for b in budgets(runs)]
    if not lines:
        raise SystemExit(f"{args.config}: no run at budget {args.budget} (budgets: "
                         f"{', '.join(map(str, budgets(runs)))})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
