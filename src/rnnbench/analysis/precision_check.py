"""What bf16 costs on a study's own protocol: each model trained in bf16 and in fp32 at the same
size, tuned and trained alike (config/scaling.yaml: `scaling` against `scaling_fp32` at 0.5M).

From runs.csv: every pair of models of the same corpus, cell and options, hidden size and
depth that differ only in precision; Δ% = 100 (bf16 mean − fp32 mean) / fp32 mean of test
perplexity over finished seeds, with Welch's interval at 1 − 0.05/m for the m pairs (all m hold
together with 95% confidence; compare with the README's claim, never a rounded "under 1%"),
and Welch's p Holm-adjusted. Each precision was tuned on its own (its selected lr can differ),
so Δ is the cost of bf16 under the protocol, tuning included. Writes ``precision_check.csv``
and ``.md``; nothing (an empty table) where a study has no such pair.
"""

from __future__ import annotations

import math

import pandas as pd

from rnnbench.analysis import render
from rnnbench.analysis.labels import with_model
from rnnbench.analysis.stats import family, mean_ci, welch_ci

KEYS = ["corpus", "cell", "hidden", "layers", "budget_kind"]
COLUMNS = ["corpus", "cell", "model_bf16", "model_fp32", "hidden", "layers", "params",
           "experiment_bf16", "experiment_fp32", "n_bf16", "n_fp32", "lr_bf16", "lr_fp32",
           "test_ppl_bf16", "test_ppl_fp32", "delta_pct", "delta_pct_ci_low",
           "delta_pct_ci_high", "p_value", "p_holm", "family_size"]


def _base(model: str) -> str:
    """A model's name without its precision (``lstm+fb1+bf16`` -> ``lstm+fb1``)."""
    return "+".join(p for p in model.split("+") if p != "bf16")


def _first(block: pd.DataFrame, column: str) -> float:
    """A block's first value of ``column`` (NaN without the column)."""
    return block[column].iloc[0] if column in block else math.nan


def pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """Every bf16 model with its fp32 twin, Δ% and its simultaneous interval."""
    runs = with_model(runs)
    ok = runs[(runs["status"] == "ok") & runs["test_ppl"].notna()].copy()
    ok["precision"] = ok["precision"].fillna("fp32")
    ok["base"] = ok["model"].map(_base)
    rows = []
    for key, block in ok.groupby([*KEYS, "base"], sort=False, dropna=False):
        low, high = block[block["precision"] == "bf16"], block[block["precision"] == "fp32"]
        if low.empty or high.empty:
            continue
        a, b = low["test_ppl"].tolist(), high["test_ppl"].tolist()
        w = welch_ci(a, b)
        ref = mean_ci(b)["mean"]
        rows.append({**dict(zip(KEYS, key[:-1], strict=True)), "model_bf16": low["model"].iloc[0],
                     "model_fp32": high["model"].iloc[0], "params": low["params"].iloc[0],
                     "experiment_bf16": low["experiment"].iloc[0],
                     "experiment_fp32": high["experiment"].iloc[0], "n_bf16": len(a),
                     "n_fp32": len(b), "lr_bf16": _first(low, "lr"), "lr_fp32": _first(high, "lr"),
                     "test_ppl_bf16": mean_ci(a)["mean"], "test_ppl_fp32": ref,
                     "delta_pct": 100 * w["diff"] / ref, "p_value": w["p"],
                     "_se": w["se"], "_df": w["df"]})
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    table["p_holm"], half, table["family_size"] = family(table["p_value"], table["_se"],
                                                         table["_df"])
    scale = 100 / table["test_ppl_fp32"]
    table["delta_pct_ci_low"] = table["delta_pct"] - half * scale
    table["delta_pct_ci_high"] = table["delta_pct"] + half * scale
    return table[COLUMNS]


def table(pairs_: pd.DataFrame) -> render.Table:
    """model | params | fp32 | bf16 | Δ% [simultaneous 95% CI], Holm p | lr (fp32, bf16)."""
    rows = []
    for _, r in pairs_.iterrows():
        ci = (f" [{r.delta_pct_ci_low:+.2f}, {r.delta_pct_ci_high:+.2f}]"
              if math.isfinite(r.delta_pct_ci_low) else "")
        p = "" if not math.isfinite(r.p_holm) else (
            ", p < 0.001" if r.p_holm < 0.001 else f", p = {r.p_holm:.3f}")
        rows.append([r.model_fp32, f"{r.params:,.0f}", f"{r.test_ppl_fp32:.1f} ({r.n_fp32})",
                     f"{r.test_ppl_bf16:.1f} ({r.n_bf16})", f"{r.delta_pct:+.2f}{ci}{p}",
                     f"{r.lr_fp32:g}, {r.lr_bf16:g}"])
    return render.Table(header=["model", "params", "test ppl fp32 (n)", "test ppl bf16 (n)",
                                "Δ% bf16 vs fp32 [simultaneous 95% CI], Holm p",
                                "tuned lr (fp32, bf16)"], rows=rows, text_columns=1)


def notes(pairs_: pd.DataFrame) -> list[str]:
    """The table's footnote; what an empty one means."""
    if pairs_.empty:
        return ["No model of this study trains in both precisions."]
    return [f"Δ%: 100 (bf16 − fp32) / fp32 of the mean test perplexity over finished seeds; "
            f"Welch's interval at 1 − 0.05/m, m = {int(pairs_['family_size'].max())} (all hold "
            "together with 95% confidence), p Holm-adjusted. Each precision was tuned on its "
            "own: Δ is bf16's cost under the protocol, its tuning included."]


def markdown(pairs_: pd.DataFrame) -> str:
    """precision_check.md ('' when no model trains in both precisions)."""
    return "" if pairs_.empty else render.markdown(table(pairs_), notes(pairs_))
