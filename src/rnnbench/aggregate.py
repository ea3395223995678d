"""Collect every run's files into tidy tables (no torch import). Usage::

    python -m rnnbench.aggregate --out-dir results/tables results/runs/grid/*/

Writes ``runs.csv`` (one row per run), ``summary.csv`` and ``summary.md`` (per configuration
across seeds: mean, sd and n), ``epochs.csv`` (every run's epoch table) and ``grad_norms.csv``
(each run's global gradient norm over training, in ``GRAD_BINS`` bins of steps).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.io import write_atomic, write_text

log = logging.getLogger(__name__)
GRAD_BINS = 100
ENV_COLUMNS = ["device", "gpu", "cpu", "threads", "torch", "python", "rnnbench", "code_version",
               "hostname", "slurm_job_id"]
CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
METRICS = ["test_ppl", "valid_ppl", "train_ppl", "params", "seconds_per_epoch", "tokens_per_s"]


def run_record(run_dir: Path) -> dict:
    """One row of runs.csv from a run folder (train.json, eval.json, history.csv)."""
    meta = json.loads((run_dir / "train.json").read_text())
    ev = json.loads((run_dir / "eval.json").read_text())
    hist = pd.read_csv(run_dir / "history.csv")
    row = {"experiment": run_dir.parent.name, "run_id": meta["run_id"], **meta["config"]}
    row.update(params=meta["params"], status=meta["status"], diverged_step=meta["diverged_step"],
               epochs_done=meta["epochs_done"], best_epoch=meta["best_epoch"])
    last = hist.iloc[-1] if len(hist) else {}
    row.update(train_ppl=last.get("train_ppl", np.nan), valid_ppl=ev.get("valid_ppl", np.nan),
               test_ppl=ev.get("test_ppl", np.nan),
               test_stream_ppl=ev.get("test_stream_ppl", np.nan))
    row["seconds_per_epoch"] = hist["seconds"].median() if len(hist) else np.nan
    row["tokens_per_s"] = hist["tokens_per_s"].median() if len(hist) else np.nan
    row["wall_seconds"] = meta["wall_seconds"]  # None: resumed from a checkpoint without it
    row["resumes"] = meta.get("resumes")  # absent in train.json files of older versions
    for name in ("p50", "p90", "p99", "max"):
        row[f"grad_norm_{name}"] = meta.get(f"grad_norm_{name}", np.nan)
    row.update({k: meta.get(k) for k in ENV_COLUMNS})
    return row


def labels(row: dict) -> dict:
    """The identifying columns copied into the long tables."""
    return {k: row[k] for k in ("experiment", "run_id", "cell", "hidden", "layers", "seed")}


def grad_bins(run_dir: Path, bins: int = GRAD_BINS) -> pd.DataFrame:
    """Global gradient norm over training: median, p10, p90 per bin of consecutive steps.

    From the run's steps.csv.gz, or, in a published reference run (which keeps no per-step
    file), from the grad_bins.csv that publishing wrote with this same function.
    """
    if not (run_dir / "steps.csv.gz").exists():
        return pd.read_csv(run_dir / "grad_bins.csv")
    steps = pd.read_csv(run_dir / "steps.csv.gz", usecols=["epoch", "step", "grad_norm"])
    if steps.empty:
        return steps
    order = np.arange(len(steps))
    steps["bin"] = order * bins // len(steps)
    grouped = steps.groupby("bin")
    out = grouped.agg(step=("step", "median"), epoch=("epoch", "min"))
    out["grad_norm_median"] = grouped["grad_norm"].median()
    out["grad_norm_p10"] = grouped["grad_norm"].quantile(0.1)
    out["grad_norm_p90"] = grouped["grad_norm"].quantile(0.9)
    out["progress"] = (out.index + 0.5) / bins  # share of training done
    return out.reset_index(drop=True)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (every config column but the seed): mean, sd and n over ok runs."""
    config_cols = [c for c in runs.columns
                   if c not in {"run_id", "seed", "status", "diverged_step", "epochs_done",
                                "best_epoch", "wall_seconds", "resumes", *METRICS, *ENV_COLUMNS}
                   and not c.startswith("grad_norm_")]
    groups = []
    for _, block in runs.groupby(config_cols, sort=False, dropna=False):
        ok = block[block["status"] == "ok"]
        row = block.iloc[0][config_cols].to_dict()
        row.update(n=len(ok), n_runs=len(block),
                   n_diverged=int((block["status"] == "diverged").sum()))
        for m in METRICS:
            row[f"{m}_mean"] = ok[m].mean()
            row[f"{m}_sd"] = ok[m].std(ddof=1) if len(ok) > 1 else np.nan
        groups.append(row)
    summary = pd.DataFrame(groups)
    cell_rank = summary["cell"].map({c: i for i, c in enumerate(CELL_ORDER)})
    return summary.assign(_rank=cell_rank).sort_values(
        ["experiment", "_rank", "hidden", "layers"], kind="stable").drop(columns="_rank")


def summary_markdown(summary: pd.DataFrame) -> str:
    """A readable table: perplexities as mean ± sd (n)."""
    def pm(row, m, digits=1):
        mean, sd = row[f"{m}_mean"], row[f"{m}_sd"]
        return "–" if pd.isna(mean) else (f"{mean:.{digits}f}" if pd.isna(sd)
                                          else f"{mean:.{digits}f} ± {sd:.{digits}f}")

    lines = ["| experiment | cell | hidden | layers | n | test ppl | valid ppl | train ppl | "
             "params | s/epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        n = f"{r['n']}" + (f" ({r['n_diverged']} diverged)" if r["n_diverged"] else "")
        lines.append(f"| {r['experiment']} | {r['cell']} | {r['hidden']} | {r['layers']} | {n} | "
                     f"{pm(r, 'test_ppl')} | {pm(r, 'valid_ppl')} | {pm(r, 'train_ppl')} | "
                     f"{r['params_mean']:,.0f} | {pm(r, 'seconds_per_epoch')} |")
    return "\n".join(lines) + "\n"


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table atomically."""
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def aggregate(run_dirs: list[Path], out_dir: Path) -> pd.DataFrame:
    """Build and write every table; return runs.csv's frame."""
    rows, epochs, grads = [], [], []
    for run_dir in run_dirs:
        row = run_record(run_dir)
        rows.append(row)
        hist = pd.read_csv(run_dir / "history.csv")
        epochs.append(hist.assign(**labels(row)))
        grads.append(grad_bins(run_dir).assign(**labels(row)))
    runs = pd.DataFrame(rows)
    write_csv(runs, out_dir / "runs.csv")
    summary = summarize(runs)
    write_csv(summary, out_dir / "summary.csv")
    write_text(out_dir / "summary.md", summary_markdown(summary))
    write_csv(pd.concat(epochs, ignore_index=True), out_dir / "epochs.csv")
    write_csv(pd.concat(grads, ignore_index=True), out_dir / "grad_norms.csv")
    return runs


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runs = aggregate(args.runs, args.out_dir)
    log.info("%d runs (%d ok) -> %s", len(runs), (runs["status"] == "ok").sum(), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
