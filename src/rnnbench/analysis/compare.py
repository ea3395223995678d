"""Comparisons of models at one size and depth, with their uncertainty (no torch import).

From ``runs.csv`` (finished runs only; a diverged seed is counted, never averaged)::

    python -m rnnbench.analysis.compare --runs results/studies/grid/tables/runs.csv \
        --out-dir results/studies/grid/tables

writes ``models.csv`` (per model, size and depth: n, test perplexity mean, sd and the t-based
95% CI over seeds), ``comparisons.csv`` (per pair of models at the same corpus, experiment,
size and depth: the difference in mean test perplexity with Welch's 95% t interval, its
Welch-Satterthwaite df, t and p; the p-value Holm-adjusted within two families, every pair of
the block and every model against the reference model, and for the latter Welch's
simultaneous 95% intervals; a studentized bootstrap 95% CI as a secondary check), and
``comparisons.md`` and ``comparisons.html`` (the report's), one table per size and depth:
model | recurrent params | hidden | lr | test ppl mean ± sd [95% CI] | Δ vs the reference
model [Welch's simultaneous 95% CI, Bonferroni over the family "every model against the
reference"] and its Holm-adjusted p within that family.

A *model* is a cell with its variant options (rnnbench.analysis.labels: ``irnn`` for rnn_relu with
the IRNN initialisation, ``lstm+fb1`` for an LSTM with forget-gate bias 1); the *size* is the
recurrent-parameter budget when the experiment gives budgets (``p250k``), the total-parameter
one with ``budget_kind: total`` (``t4M``), else the hidden size (``h150``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rnnbench.analysis import render
from rnnbench.analysis.context_tables import model_context
from rnnbench.analysis.labels import model_rank as _order
from rnnbench.analysis.pairs import (
    KEYS,
    comparisons,
    family_intervals,
    label_runs,
    reference_model,
    vs_reference,
)
from rnnbench.analysis.render import Table
from rnnbench.analysis.stats import mean_ci
from rnnbench.experiment.trials import tuning_budgets, with_edges
from rnnbench.io import write_csv

log = logging.getLogger(__name__)
def _context_stats(ok: pd.DataFrame, context: pd.DataFrame | None) -> dict:
    """The effective context over the finished runs ``ok`` measured in ``context`` (a study's
    context.csv; rnnbench.analysis.context_tables); none when the study does not measure it."""
    if context is None:
        return {}
    mine = context.merge(ok[["experiment", "run_id"]], on=["experiment", "run_id"])
    return model_context(mine)


def _epoch_stats(block: pd.DataFrame, ok: pd.DataFrame) -> dict:
    """Under the plateau schedule (trained until validation stops improving): the range over
    finished runs of the epoch of best validation perplexity (1-based) and of the epochs
    trained, and how many ended at the epoch cap instead (not converged by the schedule)."""
    if "schedule" not in block or not (block["schedule"] == "plateau").any() or ok.empty:
        return {}
    best, done = ok["best_epoch"] + 1, ok["epochs_done"]
    capped = ok["stopped"].eq("max_epochs").sum() if "stopped" in ok else math.nan
    return {"best_epoch_min": int(best.min()), "best_epoch_max": int(best.max()),
            "epochs_min": int(done.min()), "epochs_max": int(done.max()),
            "n_at_max_epochs": capped, "max_epochs": int(block["epochs"].max())}


def models(runs: pd.DataFrame, context: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model, size and depth: n (finished), n_diverged, test ppl mean/sd/CI, the
    epochs to convergence under the plateau schedule, and, given the study's context.csv, the
    effective context of its finished runs with its CI (rnnbench.analysis.context_tables)."""
    rows = []
    for key, block in label_runs(runs).groupby([*KEYS, "model"], sort=False):
        ok = block[block["status"] == "ok"]
        stats = mean_ci(ok["test_ppl"].tolist())
        first = block.iloc[0]
        rows.append({**dict(zip([*KEYS, "model"], key, strict=True)),
                     "hidden": int(first["hidden"]), "lr": first.get("lr"),
                     "grad": first.get("grad"), "tuning_edge": first.get("tuning_edge"),
                     "recurrent_params": first.get("recurrent_params"),
                     "params": first.get("params"), "budget_kind": first.get("budget_kind"),
                     "n_runs": len(block), "n_diverged": int((block["status"] == "diverged").sum()),
                     **{f"test_ppl_{k}" if k != "n" else "n": v for k, v in stats.items()},
                     **_epoch_stats(block, ok), **_context_stats(ok, context)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_rank"] = table["model"].map(_order)
    return table.sort_values([*KEYS, "_rank"], kind="stable").drop(columns="_rank")


def _interval(low: float, high: float, fmt: str = ".1f") -> str:
    return "" if math.isnan(low) else f" [{low:{fmt}}, {high:{fmt}}]"


def _p(p: float) -> str:
    return "" if math.isnan(p) else ", p < 0.001" if p < 0.001 else f", p = {p:.3f}"


def _delta(pairs: pd.DataFrame, model: str, reference: str) -> str:
    """Δ of ``model`` against ``reference`` with Welch's simultaneous interval and the Holm p
    of the family "every model against ``reference``", from whichever way the pair is kept."""
    if model == reference:
        return "—"
    holm_p = vs_reference(pairs, reference)
    row = pairs[(pairs["model_a"] == model) & (pairs["model_b"] == reference)]
    sign = 1
    if row.empty:
        row, sign = pairs[(pairs["model_a"] == reference) & (pairs["model_b"] == model)], -1
    if row.empty:
        return "–"
    r = row.iloc[0]
    family = family_intervals(pairs, reference)
    if row.index[0] in family.index:
        r = r.copy()
        r[["diff_ci_low", "diff_ci_high"]] = family.loc[row.index[0], ["family_ci_low",
                                                                       "family_ci_high"]]
    low, high = sorted((sign * r["diff_ci_low"], sign * r["diff_ci_high"]))
    return f"{sign * r['diff']:+.1f}" + _interval(low, high) + _p(holm_p[row.index[0]])


def _holm_only(pairs: pd.DataFrame, ref: str) -> bool:
    """Whether a Δ against ``ref`` has a Holm p below 0.05 and a simultaneous interval that
    still holds 0 (Holm's step-down test is more powerful than Bonferroni's intervals)."""
    family = family_intervals(pairs, ref)
    if family.empty:
        return False
    p = vs_reference(pairs, ref).loc[family.index]
    return bool(((p < 0.05) & (family["family_ci_low"] <= 0)
                 & (family["family_ci_high"] >= 0)).any())


def _footnote(references: set[str], edges: bool = False, plateau: bool = False,
              context: bool = False, holm_only: bool = False) -> str:
    family = (f"every model against {next(iter(references))}" if len(references) == 1
              else "every model against the model of its Δ column")
    edge = (" [edge: lr min]: the tuned value is the smallest (max: the largest) of its search "
            "space, so a wider space might have selected beyond it." if edges else "")
    return ("CIs: t interval over seeds (per model); Welch's t interval of the difference of "
            "means, Welch-Satterthwaite df, at 1 − 0.05/m for the m comparisons of the family "
            f'"{family}" (Bonferroni: all m hold together with 95% confidence; Δ). p: Welch\'s '
            "test of Δ, Holm-adjusted within that family; comparisons.csv also has each Δ's own "
            "95% interval, Holm over every pair and a studentized-bootstrap CI. Finished runs "
            f"only.{edge}"
            + (" A Δ can have Holm p < 0.05 while its simultaneous interval still reaches 0: "
               "Holm's step-down test is more powerful than the Bonferroni correction of the "
               "intervals; both keep the chance of any false claim in the family at 5%."
               if holm_only else "")
            + (" Epochs: the epoch of best validation perplexity and, in brackets, the epochs "
               "trained until the plateau schedule stopped (min–max over seeds)."
               if plateau else "")
            + (" Effective context: the smallest k of the measured grid from which on cutting "
               "the context to the last k tokens costs at most 1% of the loss, for the mean "
               "over seeds of that cost; its CI, the same k for the edges of the cost's "
               "pointwise 95% interval (the t interval over seeds and the bootstrap over the "
               "validation targets they share, in quadrature; one seed: its bootstrap "
               "interval); ≥: the longest context measured."
               if context else ""))


def _span(low: float, high: float) -> str:
    return f"{int(low)}" if low == high else f"{int(low)}–{int(high)}"


def _epochs_cell(r: pd.Series) -> str:
    """``7 (10)``, or ranges over seeds ``6–8 (9–11)``; runs that hit the epoch cap, named."""
    if pd.isna(r.get("epochs_min")):
        return "–"
    cell = (f"{_span(r['best_epoch_min'], r['best_epoch_max'])} "
            f"({_span(r['epochs_min'], r['epochs_max'])})")
    capped = r.get("n_at_max_epochs")
    if pd.notna(capped) and capped:
        cell += f", {int(capped)} stopped at the cap of {int(r['max_epochs'])}"
    return cell


def _context_cell(r: pd.Series) -> str:
    """The model's effective context (a k of the grid) with its interval; "≥" when it is the
    longest context measured."""
    if not r.get("effective_context_n"):
        return "–"
    at_least = "≥ " if bool(r.get("effective_context_censored", False)) else ""
    return (f"{at_least}{r['effective_context']:g}"
            + _interval(r["effective_context_ci_low"], r["effective_context_ci_high"], "g"))


def model_tables(table: pd.DataFrame, pairs: pd.DataFrame, reference: str = "lstm",
                 budgets: Mapping[str, str] | None = None) -> tuple[list[Table], list[str]]:
    """One table per corpus, experiment, size and depth; Δ against ``reference`` (or the
    block's last model when it has none); under a tuned experiment's table, its tuning
    budget (``budgets``: experiment -> sentence, rnnbench.experiment.trials.tuning_budgets).
    With the page's footnote (rnnbench.analysis.render draws them)."""
    out: list[Table] = []
    references = set()
    holm_only = False
    for key, block in table.groupby(KEYS, sort=False):
        ref = reference_model(block["model"], reference)
        references.add(ref)
        mask = pd.Series(True, index=pairs.index) if pairs.empty else (
            (pairs[KEYS] == pd.Series(dict(zip(KEYS, key, strict=True)))).all(axis=1))
        sub = pairs[mask] if not pairs.empty else pairs
        holm_only |= not sub.empty and _holm_only(sub, ref)
        corpus, experiment, size, layers = key
        measured = ("effective_context_n" in block
                    and bool((block["effective_context_n"] > 0).any()))
        total = bool((block["budget_kind"] == "total").all()) if "budget_kind" in block else False
        plateau = "epochs_min" in block and bool(block["epochs_min"].notna().any())
        rendered = Table(
            ["model", f"{'total' if total else 'recurrent'} params", "hidden", "lr (steps)",
             *(["epochs to best valid (trained)"] if plateau else []),
             "test ppl mean ± sd [95% CI] (n)", f"Δ vs {ref} [simultaneous 95% CI], Holm p",
             *(["effective context, tokens [95% CI]"] if measured else [])],
            text_columns=1,
            title=experiment,
            subtitle=f"({corpus}), {size}, {layers} layer{'s' * (layers > 1)}")
        for _, r in block.iterrows():
            rendered.rows.append(_model_row(r, sub, ref, total, plateau, measured))
        if budgets and experiment in budgets:
            rendered.notes.append(budgets[experiment])
        out.append(rendered)
    edges = "tuning_edge" in table and table["tuning_edge"].map(
        lambda e: isinstance(e, str)).any()
    plateau = "epochs_min" in table and bool(table["epochs_min"].notna().any())
    context = ("effective_context_n" in table
               and bool((table["effective_context_n"] > 0).any()))
    return out, [_footnote(references, edges, plateau, context, holm_only)]


def _model_row(r: pd.Series, sub: pd.DataFrame, ref: str, total: bool, plateau: bool,
               measured: bool) -> list[str]:
    """One model's cells in its block's table."""
    if r["n"] == 0:
        ppl = f"all {r['n_runs']} diverged"
    elif r["n"] == 1:
        ppl = f"{r['test_ppl_mean']:.1f} (n = 1)"
    else:
        ppl = (f"{r['test_ppl_mean']:.1f} ± {r['test_ppl_sd']:.1f}"
               f"{_interval(r['test_ppl_ci_low'], r['test_ppl_ci_high'])} (n = {r['n']})")
    if r["n_diverged"] and r["n"]:
        ppl += f", {r['n_diverged']} diverged"
    count = r["params"] if total else r["recurrent_params"]
    params = "–" if pd.isna(count) else f"{int(count):,}"
    lr = "–" if pd.isna(r["lr"]) else f"{r['lr']:g}"
    if isinstance(r.get("grad"), str):  # the gradient treatment: normalize, clip, none
        lr += f" ({r['grad']})"
    if isinstance(r.get("tuning_edge"), str):  # the selection is at an end of its space
        lr += f" [edge: {r['tuning_edge'].replace('=', ' ')}]"
    delta = _delta(sub, r["model"], ref) if r["n"] else "–"
    return [r["model"], params, str(r["hidden"]), lr,
            *([_epochs_cell(r)] if plateau else []), ppl, delta,
            *([_context_cell(r)] if measured else [])]


def markdown(table: pd.DataFrame, pairs: pd.DataFrame, reference: str = "lstm",
             budgets: Mapping[str, str] | None = None) -> str:
    """comparisons.md: :func:`model_tables` as Markdown."""
    return render.markdown(*model_tables(table, pairs, reference, budgets))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, type=Path, help="runs.csv")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--reference", default="lstm", help="model the Δ column is against")
    parser.add_argument("--trials", type=Path,
                        help="trials.csv: mark edge selections, say the tuning budget")
    parser.add_argument("--context", type=Path,
                        help="context.csv: each model's effective context (context_tables)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runs = pd.read_csv(args.runs)
    budgets = None
    if args.trials:
        trials = pd.read_csv(args.trials)
        runs, budgets = with_edges(runs, trials), tuning_budgets(trials)
    context = pd.read_csv(args.context) if args.context else None
    table, pairs = models(runs, context), comparisons(runs, reference=args.reference)
    write_csv(table, args.out_dir / "models.csv")
    write_csv(pairs, args.out_dir / "comparisons.csv")
    tables, notes = model_tables(table, pairs, args.reference, budgets)
    for name in ("comparisons.md", "comparisons.html"):  # the README's and the report's
        render.write_page(args.out_dir / name, tables, "Model comparisons", notes)
    log.info("%d models, %d pairs -> %s", len(table), len(pairs), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
