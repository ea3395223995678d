"""The answer across sizes: one table of every model at every parameter budget of an experiment.

From compare_models's per-size tables (``models.csv``: each model's test perplexity over seeds
with its t interval, epochs and effective context; ``comparisons.csv``: every pair's Welch
statistics), for each experiment with two or more sizes, one row per model and size:

- test perplexity, mean over finished seeds with its 95% t interval;
- Δ against the reference model of the same size (the LSTM by default), with Welch's interval
  at 1 − 0.05/m and Holm's p, where the family is every model against the reference at *every*
  size of the experiment (m comparisons): all m intervals hold together with 95% confidence,
  and the chance of any false claim across sizes is at most 5%. (compare_models's per-size
  intervals correct for one size's family only.)
- epochs (of best validation, and trained), and the effective context with its interval.

Writes ``sizes.csv`` (every column) and ``sizes.md``, and beside them what bf16 costs where a
model is trained in both precisions (``precision_check.csv``, ``.md``). Usage::

    python -m rnnbench.analysis.sizes --tables results/studies/scaling/tables
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.analysis import precision_check, render
from rnnbench.analysis.labels import model_rank
from rnnbench.analysis.stats import family
from rnnbench.io import write_csv, write_text

log = logging.getLogger(__name__)
LEVEL = 0.95
COLUMNS = ["corpus", "experiment", "layers", "size", "budget", "budget_kind", "model", "params",
           "hidden",
           "n", "n_runs", "test_ppl_mean", "test_ppl_ci_low", "test_ppl_ci_high", "reference",
           "delta", "delta_p", "delta_p_holm", "family_size", "delta_ci_low", "delta_ci_high",
           "best_epoch_min", "best_epoch_max", "epochs_min", "epochs_max", "effective_context",
           "effective_context_ci_low", "effective_context_ci_high", "effective_context_censored"]
KEYS = ["corpus", "experiment", "layers"]


def _signed(pairs: pd.DataFrame, model: str, ref: str) -> pd.Series | None:
    """The pair of ``model`` and ``ref`` with its difference as model − ref, or None."""
    hit = pairs[((pairs["model_a"] == model) & (pairs["model_b"] == ref))
                | ((pairs["model_a"] == ref) & (pairs["model_b"] == model))]
    if hit.empty:
        return None
    row = hit.iloc[0].copy()
    if row["model_a"] == ref:
        row["diff"] = -row["diff"]
    return row


def deltas(models: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per model row of one experiment and depth: Δ vs its size's reference, Welch's p, and
    over the experiment's whole family Holm's p and the simultaneous interval."""
    rows = []
    for _, m in models.iterrows():
        block = pairs[(pairs["size"] == m["size"])]
        ref = block["reference"].iloc[0] if len(block) else None
        pair = _signed(block, m["model"], ref) if ref and m["model"] != ref else None
        rows.append({"reference": ref,
                     "delta": pair["diff"] if pair is not None else math.nan,
                     "delta_p": pair["p_value"] if pair is not None else math.nan,
                     "_se": pair["welch_se"] if pair is not None else math.nan,
                     "_df": pair["welch_df"] if pair is not None else math.nan})
    out = pd.DataFrame(rows, index=models.index)
    out["delta_p_holm"], half, out["family_size"] = family(out["delta_p"], out["_se"],
                                                           out["_df"], LEVEL)
    out["delta_ci_low"] = out["delta"] - half
    out["delta_ci_high"] = out["delta"] + half
    return out.drop(columns=["_se", "_df"])


def budget_of(size: str) -> float:
    """The nominal budget of a size label (``t500k`` -> 500000, ``p1.5M`` -> 1500000); NaN for
    a hidden size (``h32``)."""
    if not size or size[0] not in "tp":
        return math.nan
    text, scale = size[1:], 1
    for unit, factor in (("k", 1_000), ("M", 1_000_000)):
        if text.endswith(unit):
            text, scale = text[:-1], factor
    return float(text) * scale


def sizes_table(models: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Every model at every size of the experiments (and depths) with two or more sizes."""
    models = models.assign(budget=models["size"].map(budget_of))
    parts = []
    for _, block in models.groupby(KEYS, sort=False):
        if block["size"].nunique() < 2:
            continue
        key = block[KEYS].iloc[0]
        mine = pairs[(pairs[KEYS] == key.to_numpy()).all(axis=1)]
        block = block.join(deltas(block, mine))
        parts.append(block)
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    table["_rank"] = table["model"].map(model_rank)
    table = table.sort_values(["experiment", "layers", "_rank", "params"])
    # columns a study does not have (no plateau schedule, no context) stay, empty
    return table.reindex(columns=COLUMNS).reset_index(drop=True)


def _ci(mean: float, low: float, high: float, digits: int = 1) -> str:
    """``147.8 [138.5, 157.2]``; the mean alone without an interval; ``—`` for none."""
    if not np.isfinite(mean):
        return "—"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _delta(r: pd.Series) -> str:
    """``+29.2 [14.7, 43.7], p = 0.002`` (simultaneous interval, Holm p); ``—`` for the
    reference itself."""
    if r["model"] == r["reference"] or not np.isfinite(r["delta"]):
        return "—"
    text = f"{r['delta']:+.1f}"
    if np.isfinite(r["delta_ci_low"]):
        text += f" [{r['delta_ci_low']:+.1f}, {r['delta_ci_high']:+.1f}]"
    p = r["delta_p_holm"]
    if np.isfinite(p):
        text += ", p < 0.001" if p < 0.001 else f", p = {p:.3f}"
    return text


def _span(low: float, high: float) -> str:
    """``9–11`` or ``9``; ``—`` for none."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "—"
    return f"{low:.0f}" if low == high else f"{low:.0f}–{high:.0f}"


def _context(r: pd.Series) -> str:
    """``20 [10, 30]``, ``≥ 200`` where censored, ``—`` where not measured."""
    value = r.get("effective_context", math.nan)
    if not np.isfinite(value):
        return "—"
    mark = "≥ " if bool(r.get("effective_context_censored")) else ""
    low, high = r.get("effective_context_ci_low"), r.get("effective_context_ci_high")
    if np.isfinite(low) and np.isfinite(high):
        return f"{mark}{value:g} [{low:g}, {high:g}]"
    return f"{mark}{value:g}"


FOOTNOTE = (
    "Test ppl: mean over the finished seeds with its t interval (95%). Δ: against the reference "
    "model of the same size, Welch's interval at 1 − 0.05/m for the m comparisons of the family "
    "\"every model against the reference, at every size\" (Bonferroni: all m hold together "
    "with 95% confidence) and Welch's p Holm-adjusted over the same family. Epochs: of best "
    "validation perplexity (trained until the schedule stopped), min–max over seeds. Effective "
    "context: the smallest k from which on cutting the context to the last k tokens costs at "
    "most 1% of the loss, for the mean over seeds, with the k of its band's edges; ≥: the "
    "longest context measured. Finished runs only.")


MINIMAL = (" minGRU and minLSTM gate on the input alone: in one layer they are a gated running "
           "average of the input with no nonlinearity across time.")


def _first(values: pd.Series, default: str) -> str:
    """The first set value of a column, or ``default``."""
    values = values.dropna()
    return str(values.iloc[0]) if len(values) else default


def tables(table: pd.DataFrame) -> list[render.Table]:
    """One table per experiment and depth, rows by model, then size."""
    out = []
    for (corpus, experiment, layers), block in table.groupby(KEYS, sort=False):
        kind = _first(block["budget_kind"], "recurrent")
        ref = _first(block["reference"], "—")
        rows = [[r["model"], r["size"], f"{r['params']:,.0f}", f"{r['hidden']:.0f}",
                 f"{_ci(r['test_ppl_mean'], r['test_ppl_ci_low'], r['test_ppl_ci_high'])} "
                 f"(n = {r['n']:.0f})", _delta(r),
                 f"{_span(r['best_epoch_min'], r['best_epoch_max'])} "
                 f"({_span(r['epochs_min'], r['epochs_max'])})", _context(r)]
                for _, r in block.iterrows()]
        out.append(render.Table(
            header=["model", "size", "params", "hidden", "test ppl [95% CI] (n)",
                    f"Δ vs {ref} [simultaneous 95% CI], Holm p", "epochs to best (trained)",
                    "effective context [95% CI]"],
            rows=rows, text_columns=2, title=experiment,
            subtitle=f"({corpus}), {layers} layer{'s' if layers > 1 else ''}, {kind} "
                     "parameters",
            notes=[f"m = {int(block['family_size'].max())} comparisons in the family."]))
    return out


def notes(table: pd.DataFrame) -> list[str]:
    """The page's footnote (and what one layer of the minimal cells is, where shown)."""
    minimal = table["model"].str.startswith("min_").any() and (table["layers"] == 1).any()
    return [FOOTNOTE + (MINIMAL if minimal else "")]


def markdown(table: pd.DataFrame) -> str:
    """sizes.md: every table, then the footnote ('' for no table)."""
    return render.markdown(tables(table), notes(table)) if len(table) else ""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", required=True, type=Path,
                        help="folder with models.csv, comparisons.csv and runs.csv; sizes.* "
                        "and precision_check.* (rnnbench.analysis.precision_check) go there")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    table = sizes_table(pd.read_csv(args.tables / "models.csv"),
                        pd.read_csv(args.tables / "comparisons.csv"))
    write_csv(table, args.tables / "sizes.csv")
    write_text(args.tables / "sizes.md", markdown(table))
    render.write_page(args.tables / "sizes.html", tables(table), "every model at every size",
                      notes(table) if len(table) else ["No experiment with two or more sizes."])
    check = precision_check.pairs(pd.read_csv(args.tables / "runs.csv"))
    write_csv(check, args.tables / "precision_check.csv")
    write_text(args.tables / "precision_check.md", precision_check.markdown(check))
    render.write_page(args.tables / "precision_check.html", precision_check.table(check),
                      "bf16 against fp32", precision_check.notes(check))
    log.info("%d rows -> %s", len(table), args.tables / "sizes.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
