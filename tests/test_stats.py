"""Statistics of comparisons: CIs, Welch, bootstrap-t, Holm, Dodge et al.'s expected best."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rnnbench.analysis.stats import (
    bootstrap_t_diff_ci,
    expected_best,
    holm,
    mean_ci,
    welch,
    welch_ci,
)


def test_mean_ci_of_a_hand_computed_case():
    out = mean_ci([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.30265273 (tables), half-width 4.3027 / sqrt(3)
    assert out["n"] == 3 and out["mean"] == 2.0 and out["sd"] == pytest.approx(1.0)
    assert out["ci_low"] == pytest.approx(2 - 4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert out["ci_high"] == pytest.approx(2 + 4.302652729911275 / math.sqrt(3), rel=1e-9)


def test_mean_ci_agrees_with_scipy_interval():
    values = [101.2, 99.8, 100.5, 102.0, 98.9]
    out = mean_ci(values)
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high), rel=1e-12)


def test_one_seed_has_no_interval_and_nonfinite_values_are_refused():
    out = mean_ci([150.0])
    assert out["mean"] == 150.0 and math.isnan(out["sd"]) and math.isnan(out["ci_low"])
    with pytest.raises(ValueError, match="finite"):
        mean_ci([1.0, math.nan])


def test_welch_matches_the_hand_formula():
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]
    t, p = welch(a, b)
    # t = -1.5 / sqrt(1/3 + (5/3)/4) = -1.5 / sqrt(0.75)
    assert t == pytest.approx(-1.5 / math.sqrt(0.75), rel=1e-12)
    df = 0.75**2 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3)  # Welch-Satterthwaite
    assert p == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    assert all(math.isnan(v) for v in welch([1.0], [2.0, 3.0]))


FIXED = [([101.2, 99.8, 100.5, 102.0, 98.9], [97.1, 98.4, 96.0, 99.3, 97.7]),  # n = 5 a side
         ([143.2, 142.1, 144.0, 143.5, 142.6], [145.9, 144.1, 146.3, 145.0, 144.2]),
         ([1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0, 9.0, 0.5, 4.4])]  # unequal n and spread


@pytest.mark.parametrize("level", [0.95, 0.90])
@pytest.mark.parametrize(("a", "b"), FIXED)
def test_welch_ci_matches_scipy_ttest_ind(a, b, level):
    out = welch_ci(a, b, level)
    ref = sps.ttest_ind(a, b, equal_var=False)
    low, high = ref.confidence_interval(level)
    assert out["diff"] == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high), rel=1e-10)
    assert out["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-8)
    assert out["df"] == pytest.approx(ref.df, rel=1e-12)
    assert welch(a, b) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-8)


def test_welch_ci_is_undefined_without_a_spread_on_both_sides_or_two_values_a_side():
    one = welch_ci([5.0], [2.0, 3.0])
    assert one["diff"] == 2.5 and all(math.isnan(one[k]) for k in ("ci_low", "df", "t", "p"))
    flat = welch_ci([5.0, 5.0, 5.0], [2.0, 2.0])
    assert flat["diff"] == 3.0 and math.isnan(flat["ci_low"]) and math.isnan(flat["p"])
    with pytest.raises(ValueError, match="finite"):
        welch_ci([1.0, math.inf], [2.0, 3.0])
    with pytest.raises(ValueError, match="one value on each side"):
        welch_ci([], [2.0, 3.0])


@pytest.mark.parametrize("sd_b", [1.0, 3.0])
def test_welch_interval_covers_the_true_difference_at_five_seeds_a_side(sd_b):
    """2,000 normal draws of n = 5 a side: the 95% Welch interval holds its level (on these
    draws a percentile bootstrap covers 87% and 85%, a 1.96-se interval 92% and 89%)."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.0, 1.0, (2000, 5)), rng.normal(1.0, sd_b, (2000, 5))
    cis = np.array([[welch_ci(x, y)[k] for k in ("ci_low", "ci_high")] for x, y in zip(a, b,
                                                                                     strict=True)])
    coverage = ((cis[:, 0] <= -1.0) & (-1.0 <= cis[:, 1])).mean()
    assert 0.93 <= coverage <= 0.97


def test_bootstrap_t_interval_is_close_to_welchs_and_covers_at_five_seeds_a_side():
    a, b = FIXED[0]
    w = welch_ci(a, b)
    low, high = bootstrap_t_diff_ci(a, b, resamples=4000)
    assert low < w["diff"] < high
    assert 0.7 < (high - low) / (w["ci_high"] - w["ci_low"]) < 1.5
    assert bootstrap_t_diff_ci(a, b, seed=3) == bootstrap_t_diff_ci(a, b, seed=3)
    assert all(math.isnan(v) for v in bootstrap_t_diff_ci([5.0], [2.0, 3.0]))
    rng = np.random.default_rng(8)
    hits = [lo <= -1.0 <= hi for lo, hi in (
        bootstrap_t_diff_ci(rng.normal(0, 1, 5), rng.normal(1, 1, 5), resamples=1000, seed=i)
        for i in range(400))]
    assert 0.90 <= np.mean(hits) <= 0.99  # nominal 95%


def test_holm_on_hand_computed_families():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # 0.5 x 2 capped at 1
    out = holm([0.01, math.nan, 0.02])  # an undefined test is not in the family: m = 2
    assert out[[0, 2]] == pytest.approx([0.02, 0.02]) and math.isnan(out[1])
    assert holm([0.2]) == pytest.approx([0.2]) and len(holm([])) == 0
    # the largest p of a family is never scaled: 0.007 stays 0.007 beside tiny p-values
    assert holm([1e-9] * 14 + [0.007])[-1] == pytest.approx(0.007)


def _step_down_rejects(p: np.ndarray, alpha: float) -> set[int]:
    """Holm (1979) as he stated it: reject in ascending order while p_(i) <= alpha/(m - i + 1)."""
    order, rejected = np.argsort(p), set()
    for i, idx in enumerate(order):
        if p[idx] > alpha / (len(p) - i):
            break
        rejected.add(int(idx))
    return rejected


def test_holm_adjusted_p_rejects_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(9)
    for _ in range(300):
        p = rng.uniform(0, 0.1, int(rng.integers(1, 16))) ** rng.uniform(0.5, 2)
        adjusted = holm(p)
        assert (adjusted >= p).all() and (adjusted <= 1).all()
        for alpha in (0.01, 0.05, 0.1):
            assert set(np.flatnonzero(adjusted <= alpha)) == _step_down_rejects(p, alpha)


def test_expected_best_on_a_hand_worked_example():
    # trials with validation ppl 3, 1, 2; best (lowest) of 2 draws with replacement:
    # 5 of the 9 ordered pairs contain a 1, 3 contain a 2 but no 1, 1 is (3, 3): 14/9
    assert expected_best([3.0, 1.0, 2.0], 2) == pytest.approx(14 / 9)
    assert expected_best([3.0, 1.0, 2.0], 1) == pytest.approx(2.0)  # the mean
    assert expected_best([3.0, 1.0, 2.0], 200) == pytest.approx(1.0, abs=1e-6)
    assert expected_best([3.0, 1.0, 2.0], 2, lower_is_better=False) == pytest.approx(22 / 9)


def test_expected_best_improves_with_more_trials():
    values = np.random.default_rng(3).uniform(100, 200, 12)
    curve = [expected_best(values, n) for n in range(1, 13)]
    assert all(x >= y for x, y in zip(curve, curve[1:], strict=False))
    assert curve[0] == pytest.approx(values.mean())
