"""Statistics of a comparison over seeds and over tuning trials (no torch import).

- :func:`mean_ci`: mean, sd and the t-based 95% confidence interval of the mean over seeds.
- :func:`welch_ci`: the difference of two means with Welch's t interval (Welch-Satterthwaite
  degrees of freedom), its t statistic and two-sided p-value: the headline interval of a
  difference. At 5 seeds a side (df 4 to 8) a percentile bootstrap is 25-35% narrower than
  this and covers less than its nominal level, so it is not offered.
- :func:`welch`: the same test's t statistic and p-value alone.
- :func:`bootstrap_t_diff_ci`: the studentized (bootstrap-t) interval of the same difference,
  seeds resampled per side (Efron and Tibshirani 1993, ch. 12.5), a secondary check.
- :func:`holm`: Holm's (1979) step-down adjustment of the p-values of one family of tests.
- :func:`expected_best`: the expected best validation score of ``n`` trials drawn at random
  from the trials run (Dodge et al. 2019, "Show Your Work", eq. 1), exact for the empirical
  distribution.

Undefined is NaN, never 0: a CI of one seed, a test of fewer than two values a side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

_NAN_WELCH = {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "se": math.nan,
             "df": math.nan, "t": math.nan, "p": math.nan}


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"statistics need finite values (finished runs only), got {list(arr)}")
    return arr


def _two_sides(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _finite(a), _finite(b)
    if not len(x) or not len(y):
        raise ValueError("a difference needs at least one value on each side")
    return x, y


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


def _welch_se_df(var_x: np.ndarray, n_x: int, var_y: np.ndarray,
                 n_y: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of mean(x) - mean(y) and its Welch-Satterthwaite degrees of freedom,
    elementwise over arrays of sample variances (ddof 1)."""
    vx, vy = var_x / n_x, var_y / n_y
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vx + vy) ** 2 / (vx**2 / (n_x - 1) + vy**2 / (n_y - 1))
    return np.sqrt(vx + vy), df


def welch_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """mean(a) - mean(b) as ``diff`` with Welch's t interval ``ci_low``/``ci_high``, its
    ``se``, Welch-Satterthwaite ``df``, ``t`` and two-sided ``p`` (all but ``diff`` NaN when
    a side has one value or neither side varies: no spread, no interval)."""
    from scipy import special  # stdtrit/stdtr: the t quantile and CDF as plain ufuncs (fast)

    x, y = _two_sides(a, b)
    out = {**_NAN_WELCH, "diff": float(x.mean() - y.mean())}
    if len(x) < 2 or len(y) < 2 or (x.std() == 0 and y.std() == 0):
        return out
    se, df = (float(v) for v in _welch_se_df(x.var(ddof=1), len(x), y.var(ddof=1), len(y)))
    half = float(special.stdtrit(df, 0.5 + level / 2)) * se
    t = out["diff"] / se
    out.update(ci_low=out["diff"] - half, ci_high=out["diff"] + half, se=se, df=df, t=t,
               p=float(2 * special.stdtr(df, -abs(t))))
    return out


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value of mean(a) - mean(b) (NaN when undefined)."""
    out = welch_ci(a, b)
    return out["t"], out["p"]


def bootstrap_t_diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                        resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Studentized bootstrap interval of mean(a) - mean(b): the quantiles of
    t* = (diff* - diff) / se* over resamples of each side's seeds, turned round the observed
    difference and its Welch standard error (NaN where Welch's interval is undefined).

    A resample with se* = 0 (every draw the same seed on both sides) has no t* and is left out.
    """
    x, y = _two_sides(a, b)
    ref = welch_ci(x, y, level)
    if math.isnan(ref["se"]):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    rx = x[rng.integers(0, len(x), (resamples, len(x)))]  # (resamples, n_x)
    ry = y[rng.integers(0, len(y), (resamples, len(y)))]  # (resamples, n_y)
    se, _ = _welch_se_df(rx.var(axis=1, ddof=1), len(x), ry.var(axis=1, ddof=1), len(y))
    keep = se > 0
    t_star = (rx.mean(axis=1) - ry.mean(axis=1) - ref["diff"])[keep] / se[keep]
    q_low, q_high = np.quantile(t_star, [0.5 - level / 2, 0.5 + level / 2])
    return ref["diff"] - float(q_high) * ref["se"], ref["diff"] - float(q_low) * ref["se"]


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values of one family, in the order given: with the m defined p-values
    sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)). NaN (an
    undefined test) stays NaN and is not counted in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = len(defined)
    if not m:
        return out
    order = defined[np.argsort(p[defined], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


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


def family(p: pd.Series, se: pd.Series, df: pd.Series, level: float = 0.95
           ) -> tuple[pd.Series, pd.Series, int]:
    """Over the tested members of a family (``p`` set): Holm's p, each Welch interval's half
    width at 1 - (1 - level)/m (Bonferroni: all m hold together) and m; NaN where untested."""
    from scipy import special

    tested = p.notna()
    m = int(tested.sum())
    p_holm = pd.Series(np.nan, index=p.index)
    half = pd.Series(np.nan, index=p.index)
    if m:
        p_holm[tested] = holm(p[tested])
        half[tested] = (special.stdtrit(df[tested].to_numpy(float), 1 - (1 - level) / (2 * m))
                        * se[tested].to_numpy(float))
    return p_holm, half, m
