"""Comparisons of models at one size and depth, with their uncertainty (no torch import).

From ``runs.csv`` (finished runs only; a diverged seed is counted, never averaged)::

    python -m rnnbench.compare --runs results/studies/grid/tables/runs.csv \
        --out-dir results/studies/grid/tables

writes ``models.csv`` (per model, size and depth: n, test perplexity mean, sd and the t-based
95% CI over seeds) and ``comparisons.csv`` (per pair of models at the same corpus, experiment,
size and depth: the difference in mean test perplexity with a percentile-bootstrap 95% CI and
Welch's t-test), and ``comparisons.md``, one table per size and depth: model | recurrent
params | hidden | lr | test ppl mean ± sd [95% CI] | Δ vs the reference model [95% CI].

A *model* is a cell with its initialisation options (``irnn`` for rnn_relu with the IRNN
initialisation, ``lstm+fb1`` for an LSTM with forget-gate bias 1); the *size* is the
recurrent-parameter budget when the experiment gives budgets (``p250k``), the total-parameter
one with ``budget_kind: total`` (``t4M``), else the hidden size (``h150``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import sys
from pathlib import Path

import pandas as pd

from rnnbench.io import write_csv, write_text
from rnnbench.params import size_part
from rnnbench.stats import bootstrap_diff_ci, mean_ci, welch

log = logging.getLogger(__name__)
MODEL_ORDER = ["rnn_tanh", "rnn_relu", "irnn", "gru", "lstm"]
KEYS = ["corpus", "experiment", "size", "layers"]


def model_label(row: pd.Series) -> str:
    """``rnn_tanh``, ``irnn`` (rnn_relu with the IRNN init), ``lstm+fb1``, ``lstm+bf16``..."""
    suffix = "+bf16" if row.get("precision") == "bf16" else ""
    if row["cell"] == "rnn_relu" and pd.notna(row.get("irnn")):
        return ("irnn" if row["irnn"] == 1 else f"irnn{row['irnn']:g}") + suffix
    if row["cell"] == "lstm" and pd.notna(row.get("forget_bias")):
        return f"lstm+fb{row['forget_bias']:g}" + suffix
    return row["cell"] + suffix


def size_label(row: pd.Series) -> str:
    """``p250k`` for a recurrent-parameter budget, ``t4M`` for a total one, else ``h150``."""
    budget = row.get("budget")
    return size_part(int(row["hidden"]), int(budget) if pd.notna(budget) else None,
                     row.get("budget_kind"))


def _order(model: str) -> tuple[int, str]:
    base = model.split("+")[0]
    return (MODEL_ORDER.index(base) if base in MODEL_ORDER else len(MODEL_ORDER), model)


def label_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``model`` and ``size`` columns (``corpus`` defaults to ptb)."""
    runs = runs.copy()
    if "corpus" not in runs:
        runs["corpus"] = "ptb"
    runs["model"] = runs.apply(model_label, axis=1)
    runs["size"] = runs.apply(size_label, axis=1)
    return runs


def models(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model, size and depth: n (finished), n_diverged, test ppl mean/sd/CI."""
    rows = []
    for key, block in label_runs(runs).groupby([*KEYS, "model"], sort=False):
        ok = block[block["status"] == "ok"]
        stats = mean_ci(ok["test_ppl"].tolist())
        first = block.iloc[0]
        rows.append({**dict(zip([*KEYS, "model"], key, strict=True)),
                     "hidden": int(first["hidden"]), "lr": first.get("lr"),
                     "grad": first.get("grad"),
                     "recurrent_params": first.get("recurrent_params"),
                     "n_runs": len(block), "n_diverged": int((block["status"] == "diverged").sum()),
                     **{f"test_ppl_{k}" if k != "n" else "n": v for k, v in stats.items()}})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_rank"] = table["model"].map(_order)
    return table.sort_values([*KEYS, "_rank"], kind="stable").drop(columns="_rank")


def comparisons(runs: pd.DataFrame, resamples: int = 10_000) -> pd.DataFrame:
    """Every pair of models at the same corpus, experiment, size and depth (a before b in
    MODEL_ORDER): mean(a) - mean(b) of test perplexity, its bootstrap CI, Welch's t and p."""
    rows = []
    labelled = label_runs(runs)
    ok = labelled[labelled["status"] == "ok"]
    for key, block in ok.groupby(KEYS, sort=False):
        by_model = {m: b["test_ppl"].tolist() for m, b in block.groupby("model")}
        for a, b in itertools.combinations(sorted(by_model, key=_order), 2):
            diff, low, high = bootstrap_diff_ci(by_model[a], by_model[b], resamples=resamples)
            t, p = welch(by_model[a], by_model[b])
            rows.append({**dict(zip(KEYS, key, strict=True)), "model_a": a, "model_b": b,
                         "n_a": len(by_model[a]), "n_b": len(by_model[b]), "diff": diff,
                         "diff_ci_low": low, "diff_ci_high": high, "welch_t": t, "p_value": p})
    return pd.DataFrame(rows)


def _interval(low: float, high: float) -> str:
    return "" if math.isnan(low) else f" [{low:.1f}, {high:.1f}]"


def _delta(pairs: pd.DataFrame, model: str, reference: str) -> str:
    """Δ of ``model`` against ``reference`` with its CI, from whichever way the pair is kept."""
    if model == reference:
        return "—"
    row = pairs[(pairs["model_a"] == model) & (pairs["model_b"] == reference)]
    sign = 1
    if row.empty:
        row, sign = pairs[(pairs["model_a"] == reference) & (pairs["model_b"] == model)], -1
    if row.empty:
        return "–"
    r = row.iloc[0]
    low, high = sorted((sign * r["diff_ci_low"], sign * r["diff_ci_high"]))
    return f"{sign * r['diff']:+.1f}" + _interval(low, high)


def markdown(table: pd.DataFrame, pairs: pd.DataFrame, reference: str = "lstm") -> str:
    """One table per corpus, experiment, size and depth; Δ against ``reference`` (or the
    block's last model when it has none)."""
    out = []
    for key, block in table.groupby(KEYS, sort=False):
        ref = reference if reference in set(block["model"]) else block["model"].iloc[-1]
        mask = pd.Series(True, index=pairs.index) if pairs.empty else (
            (pairs[KEYS] == pd.Series(dict(zip(KEYS, key, strict=True)))).all(axis=1))
        sub = pairs[mask] if not pairs.empty else pairs
        corpus, experiment, size, layers = key
        out += [f"**{experiment}** ({corpus}), {size}, {layers} layer{'s' * (layers > 1)}", "",
                "| model | recurrent params | hidden | lr (steps) | test ppl mean ± sd [95% CI] "
                f"(n) | Δ vs {ref} [95% CI] |", "|---|---|---|---|---|---|"]
        for _, r in block.iterrows():
            if r["n"] == 0:
                ppl = f"all {r['n_runs']} diverged"
            elif r["n"] == 1:
                ppl = f"{r['test_ppl_mean']:.1f} (n = 1)"
            else:
                ppl = (f"{r['test_ppl_mean']:.1f} ± {r['test_ppl_sd']:.1f}"
                       f"{_interval(r['test_ppl_ci_low'], r['test_ppl_ci_high'])} (n = {r['n']})")
            if r["n_diverged"] and r["n"]:
                ppl += f", {r['n_diverged']} diverged"
            params = "–" if pd.isna(r["recurrent_params"]) else f"{int(r['recurrent_params']):,}"
            lr = "–" if pd.isna(r["lr"]) else f"{r['lr']:g}"
            if isinstance(r.get("grad"), str):  # the gradient treatment: normalize, clip, none
                lr += f" ({r['grad']})"
            delta = _delta(sub, r["model"], ref) if r["n"] else "–"
            out.append(f"| {r['model']} | {params} | {r['hidden']} | {lr} | {ppl} | {delta} |")
        out.append("")
    out.append("CIs: t interval over seeds (per model); percentile bootstrap of the difference "
               "of means, seeds resampled per model (Δ). Finished runs only.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, type=Path, help="runs.csv")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--reference", default="lstm", help="model the Δ column is against")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runs = pd.read_csv(args.runs)
    table, pairs = models(runs), comparisons(runs)
    write_csv(table, args.out_dir / "models.csv")
    write_csv(pairs, args.out_dir / "comparisons.csv")
    write_text(args.out_dir / "comparisons.md", markdown(table, pairs, args.reference))
    log.info("%d models, %d pairs -> %s", len(table), len(pairs), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
