"""Per-epoch and per-step metric files of a training run (tidy CSV, written atomically)."""

from __future__ import annotations

import csv
import gzip
import io
import math
from pathlib import Path

import torch

from rnnbench.io import write_atomic

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
GLOBAL_STATS = ("p50", "p90", "p99", "max", "frac_above")  # copied into the epoch table


def grad_norm_stats(norms: torch.Tensor, threshold: float | None = None) -> dict[str, float]:
    """p50/p90/p99/max of finite step norms, the share of steps above ``threshold`` (or, when
    None, above 10x the median), and how many steps were not finite."""
    finite = norms[torch.isfinite(norms)].double()
    if finite.numel() == 0:
        nan = math.nan
        return {**{k: nan for k in QUANTILES}, "max": nan, "frac_above": nan,
                "nonfinite": int(norms.numel())}
    stats = {k: float(torch.quantile(finite, q)) for k, q in QUANTILES.items()}
    stats["max"] = float(finite.max())
    limit = threshold if threshold is not None else 10 * stats["p50"]
    stats["frac_above"] = float((finite > limit).double().mean())
    stats["nonfinite"] = int(norms.numel() - finite.numel())
    return stats


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def group_grad_stats(steps: torch.Tensor, groups: list[str], epoch: int, n_batches: int,
                     cfg) -> list[dict]:
    """Per-epoch rows of gradient-norm statistics for the global norm and each group.

    ``steps``: the epoch's (n_batches, 2 + G) table [loss, global, group...]. Also gives the
    global step of the first non-finite norm, if any.
    """
    table = steps.cpu()
    reached = ~(torch.isnan(table[:, 0]) & torch.isnan(table[:, 1]))
    table = table[reached]
    threshold = cfg.clip_norm if cfg.grad == "clip" else None
    rows = []
    for j, name in enumerate(["global", *groups]):
        norms = table[:, 1 + j]
        bad = (~torch.isfinite(norms)).nonzero()
        first = int(bad[0, 0]) + epoch * n_batches if len(bad) else None
        rows.append({"epoch": epoch, "group": name,
                     **grad_norm_stats(norms, threshold if name == "global" else None),
                     "first_nonfinite_step": first})
    return rows


def write_rows(path: Path, records: list[dict]) -> None:
    """A list of flat dicts as CSV (header from the first), atomically."""
    header = list(records[0]) if records else ["epoch"]
    rows = [[r.get(k) for k in header] for r in records]
    write_atomic(path, lambda tmp: tmp.write_text(_csv_text(header, rows)))


def write_steps(path: Path, steps: list[torch.Tensor], groups: list[str], n_batches: int) -> None:
    """Every training step's loss, global norm and per-group norms (gzip CSV, 7 digits)."""
    header = ["epoch", "batch", "step", "loss", "grad_norm"] + [f"grad_norm.{g}" for g in groups]
    rows = []
    for epoch, table in enumerate(steps):
        for b, values in enumerate(table.cpu().tolist()):
            if math.isnan(values[0]) and math.isnan(values[1]):
                continue  # never reached (cap on minibatches, or stopped by divergence)
            rows.append([epoch, b, epoch * n_batches + b] + [f"{v:.7g}" for v in values])
    text = _csv_text(header, rows).encode()
    write_atomic(path, lambda tmp: tmp.write_bytes(gzip.compress(text, mtime=0)))


def ppl_text(ppl: float) -> str:
    """A perplexity as text: ``123.45``, or ``inf (overflow)``."""
    return f"{ppl:.2f}" if math.isfinite(ppl) else "inf (overflow)"


def duration_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.2 h``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
