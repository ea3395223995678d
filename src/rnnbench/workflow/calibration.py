"""The plan's calibration: the measured training throughput of the committed reference runs
(results/reference/), as matmul FLOP/s per configuration (no torch import)."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from rnnbench.config import RunConfig
from rnnbench.model.params import matmul_flops_per_token


@dataclass(frozen=True)
class Measured:
    """The measured training throughput of one configuration (median over its runs)."""

    name: str  # e.g. lstm-h300-l1
    cpu: str
    runs: int
    tokens_per_s: float
    flops_per_token: int

    @property
    def flops_per_s(self) -> float:
        """Effective matmul FLOP/s of the measured configuration."""
        return self.tokens_per_s * self.flops_per_token


def flops_per_token(cfg: RunConfig, vocab: int) -> int:
    """Matmul FLOPs of one training token: decoder and every layer, forward + backward (x3)."""
    return int(matmul_flops_per_token(cfg.cell, cfg.hidden, cfg.layers, vocab,
                                      cfg.embedding_size))


def _median_tokens_per_s(history: Path) -> float | None:
    """Median tokens/s over a history's epochs (robust to an epoch slowed by a neighbour)."""
    try:
        with history.open(newline="") as f:
            values = [float(row["tokens_per_s"]) for row in csv.DictReader(f)
                      if row.get("tokens_per_s")]
    except (OSError, KeyError, ValueError):
        return None
    return statistics.median(values) if values else None


def calibration_experiments(root: Path) -> set[str] | None:
    """The experiments ``root/calibration.txt`` names (one per line, # comments): those whose
    runs trained alone on their machine. None (every experiment) when there is no such file."""
    try:
        lines = (root / "calibration.txt").read_text().splitlines()
    except OSError:
        return None
    return {line.split("#")[0].strip() for line in lines} - {""}


def read_reference(root: Path) -> list[Measured]:
    """Measured configurations of the full-length, finished fp32 runs under ``root``.

    bf16 runs (config/precision.yaml) are left out: the FLOP model prices fp32 work, and a
    bf16 rate would make every fp32 estimate of the same model look faster. A tuned
    experiment's runs (a ``trials.csv`` beside them, e.g. the fair comparison) are
    left out: they trained beside its trial search and other work, so their tokens/s measure
    a shared machine, not the calibration the reproduction runs give. Where ``calibration.txt``
    lists the experiments that trained alone, only those count (:func:`calibration_experiments`)."""
    groups: dict[tuple, list[float]] = {}
    listed = calibration_experiments(root)
    for meta_path in sorted(root.rglob("train.json")):
        if (meta_path.parent.parent / "trials.csv").exists():
            continue
        if listed is not None and meta_path.parent.parent.name not in listed:
            continue
        try:
            meta = json.loads(meta_path.read_text())
            cfg = RunConfig.from_dict(meta["config"])
            vocab = int(meta["vocab_size"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        # A capped epoch measures start-up more than training; a diverged run stopped early.
        if meta.get("status") != "ok" or cfg.max_batches is not None or cfg.precision:
            continue
        rate = _median_tokens_per_s(meta_path.with_name("history.csv"))
        if rate is None:
            continue
        name = f"{cfg.cell}-h{cfg.hidden}-l{cfg.layers}"
        key = (name, str(meta.get("cpu") or "unknown CPU"), flops_per_token(cfg, vocab))
        groups.setdefault(key, []).append(rate)
    return [Measured(name, cpu, len(rates), statistics.median(rates), flops)
            for (name, cpu, flops), rates in groups.items()]
