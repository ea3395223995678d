"""Effective context (Khandelwal, He, Qi and Jurafsky 2018, "Sharp Nearby, Fuzzy Far Away"):
the settings, the context grid and the statistics, with no torch import (Snakemake imports
this module to check a config before any job).

For a fixed sample of ``n`` target positions of the validation stream, the measurement
(:mod:`rnnbench.diagnostics.context`) gives the loss of each target with the full context
(the whole stream before it, read in one pass with the state carried) and with two ablations per
``k`` of the grid: ``truncate`` (only the last ``k`` tokens, the state reset to zero before them)
and, on a subset of the targets, ``shuffle`` (the ``prefix`` tokens before the target, those
beyond distance ``k`` in a random order, against the same window in order). From the
per-target losses, here:

- the relative loss increase ``mean(ablated) / mean(full) - 1`` per ``k``;
- the effective context: the smallest ``k`` of the grid from which on every increase is at
  most ``threshold`` (1%, Khandelwal et al.'s). On a curve that falls monotonically this is
  their "smallest k within 1%"; requiring every larger ``k`` too keeps a noise dip below the
  line from ending the context early. ``k = prefix`` is the full context itself (increase 0),
  so it always exists; when it *is* the prefix, the model uses at least ``prefix`` tokens
  (``censored``);
- percentile-bootstrap intervals of both, resampling the target positions (the same resample
  for the full and the ablated losses, which are paired).

A *model's* effective context over several seeds (:func:`seed_effective`) is that of the mean
of its seeds' curves, with an interval from its pointwise band (:func:`seed_band`: the seeds'
t interval and the target sample's bootstrap, which the seeds share): never a mean of grid
values, whose t interval can fall below 1 token or, where the seeds agree, have no width.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Context lengths measured: a log grid (about 1, 1.5, 2, 3, 5, 7 per decade) up to 1,000;
# the grid of a run is the part below its prefix, then the prefix itself.
K_GRID = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000)
THRESHOLD = 0.01  # Khandelwal et al. 2018, section 4: "within 1%" of the full-context loss
ABLATIONS = ("truncate", "shuffle")


@dataclasses.dataclass(frozen=True)
class ContextSettings:
    """What is measured: ``targets`` positions of valid after its first ``prefix`` tokens, each
    with its whole past and truncated to ``k < prefix`` tokens; the shuffle ablation on
    ``shuffle_targets`` of them (its windows are ``prefix`` long for every ``k``, the costly
    part)."""

    # Target positions, evenly spaced over the validation stream. 10,000 of PTB's 73,560: an
    # interval narrow enough to tell the cells apart (300, the earlier default, gave intervals
    # of a factor 5-10 in k) at under a tenth of a run's training time (docs/performance.md).
    targets: int = 10_000
    # The longest truncation, and the grid's last k, which stands for the whole past: every
    # model of the 4M comparison was within 1% of its full-context loss by 50 tokens.
    prefix: int = 200
    seed: int = 0  # of the shuffles and the bootstrap: the same for every run (paired)
    resamples: int = 1000  # bootstrap resamples of the target positions
    shuffle_targets: int = 1_000  # of the targets, evenly spaced, for the shuffle ablation

    @property
    def shuffle_count(self) -> int:
        """How many targets the shuffle ablation scores (at most ``targets``)."""
        return min(self.shuffle_targets, self.targets)

    def flags(self) -> str:
        """The command-line flags of :mod:`rnnbench.diagnostics.context` that set these."""
        return " ".join(f"--{f.name} {getattr(self, f.name)}" for f in dataclasses.fields(self))


def context_settings(value: bool | dict | None) -> ContextSettings | None:
    """The config's ``context`` key: true or absent (the defaults), false (off: None), or a
    mapping of :class:`ContextSettings` fields that overrides the defaults."""
    if value is None or value is True:
        return ContextSettings()
    if value is False:
        return None
    return ContextSettings(**value)


def k_grid(prefix: int) -> list[int]:
    """The context lengths measured with a ``prefix``: ``K_GRID`` below it, then ``prefix``."""
    if prefix < 1:
        raise ValueError(f"prefix must be >= 1, got {prefix}")
    return [k for k in K_GRID if k < prefix] + [prefix]


def settings_problem(settings: ContextSettings, valid_tokens: int, where: str) -> str | None:
    """One paragraph when the validation stream (``valid_tokens`` long) cannot hold
    ``targets`` distinct positions each ``prefix`` tokens in, else None."""
    room = valid_tokens - settings.prefix
    if (settings.prefix >= 2 and settings.targets >= 1 and settings.shuffle_targets >= 1
            and room >= settings.targets):
        return None
    return (f"cannot measure the effective context: `context: {{targets: {settings.targets}, "
            f"prefix: {settings.prefix}, shuffle_targets: {settings.shuffle_targets}}}` needs "
            f"a prefix of at least 2 tokens, at least 1 shuffled target and "
            f"{settings.targets} target positions after the first {settings.prefix} tokens of "
            f"the validation split, which has {valid_tokens} ({where}). Lower `prefix` or "
            "`targets` under `context:` in the config, or turn the measurement off with "
            "`context: false`.")


def relative_increase(full: np.ndarray, ablated: np.ndarray) -> np.ndarray:
    """``mean(ablated) / mean(full) - 1`` per row of ``ablated`` (K, n) against ``full`` (n,)."""
    return ablated.mean(axis=-1) / full.mean(axis=-1, keepdims=full.ndim > 1) - 1.0


def effective_index(increase: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Index of the first ``k`` from which on every increase is <= ``threshold``, along the
    last axis of ``increase`` (..., K); K (past the end) where even the last one is above."""
    within = increase <= threshold
    # suffix_all[..., j]: every entry from j on is within
    suffix_all = np.flip(np.cumprod(np.flip(within, -1), axis=-1), -1).astype(bool)
    first = np.argmax(suffix_all, axis=-1)
    return np.where(suffix_all.any(axis=-1), first, increase.shape[-1])


def effective_context(ks: list[int], increase: np.ndarray, threshold: float = THRESHOLD) -> float:
    """The smallest ``k`` from which on every increase is <= ``threshold`` (NaN if none)."""
    i = int(effective_index(np.asarray(increase, dtype=float), threshold))
    return float(ks[i]) if i < len(ks) else math.nan


def bootstrap(full: np.ndarray, ablated: np.ndarray, ks: list[int], resamples: int, seed: int,
              threshold: float = THRESHOLD, level: float = 0.95) -> dict:
    """Point estimates and percentile-bootstrap intervals over the ``n`` target positions.

    ``full`` (n,) and ``ablated`` (K, n) are per-target losses. Returns ``increase``,
    ``ci_low``, ``ci_high`` (each (K,)) and ``effective``, ``effective_ci_low``,
    ``effective_ci_high`` (``k`` values of the grid).
    """
    if ablated.shape != (len(ks), full.shape[0]):
        raise ValueError(f"ablated losses {ablated.shape} do not match {len(ks)} k x "
                         f"{full.shape[0]} targets")
    increase = relative_increase(full, ablated)  # (K,)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, full.shape[0], (resamples, full.shape[0]))  # (B, n)
    # in slices of resamples, so that (K, b, n) stays near 50 MB at 10,000 targets
    step = max(1, 6_000_000 // max(1, ablated.size))
    boot = np.concatenate([ablated[:, index[i:i + step]].mean(-1).T
                           / full[index[i:i + step]].mean(-1)[:, None] - 1.0
                           for i in range(0, resamples, step)])  # (B, K)
    low, high = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2], axis=0)  # each (K,)
    grid = np.asarray([*ks, math.nan], dtype=float)  # past the end: undefined
    eff = grid[effective_index(boot, threshold)]  # (B,)
    # grid values, not interpolations between them (NaN, never reached when the last k is
    # the full context, would make both NaN)
    eff_low = np.quantile(eff, 0.5 - level / 2, method="lower")
    eff_high = np.quantile(eff, 0.5 + level / 2, method="higher")
    return {"increase": increase, "ci_low": low, "ci_high": high,
            "effective": effective_context(ks, increase, threshold),
            "effective_ci_low": float(eff_low), "effective_ci_high": float(eff_high)}


def seed_band(increase: np.ndarray, target_half: np.ndarray | None = None,
              level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean over ``S >= 2`` seeds of their curves ``increase`` (S, K), and the edges of its
    pointwise interval: the t interval over seeds (S - 1 df) and, where given, the target
    sample's bootstrap half-widths ``target_half`` (S, K), averaged over seeds, added in
    quadrature. The seeds share their target positions, so the seed spread does not hold the
    sampling of those targets; the bootstrap half-width does."""
    from scipy import stats

    increase = np.asarray(increase, dtype=float)
    seeds = increase.shape[0]
    if increase.ndim != 2 or seeds < 2:
        raise ValueError(f"need the curves of 2 or more seeds, got the shape {increase.shape}")
    mean = increase.mean(axis=0)
    half = (float(stats.t.ppf(0.5 + level / 2, seeds - 1))
            * increase.std(axis=0, ddof=1) / math.sqrt(seeds))
    if target_half is not None:
        half = np.hypot(half, np.asarray(target_half, dtype=float).mean(axis=0))
    return mean, mean - half, mean + half


def seed_effective(ks: list[int], increase: np.ndarray, target_half: np.ndarray | None = None,
                   threshold: float = THRESHOLD, level: float = 0.95) -> dict:
    """A model's effective context from the curves of its ``S >= 2`` seeds (``seed_band``) on
    the grid ``ks``: ``effective``, that of the mean curve; ``effective_ci_low`` and
    ``effective_ci_high``, those of the lower and the upper edge of its band. Each is a ``k``
    of the grid, and low <= effective <= high: before ``low`` even the lower edge is above
    the threshold at some larger k, from ``high`` on even the upper edge is within it."""
    increase = np.asarray(increase, dtype=float)
    if increase.ndim != 2 or increase.shape[1] != len(ks):
        raise ValueError(f"curves of shape {increase.shape} do not match {len(ks)} k")
    mean, low, high = seed_band(increase, target_half, level)
    return {"effective": effective_context(ks, mean, threshold),
            "effective_ci_low": effective_context(ks, low, threshold),
            "effective_ci_high": effective_context(ks, high, threshold)}
