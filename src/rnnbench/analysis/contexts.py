"""A model's effective context over its seeds, from the rows of a study's context.csv
(rnnbench.figures.contextplots collect; no torch import).

Each run's effective context is a ``k`` of a log grid (rnnbench.diagnostics.contextstats). The
mean of such values over a few seeds, with a t interval, is not a context length the model
has, and its interval can reach below 1 token or have no width where the seeds agree. A
model's effective context is instead that of the mean of its seeds' loss-increase curves,
with the interval of that mean's pointwise band (``model_band``: the t interval over seeds and
the bootstrap over the target positions they share, in quadrature); with one seed, the run's
own bootstrap interval over target positions.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rnnbench.diagnostics.contextstats import seed_band, seed_effective

# each context of context.json and the ablation of context.csv it comes from
ABLATION = {"effective_context": "truncate", "order_context": "shuffle"}
FIELDS = ("n", "", "_ci_low", "_ci_high", "_censored", "_seed_min", "_seed_max")


def _measured(rows: pd.DataFrame, ablation: str) -> pd.DataFrame:
    ok = rows[(rows["status"] == "ok") & rows["k"].notna()]
    return ok[ok["ablation"] == ablation]


def _curves(rows: pd.DataFrame, ablation: str) -> pd.DataFrame:
    """The measured runs among ``rows``, one row each: ``loss_increase``, ``ci_low`` and
    ``ci_high`` per ``k`` (column levels); a ValueError where their grids differ."""
    wide = _measured(rows, ablation).pivot_table(
        index=["experiment", "run_id"], columns="k", aggfunc="first",
        values=["loss_increase", "ci_low", "ci_high"])
    if wide.isna().to_numpy().any():
        raise ValueError(
            "cannot pool the effective context of "
            + ", ".join(wide.index.get_level_values("run_id")) + ": they were measured on "
            "different context grids (`context:` settings); measure them with the same "
            "settings, or compare them in separate experiments")
    return wide


def _half(wide: pd.DataFrame) -> np.ndarray:
    """Each run's bootstrap half-width per k (the target sample's uncertainty)."""
    return (wide["ci_high"].to_numpy() - wide["ci_low"].to_numpy()) / 2


def model_band(rows: pd.DataFrame, ablation: str = "truncate") -> pd.DataFrame:
    """Per ``k``: ``mean``, ``low``, ``high``, the mean loss increase over the measured runs
    among ``rows`` (the context.csv rows of one model) and its pointwise 95% band
    (rnnbench.diagnostics.contextstats.seed_band; one run: its bootstrap interval). Empty where
    no run was measured; a ValueError where the runs were measured on different grids."""
    wide = _curves(rows, ablation)
    if wide.empty:
        return pd.DataFrame(columns=["k", "mean", "low", "high"])
    increase = wide["loss_increase"].to_numpy()
    if len(wide) == 1:
        mean, low, high = increase[0], wide["ci_low"].to_numpy()[0], wide["ci_high"].to_numpy()[0]
    else:
        mean, low, high = seed_band(increase, _half(wide))
    return pd.DataFrame({"k": [int(k) for k in wide["loss_increase"].columns], "mean": mean,
                         "low": low, "high": high})


def model_context(rows: pd.DataFrame, name: str = "effective_context") -> dict:
    """``{name}_n`` (runs measured, status ok), ``{name}`` with ``{name}_ci_low`` and
    ``_ci_high`` (a model's context over those seeds, see the module), ``{name}_censored``
    (it is the longest context measured: the model uses at least that much) and
    ``{name}_seed_min``/``_seed_max`` (the range of the seeds' own values), from ``rows``:
    the context.csv rows of one model's runs. NaN, never a number, where no run was measured.
    """
    out = {f"{name}{f}" if f != "n" else f"{name}_n": math.nan for f in FIELDS}
    out.update({f"{name}_n": 0, f"{name}_censored": False})
    runs = _measured(rows, ABLATION[name]).drop_duplicates(["experiment", "run_id"])
    if runs.empty:
        return out
    wide = _curves(rows, ABLATION[name])
    ks = [int(k) for k in wide["loss_increase"].columns]
    if len(runs) == 1:  # the run's own numbers, from all its targets' resamples
        run = runs.iloc[0]
        value, low, high = run[name], run[f"{name}_ci_low"], run[f"{name}_ci_high"]
    else:
        pooled = seed_effective(ks, wide["loss_increase"].to_numpy(), _half(wide))
        value, low, high = (pooled[k] for k in ("effective", "effective_ci_low",
                                                 "effective_ci_high"))
    out.update({f"{name}_n": len(runs), name: float(value), f"{name}_ci_low": float(low),
                f"{name}_ci_high": float(high), f"{name}_censored": bool(value >= max(ks)),
                f"{name}_seed_min": float(runs[name].min()),
                f"{name}_seed_max": float(runs[name].max())})
    return out
