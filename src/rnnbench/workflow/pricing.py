"""What the plan charges for bf16 and for the plateau schedule, from committed runs (no torch).

The plan prices a run as matmul FLOPs at the fp32 reference runs' rate
(rnnbench.workflow.calibration) times its epochs. Two things make that an upper bound by a
factor of two or three for the converged studies: bf16 products run faster than fp32 on CPUs
with bf16 instructions, and a plateau run stops when validation stops improving, long before its
cap of ``epochs``. Both are measured on the committed runs under ``results/reference/``:

- **bf16**: the median effective FLOP/s of the finished, full-length bf16 runs on this CPU model
  over the fp32 median on the same CPU (on another CPU, no speed-up is assumed);
- **plateau**: per cell, the median number of epochs the finished plateau runs trained, plus
  one epoch per plateau event (``max_decays`` decays and the stop) for each epoch of patience
  more than theirs, at most the run's ``epochs``. A cell with no committed plateau run takes the
  median over every cell.

And what FLOPs leave out, which dominates small models: a fixed cost per training step (the
optimizer, the gradient norms, Python: at 0.5M parameters more than the products themselves;
docs/results.md gives the values) and per epoch (validation, the checkpoint), each the median
over the committed final runs on this CPU of what their measured times exceed the FLOP model by.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rnnbench.config import RunConfig
from rnnbench.workflow.calibration import flops_per_token

# PTB's validation tokens: what the committed runs' epochs scored (their epoch cost's scale).
VALID_TOKENS = 73_760


@dataclass(frozen=True)
class Pricing:
    """The factors the plan applies, with what they rest on."""

    bf16_speedup: float = 1.0  # bf16 FLOP/s over fp32 FLOP/s on this CPU
    bf16_runs: int = 0
    epochs: dict[str, float] = field(default_factory=dict)  # cell -> median epochs trained
    patience: dict[str, int] = field(default_factory=dict)  # cell -> those runs' patience
    plateau_runs: int = 0
    step_seconds: float = 0.0  # per training step, beyond its FLOPs
    epoch_seconds: float = 0.0  # per epoch, beyond its steps (validation, checkpoint)
    overhead_runs: int = 0

    def planned_epochs(self, cfg: RunConfig) -> float:
        """The epochs a run is priced at: ``epochs``, or for a plateau run its cell's measured
        median (adjusted for patience), at most ``epochs``."""
        if cfg.schedule != "plateau" or not self.epochs:
            return float(cfg.epochs)
        everyone = statistics.median(self.epochs.values())
        measured = self.epochs.get(cfg.cell, everyone)
        theirs = self.patience.get(cfg.cell, statistics.median(self.patience.values()))
        extra = (cfg.plateau_patience - theirs) * (cfg.max_decays + 1)
        return float(min(cfg.epochs, max(1.0, measured + extra)))

    def epoch_cost(self, cfg: RunConfig) -> float:
        """An epoch's fixed cost for ``cfg``: the measured one (whole validation splits) in
        proportion to the validation tokens it scores (``max_eval_batches`` caps them)."""
        if cfg.max_eval_batches is None:
            return self.epoch_seconds
        share = cfg.max_eval_batches * cfg.bptt * cfg.batch_size / VALID_TOKENS
        return self.epoch_seconds * min(1.0, share)

    def speed(self, cfg: RunConfig) -> float:
        """The factor on the fp32 rate: the bf16 speed-up for a bf16 run, else 1."""
        return self.bf16_speedup if cfg.precision == "bf16" else 1.0


def _run(meta_path: Path) -> tuple[RunConfig, dict, list[dict]] | None:
    """A finished, full-length run's config, train.json and history rows, or None."""
    try:
        meta = json.loads(meta_path.read_text())
        cfg = RunConfig.from_dict(meta["config"])
        with meta_path.with_name("history.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("status") != "ok" or cfg.max_batches is not None or not rows:
        return None
    return cfg, meta, rows


def _overheads(cfg: RunConfig, meta: dict, rows: list[dict], rate: float) -> tuple[float, float]:
    """What one run's step and epoch took beyond the FLOP model at ``rate`` (seconds)."""
    tokens = cfg.batch_size * cfg.bptt
    step = tokens / statistics.median(float(r["tokens_per_s"]) for r in rows)
    flops = tokens * flops_per_token(cfg, int(meta["vocab_size"])) / rate
    wall = meta.get("wall_seconds")
    timed = all(r.get("seconds") for r in rows) and isinstance(wall, (int, float)) and wall == wall
    per_epoch = ((wall - sum(float(r["seconds"]) for r in rows)) / len(rows) if timed
                 else float("nan"))
    return max(0.0, step - flops), per_epoch


def read_pricing(root: Path, cpu: str, fp32_rate: float | None) -> Pricing:
    """The factors measured on the committed runs under ``root`` (tuning trials aside);
    ``fp32_rate``: the plan's fp32 FLOP/s on this CPU (None: no bf16 speed-up, no overhead)."""
    bf16, epochs, patience, steps, per_epoch = [], {}, {}, [], []
    for meta_path in sorted(root.rglob("train.json")):
        if "trials" in meta_path.parts or (run := _run(meta_path)) is None:
            continue
        cfg, meta, rows = run
        here = str(meta.get("cpu")) == cpu and fp32_rate
        if cfg.precision == "bf16" and here:
            rate = statistics.median(float(r["tokens_per_s"]) for r in rows)
            bf16.append(rate * flops_per_token(cfg, int(meta["vocab_size"])) / fp32_rate)
        if here:
            speed = statistics.median(bf16) if cfg.precision == "bf16" and bf16 else 1.0
            step, epoch = _overheads(cfg, meta, rows, fp32_rate * speed)
            steps.append(step)
            per_epoch += [epoch] if epoch == epoch else []
        if cfg.schedule == "plateau" and meta.get("stopped") == "plateau_decays":
            epochs.setdefault(cfg.cell, []).append(len(rows))
            patience.setdefault(cfg.cell, []).append(cfg.plateau_patience)
    return Pricing(
        bf16_speedup=statistics.median(bf16) if bf16 else 1.0, bf16_runs=len(bf16),
        epochs={c: statistics.median(v) for c, v in epochs.items()},
        patience={c: int(statistics.median(v)) for c, v in patience.items()},
        plateau_runs=sum(len(v) for v in epochs.values()),
        step_seconds=statistics.median(steps) if steps else 0.0,
        epoch_seconds=max(0.0, statistics.median(per_epoch)) if per_epoch else 0.0,
        overhead_runs=len(steps))


def notes(pricing: Pricing, bf16: int, plateau: int) -> list[str]:
    """The plan's lines on how its ``bf16`` and ``plateau`` runs (counts) were priced."""
    lines = []
    if pricing.overhead_runs:
        lines.append(
            f"Each step costs {pricing.step_seconds * 1000:.0f} ms beyond its FLOPs and each "
            f"epoch {pricing.epoch_seconds:.1f} s (validation, checkpoint): the medians of "
            f"{pricing.overhead_runs} committed runs on this CPU.")
    if bf16:
        lines.append(
            f"bf16: {bf16} of the runs to train are bf16, priced at {pricing.bf16_speedup:.2f}x "
            f"the fp32 rate (the median of {pricing.bf16_runs} committed bf16 runs on this CPU)."
            if pricing.bf16_runs else
            f"bf16: {bf16} of the runs to train are bf16, priced as fp32 work (no committed bf16 "
            "run on this CPU), so this is an upper bound.")
    if plateau:
        lines.append(
            f"plateau: {plateau} of the runs to train stop when validation stops improving, "
            f"priced at the epochs {pricing.plateau_runs} committed plateau runs took (median "
            "per cell, one more per decay for each epoch of patience more), at most their "
            "`epochs`; read it as good to a third or so."
            if pricing.plateau_runs else
            f"plateau: {plateau} of the runs to train stop when validation stops improving, "
            "priced at their maximum of `epochs`, so this is an upper bound.")
    return lines
