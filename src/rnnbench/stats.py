"""Statistics of a comparison over seeds and over tuning trials (no torch import).

- :func:`mean_ci`: mean, sd and the t-based 95% confidence interval of the mean over seeds.
- :func:`bootstrap_diff_ci`: percentile-bootstrap CI of a difference of two means, resampling
  the seeds of each side independently (Efron and Tibshirani 1993, ch. 13).
- :func:`welch`: Welch's unequal-variance t-test of the same difference.
- :func:`expected_best`: the expected best validation score of ``n`` trials drawn at random
  from the trials run (Dodge et al. 2019, "Show Your Work", eq. 1), exact for the empirical
  distribution.

Undefined is NaN, never 0: a CI of one seed, a test of fewer than two values a side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"statistics need finite values (finished runs only), got {list(arr)}")
    return arr


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """``n``, ``mean``, ``sd`` (ddof 1) and the t interval ``ci_low``/``ci_high``."""
    from scipy import stats

    arr = _finite(values)
    n = len(arr)
    out = {"n": n, "mean": float(arr.mean()) if n else math.nan, "sd": math.nan,
           "ci_low": math.nan, "ci_high": math.nan}
    if n > 1:
        sd = float(arr.std(ddof=1))
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        out.update(sd=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                      resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its percentile-bootstrap interval (NaN bounds when a side has
    one value: resampling it says nothing about its spread)."""
    x, y = _finite(a), _finite(b)
    if not len(x) or not len(y):
        raise ValueError("a difference needs at least one value on each side")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan, math.nan
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    my = y[rng.integers(0, len(y), (resamples, len(y)))].mean(axis=1)
    low, high = np.quantile(mx - my, [0.5 - level / 2, 0.5 + level / 2])
    return diff, float(low), float(high)


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value of mean(a) - mean(b) (NaN when undefined)."""
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if len(x) < 2 or len(y) < 2 or (x.std() == 0 and y.std() == 0):
        return math.nan, math.nan
    result = stats.ttest_ind(x, y, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def expected_best(values: Sequence[float], n: int, lower_is_better: bool = True) -> float:
    """Expected best of ``n`` draws (with replacement) from the ``N`` trial scores ``values``.

    With the scores sorted from worst to best, v_(1) .. v_(N), the best of n draws is v_(i)
    with probability (i/N)^n - ((i-1)/N)^n, so E = sum_i v_(i) [(i/N)^n - ((i-1)/N)^n].
    """
    arr = _finite(values)
    if not len(arr) or n < 1:
        raise ValueError(f"expected_best needs trials and n >= 1, got {len(arr)} and {n}")
    worst_first = np.sort(arr)[::-1] if lower_is_better else np.sort(arr)
    big_n = len(worst_first)
    i = np.arange(1, big_n + 1)
    weights = (i / big_n) ** n - ((i - 1) / big_n) ** n
    return float((worst_first * weights).sum())
