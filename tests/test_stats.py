"""Statistics of comparisons: CIs, bootstrap, Welch, Dodge et al.'s expected best."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rnnbench.stats import bootstrap_diff_ci, expected_best, mean_ci, welch


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


def test_bootstrap_of_constant_sides_is_the_exact_difference():
    assert bootstrap_diff_ci([5.0, 5.0, 5.0], [2.0, 2.0]) == (3.0, 3.0, 3.0)
    diff, low, high = bootstrap_diff_ci([5.0], [2.0, 3.0])
    assert diff == 2.5 and math.isnan(low) and math.isnan(high)


def test_bootstrap_interval_is_close_to_welchs_for_large_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(100, 2, 400), rng.normal(98, 3, 400)
    diff, low, high = bootstrap_diff_ci(a, b, resamples=4000)
    se = math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert low == pytest.approx(diff - 1.96 * se, abs=0.1 * se * 1.96 + 0.02)
    assert high == pytest.approx(diff + 1.96 * se, abs=0.1 * se * 1.96 + 0.02)


def test_bootstrap_covers_the_true_difference_most_of_the_time():
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(200):
        _, low, high = bootstrap_diff_ci(rng.normal(0, 1, 10), rng.normal(1, 1, 10),
                                         resamples=1000, seed=int(rng.integers(1 << 30)))
        hits += low <= -1 <= high
    assert 0.85 <= hits / 200 <= 0.99  # nominal 95%; the percentile bootstrap is a bit narrow


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
