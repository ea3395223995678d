"""The benchmark's output: the markdown tables printed to stdout and the CSVs written.

One row per configuration (:data:`COLUMNS`: the machine, the model, the measurements, the
step counts) and, with ``--profile``, one per configuration and loop (:data:`PROFILE_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnbench.bench.stepprofile import CATEGORIES, COLUMN
from rnnbench.io import write_atomic

COLUMNS = [
    "date", "device", "gpu", "cpu_model", "cpu_capability", "cpu_flags", "torch", "threads",
    "cuda_tf32", "cudnn_tf32",
    "cell", "hidden", "layers", "vocab", "batch_size", "bptt", "loss_impl",
    "flops_per_token", "peak_gflops", "ceiling_tokens_per_s",
    "bf16_peak_gflops", "bf16_ceiling_tokens_per_s",
    "naive_tokens_per_s", "ours_tokens_per_s", "ratio",
    "bf16_tokens_per_s", "bf16_ratio", "bf16_vs_fp32",
    "naive_peak_share", "ours_peak_share",
    "loss_steps", "loss_max_rel_diff", "update_max_rel_diff", "loss_drift_rel_diff",
    "bf16_loss_max_rel_diff", "bf16_loss_last_rel_diff",
    "stats_overhead_pct",
    "naive_peak_rss_mb", "ours_peak_rss_mb", "bf16_peak_rss_mb",
    "naive_cuda_peak_mb", "ours_cuda_peak_mb", "bf16_cuda_peak_mb",
    "warmup", "steps", "repeats",
]
PROFILE_COLUMNS = ["config", "loop", "precision", "wall_ms", *[COLUMN[c] for c in CATEGORIES],
                   "decoder_gemm_gflops", "peak_gflops", "naive_tokens_per_s",
                   "ceiling_tokens_per_s"]


def _fmt(value: Any, spec: str) -> str:
    """``value`` formatted by ``spec``; ``-`` for NaN (not measured)."""
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The markdown table of the results: naive fp32 | ours fp32 | ours bf16, side by side."""
    head = ["config", "naive fp32 tok/s", "ours fp32 tok/s", "ratio", "ours bf16 tok/s",
            "bf16 / naive", "bf16 / fp32", "naive % peak", "ours % peak",
            "loss rel diff (same w)", "update rel diff", "loss drift (free run)",
            "bf16 loss rel diff (same w / free run)", "stats overhead %",
            "RSS naive/ours/bf16 MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        whos = ("naive", "ours", "bf16")
        rss = " / ".join(_fmt(r.get(f"{w}_peak_rss_mb", math.nan), ".0f") for w in whos)
        if not math.isnan(r["naive_cuda_peak_mb"]):
            rss += " (GPU " + " / ".join(
                _fmt(r.get(f"{w}_cuda_peak_mb", math.nan), ".0f") for w in whos) + ")"
        bf16_diff = (f"{_fmt(r['bf16_loss_max_rel_diff'], '.1e')} / "
                     f"{_fmt(r['bf16_loss_last_rel_diff'], '.1e')}")
        cells = [f"{r['cell']}:{r['hidden']}:{r['layers']}",
                 _fmt(r["naive_tokens_per_s"], ",.0f"), _fmt(r["ours_tokens_per_s"], ",.0f"),
                 _fmt(r["ratio"], ".2f") + "x", _fmt(r["bf16_tokens_per_s"], ",.0f"),
                 _fmt(r["bf16_ratio"], ".2f") + "x", _fmt(r["bf16_vs_fp32"], ".2f") + "x",
                 _fmt(100 * r["naive_peak_share"], ".1f"),
                 _fmt(100 * r["ours_peak_share"], ".1f"), _fmt(r["loss_max_rel_diff"], ".1e"),
                 _fmt(r["update_max_rel_diff"], ".1e"), _fmt(r["loss_drift_rel_diff"], ".1e"),
                 bf16_diff, _fmt(r["stats_overhead_pct"], "+.1f"), rss]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: config | loop | ms/step per category (share of the step) | decoder GEMM rate."""
    head = ["config", "loop", "step ms", *CATEGORIES,
            "decoder GEMM GFLOP/s (% of its precision's peak)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        wall = r["wall_ms"]
        cells = [r["config"], r["loop"], f"{wall:.1f}"]
        cells += [f"{r[COLUMN[c]]:.1f} ({100 * r[COLUMN[c]] / wall:.0f}%)" for c in CATEGORIES]
        rate = r["decoder_gemm_gflops"]
        cells.append(f"{rate:.0f} ({100 * rate / r['peak_gflops']:.0f}%)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ceiling_lines(rows: Sequence[dict[str, Any]]) -> str:
    """One line per configuration: its fp32 (and bf16) ceiling in tokens/s and as a multiple of
    the naive loop."""
    lines = []
    for r in rows:
        line = (f"  {r['cell']}:{r['hidden']}:{r['layers']}  {r['ceiling_tokens_per_s']:,.0f} "
                f"tok/s = {r['ceiling_tokens_per_s'] / r['naive_tokens_per_s']:.2f}x the naive "
                "loop")
        bf16 = r.get("bf16_ceiling_tokens_per_s", math.nan)
        if not math.isnan(bf16):
            line += (f"; bf16 {bf16:,.0f} tok/s = {bf16 / r['naive_tokens_per_s']:.2f}x")
        lines.append(line)
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write the result rows (``columns``) to ``path`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, lambda tmp: tmp.write_text(buf.getvalue()))
