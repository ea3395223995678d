"""Collect every run's files into tidy tables (no torch import). Usage::

    python -m rnnbench.analysis.aggregate --out-dir results/studies/grid/tables results/runs/grid/*/

Writes ``runs.csv`` (one row per run, with the share of ``<unk>`` in each split of its corpus
where ``--stats CORPUS=stats.json`` gives it), ``summary.csv`` (per configuration across
seeds: mean, sd and n over the runs that finished), its readable, rounded forms ``summary.md`` and
``summary.html`` (see rnnbench.analysis.tables), ``epochs.csv`` (every run's epoch table) and
``grad_norms.csv`` (each run's global gradient norm over training, in ``GRAD_BINS`` bins of
steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.analysis.labels import model_label, model_rank
from rnnbench.analysis.stats import mean_ci
from rnnbench.analysis.tables import summary_html, summary_markdown
from rnnbench.config import RunConfig
from rnnbench.data.sources import unk_shares
from rnnbench.io import read_json, write_csv, write_text

log = logging.getLogger(__name__)
GRAD_BINS = 100
ENV_COLUMNS = ["device", "gpu", "cpu", "threads", "torch", "python", "rnnbench", "code_version",
               "hostname", "slurm_job_id"]
CELL_ORDER = ["rnn_tanh", "rnn_relu", "lstm", "gru", "min_gru", "min_lstm"]
METRICS = ["test_ppl", "valid_ppl", "train_ppl", "test_stream_ppl", "seconds_per_epoch",
           "tokens_per_s"]
# A configuration is its corpus, its experiment and every RunConfig field but the seed (what
# the summary averages over) and the device (the machine, not the recipe). Grouping by these
# names, not by "every column but a list of known others", means that no provenance, timing
# or metric column, present or future, can split a configuration's seeds into rows of n = 1.
CONFIG_FIELDS = [f.name for f in dataclasses.fields(RunConfig)
                 if f.name not in {"seed", "device", "extra"}]
GROUP_COLUMNS = ["corpus", "experiment", *CONFIG_FIELDS]
SPLITS = ("valid", "test")

DEFAULTED_FIELDS = [f.name for f in dataclasses.fields(RunConfig)
                    if f.default is not dataclasses.MISSING]


def config_fields(config: dict, path: Path) -> dict:
    """A train.json's config; one that lacks a field of RunConfig stops, named (grouping seeds
    by a missing column would silently drop them)."""
    missing = [name for name in CONFIG_FIELDS if name not in config]
    if missing:
        raise ValueError(f"{path}: its config has no {', '.join(missing)}; it was written by "
                         "an rnnbench older than its readers. Retrain the run, or add the "
                         "fields with their RunConfig defaults.")
    # runs.csv's column order: the fields with a default in RunConfig's order, then the rest
    return {**{k: config[k] for k in DEFAULTED_FIELDS if k in config}, **config}


def eval_coverage(ev: dict) -> dict:
    """Tokens scored and in a full pass per split, their share, and ``eval_capped`` (NaN
    for a split not scored: a diverged run's eval.json)."""
    out, capped = {}, bool(ev.get("eval_capped", False))
    for split in SPLITS:
        tokens = ev.get(f"{split}_tokens")
        total = ev.get(f"{split}_tokens_total")
        out[f"{split}_tokens"] = np.nan if tokens is None else tokens
        out[f"{split}_tokens_total"] = np.nan if total is None else total
        out[f"{split}_token_share"] = (tokens / total if tokens is not None and total
                                       else np.nan)
    out["eval_capped"] = capped
    return out


PARAM_COLUMNS = ["params", "embedding_decoder_params", "recurrent_params"]
# The share of each split's tokens that are <unk> (the corpus's stats.json): a valid/test share
# with none in train means perplexities of an untrained output (rnnbench.data.tokenizer).
UNK_COLUMNS = ["train_unk_share", "valid_unk_share", "test_unk_share"]


def run_record(run_dir: Path) -> dict:
    """One row of runs.csv from a run folder (train.json, eval.json, history.csv)."""
    meta, ev = read_json(run_dir / "train.json"), read_json(run_dir / "eval.json")
    hist = pd.read_csv(run_dir / "history.csv")
    cfg = config_fields(meta["config"], run_dir / "train.json")
    row = {"corpus": meta["corpus"], "experiment": run_dir.parent.name,
           "run_id": meta["run_id"], **cfg}
    row["precision"] = cfg["precision"] or "fp32"  # None is fp32
    row["model"] = model_label(row)  # the one name of the model (rnnbench.analysis.labels)
    row["vocab_size"] = meta.get("vocab_size")  # the ppl of a uniform guess (tuning_curve)
    # what a budget counts: None is recurrent; no budget, no kind
    row["budget_kind"] = cfg["budget_kind"] or ("recurrent" if pd.notna(cfg["budget"]) else None)
    row.update({k: meta[k] for k in ("embedding_decoder_params", "recurrent_params")})
    # evaluation marks a run whose valid/test perplexity overflowed diverged
    # (rnnbench.diagnostics.evaluate)
    status = "diverged" if ev.get("status") == "diverged" else meta["status"]
    row.update(params=meta["params"], status=status, diverged_step=meta["diverged_step"],
               epochs_done=meta["epochs_done"], best_epoch=meta["best_epoch"],
               # why training ended: plateau_decays (converged), max_epochs, diverged
               stopped=meta["stopped"])
    last = hist.iloc[-1] if len(hist) else {}
    row.update(train_ppl=last.get("train_ppl", np.nan), valid_ppl=ev.get("valid_ppl", np.nan),
               test_ppl=ev.get("test_ppl", np.nan),
               test_stream_ppl=ev.get("test_stream_ppl", np.nan))
    row.update(eval_coverage(ev))
    row["seconds_per_epoch"] = hist["seconds"].median() if "seconds" in hist else np.nan
    row["tokens_per_s"] = hist["tokens_per_s"].median() if "tokens_per_s" in hist else np.nan
    row["wall_seconds"] = meta["wall_seconds"]  # None: resumed from a checkpoint without it
    row["resumes"] = meta["resumes"]  # None: not recorded (published runs of early versions)
    for name in ("p50", "p90", "p99", "max"):
        row[f"grad_norm_{name}"] = meta.get(f"grad_norm_{name}", np.nan)
    row.update({k: meta.get(k) for k in ENV_COLUMNS})
    return row


def labels(row: dict) -> dict:
    """The identifying columns copied into the long tables."""
    return {k: row[k] for k in ("corpus", "experiment", "run_id", "model", "cell", "hidden",
                                "layers", "budget", "budget_kind", "seed")}


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
    """Per configuration (GROUP_COLUMNS): mean, sd and n over its ok runs, and its diverged ones.

    n counts the runs that finished (status ok) and the means and sds are over those alone; a
    configuration with none has n = 0 and empty (NaN) metrics, never a number. ``diverged_steps``
    lists the step at which each diverged seed stopped.
    """
    runs = runs.assign(**{c: np.nan for c in GROUP_COLUMNS if c not in runs})
    groups = []
    for _, block in runs.groupby(GROUP_COLUMNS, sort=False, dropna=False):
        ok = block[block["status"] == "ok"]
        diverged = block[block["status"] == "diverged"]
        row = block.iloc[0][GROUP_COLUMNS].to_dict()
        if "model" in block:  # a function of the configuration (rnnbench.analysis.labels)
            row["model"] = block["model"].iloc[0]
        steps = sorted(int(s) for s in diverged["diverged_step"].dropna())
        row.update(n=len(ok), n_runs=len(block), n_diverged=len(diverged),
                   diverged_steps=", ".join(map(str, steps)),
                   # the same for every seed: no ok run needed
                   **{c: block[c].max() for c in PARAM_COLUMNS + UNK_COLUMNS if c in block})
        row.update(_coverage(ok))
        for m in METRICS:
            values = ok.get(m, pd.Series(dtype=float))
            row[f"{m}_mean"] = values.mean()
            row[f"{m}_sd"] = values.std(ddof=1) if len(ok) > 1 else np.nan
        for m in ("test_ppl", "valid_ppl"):  # t-based 95% CI of the mean (NaN for one seed)
            finite = ok.get(m, pd.Series(dtype=float)).dropna()
            ci = mean_ci(finite.tolist()) if len(finite) else {"ci_low": np.nan, "ci_high": np.nan}
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ci["ci_low"], ci["ci_high"]
        groups.append(row)
    summary = pd.DataFrame(groups)
    cell_rank = summary["cell"].map({c: i for i, c in enumerate(CELL_ORDER)})
    if "model" in summary:  # each model apart, in the comparison's order
        cell_rank = summary["model"].map(model_rank)
    return summary.assign(_rank=cell_rank).sort_values(
        ["corpus", "experiment", "_rank", "hidden", "layers"], kind="stable").drop(columns="_rank")


def _coverage(ok: pd.DataFrame) -> dict:
    """Whether the ok runs' evaluation was capped, and the tokens scored of each split."""
    out = {"eval_capped": bool(ok.get("eval_capped", pd.Series(dtype=bool)).eq(True).any())}
    for split in SPLITS:
        for key in (f"{split}_tokens", f"{split}_tokens_total"):
            out[key] = ok[key].max() if key in ok else np.nan  # one corpus, one config: equal
    return out


def aggregate(run_dirs: list[Path], out_dir: Path,
              stats: dict[str, Path] | None = None) -> pd.DataFrame:
    """Build and write every table; return runs.csv's frame. ``stats``: corpus -> its
    stats.json, for the share of ``<unk>`` tokens in each split (columns
    ``{split}_unk_share``; NaN for a corpus without one)."""
    shares = {corpus: unk_shares(path) for corpus, path in (stats or {}).items()}
    rows, epochs, grads = [], [], []
    for run_dir in run_dirs:
        row = run_record(run_dir)
        row.update({c: shares.get(row["corpus"], {}).get(c, np.nan) for c in UNK_COLUMNS})
        rows.append(row)
        hist = pd.read_csv(run_dir / "history.csv")
        epochs.append(hist.assign(**labels(row)))
        grads.append(grad_bins(run_dir).assign(**labels(row)))
    runs = pd.DataFrame(rows)
    write_csv(runs, out_dir / "runs.csv")
    summary = summarize(runs)
    write_csv(summary, out_dir / "summary.csv")
    write_text(out_dir / "summary.md", summary_markdown(summary))
    write_text(out_dir / "summary.html", summary_html(summary))
    write_csv(pd.concat(epochs, ignore_index=True), out_dir / "epochs.csv")
    write_csv(pd.concat(grads, ignore_index=True), out_dir / "grad_norms.csv")
    return runs


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--stats", action="append", default=[], metavar="CORPUS=PATH",
                        help="a corpus's stats.json: the <unk> share of its splits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stats = dict(item.split("=", 1) for item in args.stats)
    runs = aggregate(args.runs, args.out_dir, {k: Path(v) for k, v in stats.items()})
    log.info("%d runs (%d ok) -> %s", len(runs), (runs["status"] == "ok").sum(), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
