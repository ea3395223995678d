"""The effective context's tables across runs, from the run folders (no torch import)::

    python -m rnnbench.analysis.context_tables --out-dir results/studies/grid/tables \\
        results/runs/ptb/grid/*/

writes ``context.csv`` (every run's context.csv with the run labels first and, per run, its
``status``, ``effective_context`` and ``order_context`` with their bootstrap intervals; a run
not measured, or measured with a non-finite loss, is one row with its status and no number)
and ``context_summary.csv`` (the summary across seeds of
:func:`rnnbench.analysis.aggregate.summarize`, one row per configuration, with each context
over its measured seeds: :func:`model_context`). The figure is rnnbench.figures.context_figures.

Each run's effective context is a ``k`` of a log grid (rnnbench.diagnostics.context_stats). The
mean of such values over a few seeds, with a t interval, is not a context length the model
has, and its interval can reach below 1 token or have no width where the seeds agree. A
model's effective context is instead that of the mean of its seeds' loss-increase curves,
with the interval of that mean's pointwise band (``model_band``: the t interval over seeds and
the bootstrap over the target positions they share, in quadrature); with one seed, the run's
own bootstrap interval over target positions.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.analysis.aggregate import GROUP_COLUMNS, run_record, summarize
from rnnbench.analysis.labels import size_label
from rnnbench.diagnostics.context_stats import seed_band, seed_effective
from rnnbench.io import write_csv

log = logging.getLogger(__name__)
LABELS = ["corpus", "experiment", "run_id", "model", "size", "cell", "hidden", "layers", "seed"]
CONTEXTS = ("effective_context", "order_context")  # from truncation, from shuffling
PER_RUN = ["status", *[f"{c}{s}" for c in CONTEXTS for s in ("", "_ci_low", "_ci_high",
                                                               "_censored")]]

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
    (rnnbench.diagnostics.context_stats.seed_band; one run: its bootstrap interval). Empty where
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


def run_rows(run_dir: Path, record: dict) -> pd.DataFrame:
    """One run's context.csv rows with its labels and per-run numbers (one row, no k, when it
    has none: not measured, or a non-finite loss)."""
    info = json.loads((run_dir / "context.json").read_text())
    labels = {k: record[k] for k in LABELS if k != "size"} | {"size": size_label(record)}
    per_run = {k: info.get(k, np.nan) for k in PER_RUN}
    rows = pd.read_csv(run_dir / "context.csv").drop(columns=["run_id", "cell", "hidden",
                                                               "layers", "seed"])
    if rows.empty:  # every column still there, so a table of such runs alone has them too
        return pd.DataFrame([{**labels, **per_run, **{c: np.nan for c in rows.columns}}])
    return pd.concat([pd.DataFrame({k: [v] * len(rows) for k, v in {**labels, **per_run}.items()}),
                      rows], axis=1)


def context_summary(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``summarize(runs)`` with, per configuration, each context over the seeds measured
    (status ok; :func:`model_context`: the context of the mean curve over
    seeds with its t-band interval, and the range of the seeds' own values); NaN, never a
    number, where none was."""
    joined = runs[["run_id", *GROUP_COLUMNS]].merge(
        table.drop(columns=[c for c in GROUP_COLUMNS if c in table and c != "experiment"]),
        on=["experiment", "run_id"], how="left")
    rows = []
    for key, block in joined.groupby(_config_key(joined), sort=False):
        row = {"_key": key}
        for name in CONTEXTS:
            row.update(model_context(block, name))
        rows.append(row)
    summary = summarize(runs)
    merged = summary.assign(_key=_config_key(summary)).merge(pd.DataFrame(rows), on="_key",
                                                              how="left", validate="1:1")
    return merged.drop(columns="_key")


def _config_key(frame: pd.DataFrame) -> pd.Series:
    """One string per row naming its configuration (GROUP_COLUMNS): the same for a run and its
    summary row whatever the column dtypes (None or NaN, 1 or 1.0)."""
    def norm(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        return float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) \
            else v

    return frame[GROUP_COLUMNS].apply(lambda r: repr(tuple(norm(v) for v in r)), axis=1)


def collect(run_dirs: list[Path], out_dir: Path) -> dict[str, pd.DataFrame]:
    """Build and write context.csv and context_summary.csv; return them."""
    records = [run_record(d) for d in run_dirs]
    table = pd.concat([run_rows(d, r) for d, r in zip(run_dirs, records, strict=True)],
                      ignore_index=True)
    tables = {"context.csv": table,
              "context_summary.csv": context_summary(pd.DataFrame(records), table)}
    for name, frame in tables.items():
        write_csv(frame, out_dir / name)
    return tables


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: the runs' context files into context.csv and its summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tables = collect(args.runs, args.out_dir)
    log.info("%d runs -> %s (%s)", len(args.runs), args.out_dir, ", ".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
