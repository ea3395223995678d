"""The learning curves' table, from epochs.csv and runs.csv (no torch import). Usage::

    python -m rnnbench.analysis.learning_curves --tables results/studies/grid/tables \\
        --out results/studies/grid/tables/learning_curves.csv

writes ``learning_curves.csv``: per experiment, size, depth, model and training tokens seen,
the finished seeds' mean validation perplexity with its t 95% CI. The figure drawn from it is
``learning_curves`` (rnnbench.figures.curves).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.analysis.labels import model_rank, with_model
from rnnbench.analysis.stats import mean_ci
from rnnbench.io import write_csv

log = logging.getLogger(__name__)
PANEL = ["experiment", "size", "layers"]  # what a learning curve's panel holds fixed
COLUMNS = [*PANEL, "model", "tokens", "epoch", "n", "mean", "ci_low", "ci_high"]


def positive(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows of ``df`` with a finite, positive ``column`` (none when there is no such
    column: epochs.csv of runs that all diverged before their first validation)."""
    if column not in df.columns:
        return df.iloc[0:0]
    values = pd.to_numeric(df[column], errors="coerce")
    return df[np.isfinite(values) & (values > 0)].assign(**{column: values})


def with_status(df: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """``df`` with each run's ``status`` from runs.csv (``ok`` where unknown) and its model."""
    df = with_model(df)
    if runs is None:
        return df.assign(status="ok")
    status = runs[["experiment", "run_id", "status"]]
    return df.merge(status, on=["experiment", "run_id"], how="left").fillna({"status": "ok"})


def with_tokens(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each epoch with ``tokens_seen``: the training tokens of that epoch and every one before
    it (history.csv's ``tokens``, so a ``max_batches`` cap counts as trained, not as nominal)."""
    epochs = epochs.sort_values(["experiment", "run_id", "epoch"], kind="stable")
    tokens = pd.to_numeric(epochs["tokens"], errors="coerce")
    return epochs.assign(tokens_seen=tokens.groupby([epochs["experiment"],
                                                     epochs["run_id"]]).cumsum())


def learning_curve_table(epochs: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """Per experiment, size, depth, model and tokens seen: ``n`` finished seeds, their mean
    validation perplexity and its t 95% CI (``ci_low``/``ci_high``, NaN for one seed)."""
    epochs = positive(epochs, "valid_ppl")
    if epochs.empty:
        return pd.DataFrame(columns=COLUMNS)
    d = with_tokens(with_status(epochs, runs))
    rows = []
    for key, block in d[d["status"] == "ok"].groupby([*PANEL, "model", "tokens_seen"],
                                                      sort=False):
        st = mean_ci(block["valid_ppl"].tolist())
        rows.append({**dict(zip([*PANEL, "model", "tokens"], key, strict=True)),
                     "epoch": int(block["epoch"].max()), "n": st["n"], "mean": st["mean"],
                     "ci_low": st["ci_low"], "ci_high": st["ci_high"]})
    table = pd.DataFrame(rows, columns=COLUMNS)
    rank = table["model"].map(model_rank)
    return table.assign(_rank=rank).sort_values([*PANEL, "_rank", "tokens"], kind="stable").drop(
        columns="_rank").reset_index(drop=True)


def read_runs(tables: Path) -> pd.DataFrame | None:
    """runs.csv of the folder, or None where it has none."""
    path = tables / "runs.csv"
    return pd.read_csv(path) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: learning_curves.csv from a folder's epochs.csv and runs.csv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", required=True, type=Path,
                        help="folder of epochs.csv and runs.csv")
    parser.add_argument("--out", required=True, type=Path, help="learning_curves.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    table = learning_curve_table(pd.read_csv(args.tables / "epochs.csv"), read_runs(args.tables))
    write_csv(table, args.out)
    log.info("%d rows -> %s", len(table), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
