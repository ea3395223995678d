"""Every pair of models at one corpus, experiment, size and depth: the difference in mean
test perplexity over seeds with Welch's interval and test, Holm-adjusted within two families,
simultaneous intervals for the family "every model against the reference", and a
studentized-bootstrap interval (no torch import; rnnbench.analysis.compare writes them)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pandas as pd

from rnnbench.analysis.labels import model_label, size_label
from rnnbench.analysis.labels import model_rank as _order
from rnnbench.analysis.stats import bootstrap_t_diff_ci, holm, welch_ci

KEYS = ["corpus", "experiment", "size", "layers"]
PAIR_COLUMNS = [*KEYS, "model_a", "model_b", "n_a", "n_b", "diff", "diff_ci_low", "diff_ci_high",
                "welch_df", "welch_se", "welch_t", "p_value", "boot_t_ci_low", "boot_t_ci_high",
                "reference", "p_holm_all_pairs", "p_holm_vs_reference", "family_size",
                "family_ci_low", "family_ci_high"]
FAMILY_LEVEL = 0.95  # every interval of a family holds at once with this confidence


def label_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``model`` and ``size`` columns (``corpus`` defaults to ptb)."""
    runs = runs.copy()
    if "corpus" not in runs:
        runs["corpus"] = "ptb"
    runs["model"] = runs.apply(model_label, axis=1)
    runs["size"] = runs.apply(size_label, axis=1)
    return runs


def reference_model(models: Iterable[str], reference: str) -> str:
    """``reference`` when the block has it; else ``reference`` with the options every model of
    the block shares (``lstm+bf16`` where every run is bf16); else the block's last model in
    MODEL_ORDER."""
    models = list(models)
    if reference in models:
        return reference
    shared = set.intersection(*(set(m.split("+")[1:]) for m in models)) if models else set()
    base, *options = reference.split("+")
    for model in models:
        cell, *own = model.split("+")
        if cell == base and set(own) == shared | set(options):
            return model
    return max(models, key=_order)


def vs_reference(pairs: pd.DataFrame, ref: str) -> pd.Series:
    """Holm-adjusted p of the family "every model against ``ref``" of one block, indexed like
    the pairs that involve ``ref``."""
    family = pairs[(pairs["model_a"] == ref) | (pairs["model_b"] == ref)]
    return pd.Series(holm(family["p_value"]), index=family.index, dtype=float)


def family_intervals(pairs: pd.DataFrame, ref: str) -> pd.DataFrame:
    """``family_size`` (m, the comparisons of "every model against ``ref``" that have a test)
    and Welch's interval of each of them at 1 - 0.05 / m (Bonferroni: all m hold together with
    95% confidence), ``family_ci_low``/``_high``, indexed like those pairs."""
    from scipy import special

    family = pairs[((pairs["model_a"] == ref) | (pairs["model_b"] == ref))
                   & pairs["p_value"].notna()]
    m = len(family)
    if not m:
        return pd.DataFrame(columns=["family_size", "family_ci_low", "family_ci_high"],
                            dtype=float)
    half = special.stdtrit(family["welch_df"].to_numpy(float),
                           1 - (1 - FAMILY_LEVEL) / (2 * m)) * family["welch_se"].to_numpy(float)
    return pd.DataFrame({"family_size": m, "family_ci_low": family["diff"] - half,
                         "family_ci_high": family["diff"] + half}, index=family.index)


def _pair(a: str, b: str, xa: list[float], xb: list[float], resamples: int) -> dict:
    """One pair's row: Welch's interval and test, the studentized-bootstrap interval."""
    w = welch_ci(xa, xb)
    boot_low, boot_high = bootstrap_t_diff_ci(xa, xb, resamples=resamples)
    return {"model_a": a, "model_b": b, "n_a": len(xa), "n_b": len(xb), "diff": w["diff"],
            "diff_ci_low": w["ci_low"], "diff_ci_high": w["ci_high"], "welch_df": w["df"],
            "welch_se": w["se"], "welch_t": w["t"], "p_value": w["p"], "boot_t_ci_low": boot_low,
            "boot_t_ci_high": boot_high}


def comparisons(runs: pd.DataFrame, resamples: int = 10_000,
                reference: str = "lstm") -> pd.DataFrame:
    """Every pair of models at the same corpus, experiment, size and depth (a before b in
    MODEL_ORDER): mean(a) - mean(b) of test perplexity with Welch's 95% CI, df, t and p; p
    Holm-adjusted over every pair of the block (``p_holm_all_pairs``) and over every model
    against ``reference`` (``p_holm_vs_reference``, NaN for the other pairs), and for the
    latter family Welch's simultaneous (Bonferroni) 95% intervals (``family_*``); a
    studentized bootstrap 95% CI (``boot_t_ci_*``)."""
    blocks = []
    for key, block in label_runs(runs).groupby(KEYS, sort=False):
        ok = block[block["status"] == "ok"]
        by_model = {m: b["test_ppl"].tolist() for m, b in ok.groupby("model")}
        pairs = pd.DataFrame([_pair(a, b, by_model[a], by_model[b], resamples)
                              for a, b in itertools.combinations(sorted(by_model, key=_order), 2)])
        if pairs.empty:
            continue
        pairs[KEYS] = list(key)
        ref = reference_model(block["model"], reference)
        pairs["reference"] = ref
        pairs["p_holm_all_pairs"] = holm(pairs["p_value"])
        pairs["p_holm_vs_reference"] = vs_reference(pairs, ref)
        pairs = pairs.join(family_intervals(pairs, ref))
        blocks.append(pairs[PAIR_COLUMNS])
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=PAIR_COLUMNS)
