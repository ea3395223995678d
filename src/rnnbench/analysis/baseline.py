"""An experiment against its published baseline: what a change of precision costs.

An experiment with ``baseline: <name>`` (config/precision.yaml: the course lab's recipes in
bf16, against config/reproduce.yaml's published fp32 runs in ``results/reference/<name>/``)
is compared per model (cell, hidden, layers) with the baseline's runs: mean test perplexity
± sd over the seeds that finished on each side, the relative difference with a 95% CI, and the
median training tokens/s of each (measured in separate runs, possibly on another machine or
under another load: the table names both). Writes ``precision.csv``, ``precision.md`` and
``precision.html``.

The relative difference is Δ% = 100 (mean - baseline mean) / baseline mean, and its CI is
Welch's t interval of the difference of means (Welch-Satterthwaite df, ``rnnbench.analysis.stats``)
divided by the baseline mean, as is the difference itself; Welch's df and p are in the CSV.
Dividing by the baseline mean as if it were exact ignores its own uncertainty, a second-order
effect: its relative standard error (sd / sqrt(n) / mean, under 0.3% for the published
recipes) rescales each bound by that fraction of itself, under 0.01 percentage point here.
Usage::

    python -m rnnbench.analysis.baseline --runs results/studies/grid/tables/runs.csv \\
        --baselines '{"seed_rnn_bf16": "seed_rnn"}' --out-dir results/studies/grid/tables \\
        results/reference/seed_rnn/rnn_tanh-h150-l1-s1 ...
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from rnnbench.analysis import render
from rnnbench.analysis.aggregate import run_record
from rnnbench.analysis.labels import model_label
from rnnbench.analysis.render import Table
from rnnbench.analysis.stats import welch_ci
from rnnbench.io import write_csv

MODEL = ["cell", "hidden", "layers"]
COLUMNS = ["experiment", "baseline", *MODEL, "precision", "baseline_precision",
           "n", "test_ppl_mean", "test_ppl_sd", "baseline_n", "baseline_test_ppl_mean",
           "baseline_test_ppl_sd", "delta_pct", "delta_pct_ci_low", "delta_pct_ci_high",
           "welch_df", "p_value",
           "tokens_per_s", "baseline_tokens_per_s", "speedup", "where", "baseline_where"]


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that finished with a test perplexity: the only ones a mean may be over."""
    ok = runs[(runs["status"] == "ok") & runs["test_ppl"].notna()]
    return ok[ok["test_ppl"].map(math.isfinite)]


def _where(runs: pd.DataFrame) -> str:
    """``CPU (AMD EPYC), torch 2.13.0+cpu`` of a set of runs (joined when they differ)."""
    places = {f"{'GPU ' + g if isinstance(g, str) and g else 'CPU'} "
              f"({g if isinstance(g, str) and g else c}), torch {t}"
              for g, c, t in zip(runs.get("gpu", [None] * len(runs)), runs["cpu"], runs["torch"],
                                 strict=True)}
    return "; ".join(sorted(places))


def compare(runs: pd.DataFrame, baselines: dict[str, str], base_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, model) of ``runs`` whose experiment names a baseline."""
    rows = []
    for experiment, base in baselines.items():
        ours = runs[runs["experiment"] == experiment]
        theirs = base_runs[base_runs["experiment"] == base]
        for model, group in ours.groupby(MODEL, sort=True):
            match = theirs[(theirs[MODEL] == pd.Series(model, index=MODEL)).all(axis=1)]
            a, b = _finished(group), _finished(match)
            row = {"experiment": experiment, "baseline": base,
                   **dict(zip(MODEL, model, strict=True)),
                   "precision": "/".join(sorted(set(group["precision"]))),
                   "baseline_precision": "/".join(sorted(set(match["precision"]))) or None,
                   "n": len(a), "baseline_n": len(b)}
            for prefix, side in (("", a), ("baseline_", b)):
                row[f"{prefix}test_ppl_mean"] = side["test_ppl"].mean() if len(side) else math.nan
                row[f"{prefix}test_ppl_sd"] = (side["test_ppl"].std(ddof=1) if len(side) > 1
                                               else math.nan)
                row[f"{prefix}tokens_per_s"] = (side["tokens_per_s"].median() if len(side)
                                                else math.nan)
                row[f"{prefix}where"] = _where(side) if len(side) else ""
            row.update(delta_pct=math.nan, delta_pct_ci_low=math.nan, delta_pct_ci_high=math.nan,
                       welch_df=math.nan, p_value=math.nan, speedup=math.nan)
            if len(a) and len(b):  # undefined, not 0, when a side has no finished run
                ref = row["baseline_test_ppl_mean"]
                w = welch_ci(a["test_ppl"], b["test_ppl"])  # NaN bounds with one seed a side
                row.update(delta_pct=100 * w["diff"] / ref,
                           delta_pct_ci_low=100 * w["ci_low"] / ref,
                           delta_pct_ci_high=100 * w["ci_high"] / ref, welch_df=w["df"],
                           p_value=w["p"],
                           speedup=row["tokens_per_s"] / row["baseline_tokens_per_s"])
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _num(value: float, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        format(value, spec)


def _ppl(mean: float, sd: float, n: int) -> str:
    return "–" if not n else f"{mean:.1f} ± {_num(sd, '.1f')} (n={n})"


def precision_table(table: pd.DataFrame) -> Table:
    """recipe | model | baseline test ppl | ours | Δ% [Welch 95% CI] | tokens/s each | speed-up."""
    out = Table(["recipe", "model", "test ppl: baseline (precision)",
                 "test ppl: this (precision)", "Δ% [Welch 95% CI]", "tokens/s: baseline",
                 "tokens/s: this", "speed-up", "where"], text_columns=2)
    for r in table.itertuples():
        ci = (f" [{_num(r.delta_pct_ci_low, '+.2f')}, {_num(r.delta_pct_ci_high, '+.2f')}]"
              if not math.isnan(r.delta_pct_ci_low) else "")
        where = r.where if r.where == r.baseline_where else f"{r.baseline_where} → {r.where}"
        # the README's name of this side's model (lstm+bf16), then its size and depth
        name = model_label({"cell": r.cell, "precision": r.precision})
        out.rows.append([
            f"{r.baseline} → {r.experiment}", f"{name}-h{r.hidden}-l{r.layers}",
            f"{_ppl(r.baseline_test_ppl_mean, r.baseline_test_ppl_sd, r.baseline_n)} "
            f"({r.baseline_precision})",
            f"{_ppl(r.test_ppl_mean, r.test_ppl_sd, r.n)} ({r.precision})",
            _num(r.delta_pct, "+.2f") + ci, _num(r.baseline_tokens_per_s, ",.0f"),
            _num(r.tokens_per_s, ",.0f"), _num(r.speedup, ".2f") + "x", where])
    return out


def markdown(table: pd.DataFrame) -> str:
    """precision.md: :func:`precision_table` as Markdown."""
    return render.markdown(precision_table(table))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, type=Path, help="this config's runs.csv")
    p.add_argument("--baselines", required=True, help="JSON {experiment: baseline experiment}")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("baseline_dirs", nargs="+", type=Path,
                   help="run folders of the baselines (results/reference/<baseline>/<run>)")
    args = p.parse_args(argv)
    runs = pd.read_csv(args.runs)
    base = pd.DataFrame([run_record(d) for d in args.baseline_dirs])  # precision: fp32 if absent
    table = compare(runs, json.loads(args.baselines), base)
    write_csv(table, args.out_dir / "precision.csv")
    for name in ("precision.md", "precision.html"):  # the README's and the report's
        render.write_page(args.out_dir / name, precision_table(table), "Against the baseline")
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
