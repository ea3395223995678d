"""Gradient tables across runs, from the run folders (no torch import). Usage::

    python -m rnnbench.analysis.gradtables --out-dir results/studies/grid/tables \\
        results/runs/grid/*/

writes, each with the run labels ``corpus, experiment, run_id, model, cell, hidden, layers,
seed`` first: ``grad_through_time.csv`` (every run's gradients.csv), ``grad_decay.csv``
(every run's decay.csv), ``spectra.csv`` (every run's spectra.csv) and ``grad_steps.csv``
(per run, ``STEP_QUANTILES + 1`` evenly spaced quantiles of the finite per-step global
gradient norms, min and max included: a fixed-size sample of the distribution however long
the run, with ``n_steps`` and ``n_nonfinite``). The figures, drawn from these tables, are
rnnbench.figures.gradplots.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.analysis.labels import model_label, size_label
from rnnbench.io import write_csv

log = logging.getLogger(__name__)

# size: the panel of the figures (h150, p250k, t4M: rnnbench.analysis.labels.size_label), so that
# the models of a budget, whose hidden sizes differ, share one panel
LABELS = ["corpus", "experiment", "run_id", "model", "size", "cell", "hidden", "layers", "seed"]
STEP_QUANTILES = 200
TABLES = {"gradients.csv": "grad_through_time.csv", "decay.csv": "grad_decay.csv",
          "spectra.csv": "spectra.csv"}


def run_labels(run_dir: Path) -> dict:
    """The corpus (published reference runs predate train.json's: they are all PTB),
    ``experiment`` (the parent folder's name), the run's id, its model and size
    (rnnbench.analysis.labels) and grid coordinates."""
    meta = json.loads((run_dir / "train.json").read_text())
    cfg = meta["config"]
    return {"corpus": meta["corpus"], "experiment": run_dir.parent.name,
            "run_id": meta["run_id"], "model": model_label({**cfg, "run_id": meta["run_id"]}),
            "size": size_label(cfg), **{k: cfg[k] for k in LABELS[5:]}}


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
    # float even with no row (a run that diverged at its first minibatch has none)
    norms = pd.read_csv(run_dir / "steps.csv.gz", usecols=["grad_norm"],
                        dtype={"grad_norm": float})["grad_norm"]
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
    # A run with no rows (spectra.csv of minGRU/minLSTM: no W_hh) is left out, or its
    # header-only frame would turn the integer columns of the others to float.
    tables = {name: pd.concat([f for f in frames if len(f)] or frames, ignore_index=True)
              for name, frames in parts.items()}
    for name, frame in tables.items():
        write_csv(frame, out_dir / name)
    return tables


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: the runs' gradient files into the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tables = collect(args.runs, args.out_dir)
    log.info("%d runs -> %s (%s)", len(args.runs), args.out_dir, ", ".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
