"""The measurement harness: our ``Trainer.step`` and the naive loop, same weights, same data.

A :class:`Pair` holds a real :class:`rnnbench.training.train.Trainer` ("ours", fp32), a
second one with ``precision: bf16`` ("bf16") and the course lab's loop
(:class:`rnnbench.bench.naive.NaiveLoop`) on models with the same initial weights; all walk the same
training stream. On a pair the harness measures

- exactness (:meth:`Pair.loss_difference`): the step losses and updates of ours and naive from
  the same weights on the same minibatches, and the losses of two free runs; what bf16 changes
  (:meth:`Pair.precision_difference`), the same way;
- throughput (:func:`measure`): timed blocks of steps alternately (naive, ours, ours in bf16,
  ours with global-norm-only gradient treatment, one peak matmul), device synchronised at
  block edges only, as medians over the repeats;
- memory (:func:`peak_memory`): the peak resident (and CUDA) memory of one loop's steps, run
  by :mod:`rnnbench.bench.bench` in a fresh process so that the two loops do not share a peak.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnbench.bench.naive import NaiveLoop, repackage
from rnnbench.bench.peak import MatmulPeak, synchronize, timed
from rnnbench.config import CELLS, RunConfig
from rnnbench.data.batching import get_batch
from rnnbench.model.model import RNNModel
from rnnbench.training.gradtreat import GradTreatment
from rnnbench.training.train import Trainer

GRID_CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")  # config/grid.yaml's `cells`
GRID_HIDDEN = (150, 300, 650)
GRID_LAYERS = (1, 2)
# The recipes' learning rates (config/grid.yaml: seed_rnn, seed_lstm; GRU, minGRU and
# minLSTM as the LSTM: the bench times steps, it does not tune them).
RECIPE_LR = {"rnn_tanh": 1.0, "rnn_relu": 1.0, "lstm": 5.0, "gru": 5.0, "min_gru": 5.0,
             "min_lstm": 5.0}


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked model: cell, hidden size, number of layers."""

    cell: str
    hidden: int
    layers: int

    @property
    def name(self) -> str:
        """``cell:hidden:layers``, the spelling of ``--configs``."""
        return f"{self.cell}:{self.hidden}:{self.layers}"


def parse_configs(text: str) -> list[BenchConfig]:
    """``rnn_tanh:150:1,lstm:300:1`` -> configurations (layers default to 1)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or parts[0] not in CELLS:
            raise ValueError(f"bad configuration {item!r}: write cell:hidden[:layers] with cell "
                             f"one of {', '.join(CELLS)}")
        out.append(BenchConfig(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 1))
    return out


def grid_configs() -> list[BenchConfig]:
    """Every (cell, hidden, layers) of the default grid of config/grid.yaml."""
    return [BenchConfig(c, h, n) for c in GRID_CELLS for h in GRID_HIDDEN for n in GRID_LAYERS]


class GlobalNormOnly:
    """Our gradient treatment without per-group statistics: one global foreach norm."""

    def __init__(self, treat: GradTreatment) -> None:
        self.params, self.cfg, self.width = treat.params, treat.cfg, 1 + len(treat.names)

    def __call__(self) -> torch.Tensor:
        """Apply the treatment in place; return the global norm repeated (1 + groups,)."""
        grads = [p.grad for p in self.params]
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))  # ()
        if self.cfg.grad == "normalize":
            torch._foreach_mul_(grads, torch.where(total < self.cfg.normalize_eps, 0.0,
                                                   1.0 / total))
        elif self.cfg.grad == "clip":
            torch._foreach_mul_(grads, (self.cfg.clip_norm / (total + 1e-6)).clamp(max=1.0))
        return total.expand(self.width)


class OurLoop:
    """``Trainer.step`` over the training stream as ``train_epoch`` calls it, pass after pass."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        width = 2 + len(trainer.treat.names)  # [mean loss, global norm, group norms]
        self.records = torch.zeros(trainer.n_batches, width, device=trainer.device)
        self.restart()

    def restart(self) -> None:
        """Back to the stream's first minibatch with a zero hidden state."""
        self.hidden = self.trainer.model.init_hidden(self.trainer.cfg.batch_size)
        self.loss_acc = torch.zeros((), device=self.trainer.device)
        self.pos, self.tokens = 0, 0

    def steps(self, n: int) -> list[int]:
        """``n`` steps on the next minibatches; their rows of ``records``."""
        t, rows = self.trainer, []
        for _ in range(n):
            b = self.pos % t.n_batches
            if b == 0:  # a new pass starts from a zero state, as an epoch does
                self.hidden = t.model.init_hidden(t.cfg.batch_size)
            x, y = get_batch(t.train_data, b * t.cfg.bptt, t.cfg.bptt)  # (seq, batch) each
            self.hidden, total = t.step(x, y, self.hidden, self.records[b])
            self.loss_acc += total
            self.pos, self.tokens = b + 1, self.tokens + y.numel()
            rows.append(b)
        return rows


class Pair:
    """A real Trainer ("ours") and a naive model with the same initial weights and data."""

    def __init__(self, bc: BenchConfig, data_dir: Path, device: torch.device, batch_size: int,
                 bptt: int, workdir: Path, loss_impl: str | None = None) -> None:
        extra = {} if loss_impl is None else {"loss_impl": loss_impl}
        self.cfg = RunConfig(cell=bc.cell, hidden=bc.hidden, layers=bc.layers,
                             lr=RECIPE_LR[bc.cell], batch_size=batch_size, bptt=bptt,
                             device=device.type, **extra)
        self.device = device
        self.trainer = Trainer(self.cfg, data_dir, workdir / f"{bc.cell}-{bc.hidden}.pt", device)
        self.vocab = self.trainer.vocab_size
        naive = RNNModel(bc.cell, self.vocab, bc.hidden, bc.layers).to(device)
        self.naive = NaiveLoop(naive, self.trainer.train_data, bptt, self.trainer.n_batches,
                               self.cfg.lr, self.cfg.normalize_eps)
        self.ours = OurLoop(self.trainer)
        # the same Trainer in bf16 (same seed, so the same initial weights; reset() copies them)
        self.trainer16 = Trainer(dataclasses.replace(self.cfg, precision="bf16"), data_dir,
                                 workdir / f"{bc.cell}-{bc.hidden}-bf16.pt", device)
        self.ours16 = OurLoop(self.trainer16)
        self.loops: dict[str, NaiveLoop | OurLoop] = {"naive": self.naive, "ours": self.ours,
                                                      "bf16": self.ours16}
        self.full_treat = self.trainer.treat
        self.global_treat = GlobalNormOnly(self.trainer.treat)
        self.reset()

    def reset(self) -> None:
        """Every model back to the Trainer's initial weights, every loop to the first batch."""
        for model in (self.trainer.model, self.naive.model, self.trainer16.model):
            model.load_state_dict(self.trainer.init_state)
            model.train()
        for loop in self.loops.values():
            loop.restart()

    def naive_steps(self, n: int) -> list[float]:
        """``n`` naive steps; their mean losses."""
        return self.naive.steps(n)

    def our_steps(self, n: int) -> list[int]:
        """``n`` steps of ``Trainer.step``; their rows of ``ours.records``."""
        return self.ours.steps(n)

    def bf16_steps(self, n: int) -> list[int]:
        """``n`` steps of the bf16 Trainer's ``step``; their rows of ``ours16.records``."""
        return self.ours16.steps(n)

    def precision_difference(self, n: int) -> dict[str, float]:
        """What bf16 changes over ``n`` steps from the same initial weights and minibatches.

        ``bf16_loss_max_rel_diff``: max |bf16 - fp32| / fp32 of the step loss with the bf16
        model given our fp32 weights and hidden state before each step (the arithmetic alone);
        ``bf16_loss_last_rel_diff``: the same for the n-th step's loss when both train freely
        for ``n`` steps (the arithmetic and what training makes of it).
        """
        self.reset()
        same = 0.0
        for _ in range(n):
            self.trainer16.model.load_state_dict(self.trainer.model.state_dict())
            self.ours16.hidden = repackage(self.ours.hidden)
            self.ours16.pos = self.ours.pos
            (r16,) = self.bf16_steps(1)
            (r32,) = self.our_steps(1)
            fp32 = float(self.ours.records[r32, 0])
            same = max(same, abs(float(self.ours16.records[r16, 0]) - fp32) / abs(fp32))
        self.reset()
        r32, r16 = self.our_steps(n)[-1], self.bf16_steps(n)[-1]
        fp32, bf16 = float(self.ours.records[r32, 0]), float(self.ours16.records[r16, 0])
        self.reset()
        return {"bf16_loss_max_rel_diff": same, "bf16_loss_last_rel_diff": abs(bf16 - fp32) / fp32}

    def loss_difference(self, n: int) -> dict[str, float]:
        """Exactness over ``n`` steps from the same initial weights on the same minibatches.

        ``loss_max_rel_diff``: max |ours - naive| / naive of the step loss when, before each
        step, the naive model gets our current weights and hidden state (same data and
        weights, the issue's criterion); ``update_max_rel_diff``: max over those steps of
        ||update_ours - update_naive|| / ||update_ours|| (all parameters);
        ``loss_drift_rel_diff``: max relative loss difference when both run freely for ``n``
        steps (includes float32 rounding amplified by the training dynamics).
        """
        self.reset()
        ours_params = list(self.trainer.model.parameters())
        naive_params = list(self.naive.model.parameters())
        loss_diff, update_diff = 0.0, 0.0
        for _ in range(n):
            self.naive.model.load_state_dict(self.trainer.model.state_dict())
            self.naive.hidden = repackage(self.ours.hidden)
            self.naive.pos = self.ours.pos
            before = [p.detach().clone() for p in ours_params]
            (naive,) = self.naive_steps(1)
            (row,) = self.our_steps(1)
            ours = float(self.ours.records[row, 0])
            loss_diff = max(loss_diff, abs(ours - naive) / abs(naive))
            with torch.no_grad():
                d_ours = [p - b for p, b in zip(ours_params, before, strict=True)]
                d_naive = [p - b for p, b in zip(naive_params, before, strict=True)]
                num = math.sqrt(sum(float((a - b).square().sum())
                                    for a, b in zip(d_ours, d_naive, strict=True)))
                den = math.sqrt(sum(float(a.square().sum()) for a in d_ours))
            update_diff = max(update_diff, num / den if den else math.nan)
        self.reset()
        naive_losses = self.naive_steps(n)
        ours_losses = self.ours.records[self.our_steps(n), 0].tolist()
        drift = max(abs(o - r) / abs(r) for o, r in zip(ours_losses, naive_losses, strict=True))
        return {"loss_max_rel_diff": loss_diff, "update_max_rel_diff": update_diff,
                "loss_drift_rel_diff": drift}


def measure(pair: Pair, warmup: int, steps: int, repeats: int, flops: float,
            peak: MatmulPeak) -> dict[str, float]:
    """Alternate timed blocks (naive, ours, ours in bf16, ours without group stats, the peak
    matmul); medians of tokens/s, of per-repeat ratios and of per-repeat shares of the peak."""
    trainer = pair.trainer

    def ours_global(n: int) -> None:
        trainer.treat = pair.global_treat
        try:
            pair.our_steps(n)
        finally:
            trainer.treat = pair.full_treat

    arms: dict[str, Callable[[int], Any]] = {
        "naive": pair.naive_steps, "ours": pair.our_steps, "bf16": pair.bf16_steps,
        "global": ours_global}
    for fn in arms.values():
        fn(warmup)
    rates: dict[str, list[float]] = {k: [] for k in arms}  # tokens/s of each block
    peaks = []  # GFLOP/s, measured between the blocks: the load of a shared machine drifts
    for _ in range(repeats):
        for name, fn in arms.items():
            loop = pair.loops["ours" if name == "global" else name]
            before = loop.tokens
            seconds = timed(lambda fn=fn: fn(steps), pair.device)
            rates[name].append((loop.tokens - before) / seconds)
        peaks.append(peak.measure(1))
    ratios = [o / n for n, o in zip(rates["naive"], rates["ours"], strict=True)]
    ratios16 = [b / n for n, b in zip(rates["naive"], rates["bf16"], strict=True)]
    vs_fp32 = [b / o for o, b in zip(rates["ours"], rates["bf16"], strict=True)]
    overhead = [g / f - 1 for f, g in zip(rates["ours"], rates["global"], strict=True)]
    out = {"naive_tokens_per_s": statistics.median(rates["naive"]),
           "ours_tokens_per_s": statistics.median(rates["ours"]),
           "ratio": statistics.median(ratios),
           "bf16_tokens_per_s": statistics.median(rates["bf16"]),
           "bf16_ratio": statistics.median(ratios16),
           "bf16_vs_fp32": statistics.median(vs_fp32),
           "stats_overhead_pct": 100 * statistics.median(overhead),
           "peak_gflops": statistics.median(peaks)}
    for who in ("naive", "ours"):
        out[f"{who}_peak_share"] = statistics.median(
            r * flops / (p * 1e9) for r, p in zip(rates[who], peaks, strict=True))
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    ``VmHWM`` of /proc/self/status where it exists: ``ru_maxrss`` survives ``exec`` on Linux,
    so a child started from a big benchmark process would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_memory(pair: Pair, who: str, steps: int) -> dict[str, float]:
    """Run ``steps`` steps of ``who``'s loop; this process's peak RSS (and CUDA) MiB.

    Meant for a fresh process holding nothing but ``pair``: both loops' processes build the
    same Trainer (data, model, naive copy), so the difference of their peaks is the steps'.
    """
    pair.loops[who].steps(steps)
    synchronize(pair.device)
    cuda = (torch.cuda.max_memory_allocated(pair.device) / 2**20 if pair.device.type == "cuda"
            else math.nan)
    return {"peak_rss_mb": peak_rss_mb(), "cuda_peak_mb": cuda}
