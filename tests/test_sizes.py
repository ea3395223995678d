"""The answer across sizes (rnnbench.analysis.sizes, rnnbench.figures.sizes): one table of every
model at every size with the whole family's Holm p and simultaneous intervals, and its figures."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rnnbench.analysis.compare import models
from rnnbench.analysis.pairs import comparisons
from rnnbench.analysis.sizes import budget_of, markdown, sizes_table
from rnnbench.analysis.stats import holm
from rnnbench.figures import sizes as figs

matplotlib.use("Agg")
PPL = {  # (cell, budget) -> test perplexities of 4 seeds
    ("lstm", 500_000): [200.0, 202.0, 199.0, 201.0],
    ("rnn_tanh", 500_000): [230.0, 236.0, 229.0, 241.0],
    ("lstm", 2_000_000): [150.0, 151.0, 149.0, 152.0],
    ("rnn_tanh", 2_000_000): [180.0, 172.0, 185.0, 176.0],
    ("min_gru", 2_000_000): [155.0, 150.0, 158.0, 151.0],
}
HIDDEN = {500_000: 24, 2_000_000: 98}


def _runs() -> pd.DataFrame:
    rows = [{"corpus": "ptb", "experiment": "scaling", "cell": cell, "layers": 1,
             "hidden": HIDDEN[budget] + (cell == "lstm"), "budget": budget,
             "budget_kind": "total", "params": budget - 7, "seed": i + 1, "status": "ok",
             "test_ppl": p, "precision": "bf16"}
            for (cell, budget), ppls in PPL.items() for i, p in enumerate(ppls)]
    return pd.DataFrame(rows)


def test_the_family_is_every_model_against_the_reference_at_every_size():
    runs = _runs()
    table = sizes_table(models(runs), comparisons(runs, resamples=200)).set_index(
        ["model", "size"])
    assert table.loc[("lstm+bf16", "t500k"), "reference"] == "lstm+bf16"
    # three comparisons in all: tanh at both sizes, min_gru at 2M
    tested = table[table["delta_p"].notna()]
    assert len(tested) == 3 and (table["family_size"] == 3).all()
    np.testing.assert_allclose(tested["delta_p_holm"], holm(tested["delta_p"]))
    # Δ is model minus reference, with Welch's interval at 1 - 0.05/3
    tanh = table.loc[("rnn_tanh+bf16", "t2M")]
    a, b = PPL[("rnn_tanh", 2_000_000)], PPL[("lstm", 2_000_000)]
    assert tanh["delta"] == pytest.approx(np.mean(a) - np.mean(b))
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 4
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 3)
    half = sps.t.ppf(1 - 0.05 / 6, df) * math.sqrt(va + vb)
    assert tanh["delta_ci_low"] == pytest.approx(tanh["delta"] - half)
    assert tanh["delta_ci_high"] == pytest.approx(tanh["delta"] + half)
    assert tanh["delta_p"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)


def test_an_experiment_of_one_size_has_no_rows_and_the_table_names_each_block():
    runs = _runs()
    one = runs[runs["budget"] == 500_000]
    assert sizes_table(models(one), comparisons(one, resamples=100)).empty
    text = markdown(sizes_table(models(runs), comparisons(runs, resamples=100)))
    assert text.startswith("**scaling** (ptb), 1 layer, total parameters")
    assert "| lstm+bf16 | t500k |" in text and "m = 3 comparisons" in text
    assert (budget_of("t500k"), budget_of("p1.5M"), math.isnan(budget_of("h32"))) == \
        (500_000, 1_500_000, True)


def test_the_figures_draw_a_line_per_model_and_every_seed(tmp_path):
    runs = _runs()
    table = sizes_table(models(runs), comparisons(runs, resamples=100))
    table.to_csv(tmp_path / "sizes.csv", index=False)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    fig = figs.perplexity_vs_size(tmp_path)
    ax = fig.axes[0]
    assert {line.get_label() for line in ax.get_lines()} >= {"lstm+bf16", "rnn_tanh+bf16",
                                                             "min_gru+bf16"}
    from matplotlib.collections import PathCollection

    dots = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert dots == len(runs)  # every seed a dot (the bands are other collections)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["500k", "2M"]
    for name in ("delta_vs_size", "context_vs_size"):
        assert getattr(figs, name)(tmp_path).axes


def test_bf16_against_its_fp32_twin_with_the_familys_interval():
    from rnnbench.analysis import precision_check

    runs = _runs()
    small = runs[runs["budget"] == 500_000]
    fp32 = small.assign(experiment="scaling_fp32", precision=np.nan,
                        test_ppl=small["test_ppl"] * 0.99)
    table = precision_check.pairs(pd.concat([runs, fp32], ignore_index=True))
    assert list(table["model_fp32"]) == ["lstm", "rnn_tanh"]  # 2M has no fp32 twin
    assert (table["model_bf16"] == ["lstm+bf16", "rnn_tanh+bf16"]).all()
    assert table["delta_pct"].to_numpy() == pytest.approx([100 / 99 * 100 - 100] * 2)
    assert (table["family_size"] == 2).all()
    low, high = table["delta_pct_ci_low"], table["delta_pct_ci_high"]
    assert ((low < table["delta_pct"]) & (table["delta_pct"] < high)).all()
    assert "| lstm | " in precision_check.markdown(table)
    assert precision_check.pairs(runs).empty and precision_check.markdown(
        precision_check.pairs(runs)) == ""
