"""Training throughput: our ``Trainer.step`` against the seed's naive loop, side by side.

For each configuration (cell, hidden, layers) the benchmark builds a real
:class:`rnnbench.train.Trainer` ("ours") and a model with the same weights trained by
:func:`naive_step`, the seed's exact step as in the course lab and pytorch/examples'
word_language_model (full logits, mean ``F.cross_entropy``, a Python loop over parameter
norms with host syncs, ``p.grad /= norm``, ``p.data.add_``). It then

1. runs ``--loss-steps`` steps of both from the same initial weights on the same minibatches
   and records the largest relative difference of the step losses with the naive model
   re-synchronised to our weights before each step (same data and weights), of the updates,
   and of the losses of two free runs (see :meth:`Pair.loss_difference`);
2. after ``--warmup`` steps, times blocks of ``--steps`` steps alternately (naive, ours, ours
   with global-norm-only gradient treatment, one fp32 ``--peak-size``-square ``torch.mm``;
   repeated ``--repeats`` times; device synchronised at block edges only) and reports median
   tokens/s, the median of the per-repeat ratios ours/naive, the share of the matmul peak
   measured in the same repeat (analytic matmul FLOPs per token x tokens/s / peak) and the
   overhead of the per-group gradient statistics;
3. with ``--profile``, profiles a few steps of each loop with ``torch.profiler`` and splits the
   step's time into decoder GEMMs, softmax + cross-entropy, recurrence, embedding, gradient
   norm + SGD and the rest (:mod:`rnnbench.stepprofile`), with the decoder GEMMs' achieved
   GFLOP/s, and reports the *ceiling*: the tokens/s of a step whose every matmul FLOP ran at
   the measured peak and nothing else took time;
4. with ``--memory``, runs each loop for ``--memory-steps`` steps in a fresh subprocess and
   records its peak resident memory (and, on CUDA, peak allocated GPU memory).

The table is printed to stdout and written, with the machine's description, to a CSV.
Usage::

    python -m rnnbench.bench --threads 2                      # the two issue configurations
    python -m rnnbench.bench --threads 2 --profile          # ... and where the time goes
    python -m rnnbench.bench --grid --memory --out results/bench/grid.csv
    python -m rnnbench.bench --configs rnn_tanh:150:1,gru:650:2 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rnnbench.config import CELLS, LOSS_IMPLS, RunConfig
from rnnbench.data import get_batch
from rnnbench.io import write_atomic
from rnnbench.model import Hidden, RNNModel
from rnnbench.provenance import cpu_model
from rnnbench.stepprofile import CATEGORIES, COLUMN, ceiling, profile_pair, profile_table
from rnnbench.train import GradTreatment, Trainer, pick_device

DEFAULT_CONFIGS = "rnn_tanh:150:1,lstm:300:1"
GRID_HIDDEN = (150, 300, 650)
GRID_LAYERS = (1, 2)
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
# The recipes' learning rates (config/config.yaml: seed_rnn, seed_lstm; GRU as the LSTM).
RECIPE_LR = {"rnn_tanh": 1.0, "rnn_relu": 1.0, "lstm": 5.0, "gru": 5.0}
COLUMNS = [
    "date", "device", "gpu", "cpu_model", "torch", "threads", "cuda_tf32", "cudnn_tf32",
    "cell", "hidden", "layers", "vocab", "batch_size", "bptt", "loss_impl",
    "flops_per_token", "peak_gflops", "ceiling_tokens_per_s",
    "naive_tokens_per_s", "ours_tokens_per_s", "ratio",
    "naive_peak_share", "ours_peak_share",
    "loss_steps", "loss_max_rel_diff", "update_max_rel_diff", "loss_drift_rel_diff",
    "stats_overhead_pct",
    "naive_peak_rss_mb", "ours_peak_rss_mb", "naive_cuda_peak_mb", "ours_cuda_peak_mb",
    "warmup", "steps", "repeats",
]


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
    """Every (cell, hidden, layers) of the default grid of config/config.yaml."""
    return [BenchConfig(c, h, n) for c in CELLS for h in GRID_HIDDEN for n in GRID_LAYERS]


def matmul_flops_per_token(cell: str, hidden: int, layers: int, vocab: int,
                           embedding: int | None = None) -> float:
    """Analytic matmul FLOPs per token of one training step (forward + backward = 3x forward).

    Decoder ``2 H V``; layer ``l`` ``2 (E_in + H) G H`` with ``G`` gates (1 RNN, 3 GRU, 4 LSTM)
    and ``E_in`` the embedding size for layer 0, else ``H``. The embedding lookup is no matmul.
    """
    gates = GATES[cell]
    emb = embedding or hidden
    forward = 2 * hidden * vocab
    for layer in range(layers):
        e_in = emb if layer == 0 else hidden
        forward += 2 * (e_in + hidden) * gates * hidden
    return 3.0 * forward


def repackage(hidden: Hidden) -> Hidden:
    """The examples' ``repackage_hidden``: new tensors cut from their history."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(repackage(h) for h in hidden)  # type: ignore[return-value]


def naive_step(model: RNNModel, x: torch.Tensor, y: torch.Tensor, hidden: Hidden, lr: float,
               eps: float = 1e-4) -> tuple[Hidden, float]:
    """The seed's exact training step on inputs/targets (seq, batch); returns the new hidden
    state and the step's mean loss (a Python float, i.e. a host sync)."""
    hidden = repackage(hidden)
    model.zero_grad()
    output, hidden = model(x, hidden)  # (seq, batch, vocab)
    loss = F.cross_entropy(output.view(-1, model.vocab_size), y.view(-1))
    loss.backward()
    params = list(model.parameters())
    norm = math.sqrt(sum(p.grad.norm().item() ** 2 for p in params))
    for p in params:
        if norm < eps:
            p.grad.zero_()
        else:
            p.grad /= norm
        p.data.add_(p.grad, alpha=-lr)
    return hidden, loss.item()


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
        self.naive = RNNModel(bc.cell, self.vocab, bc.hidden, bc.layers).to(device)
        self.reset()
        self.full_treat = self.trainer.treat
        self.global_treat = GlobalNormOnly(self.trainer.treat)
        width = 2 + len(self.full_treat.names)
        self.records = torch.zeros(self.trainer.n_batches, width, device=device)

    def reset(self) -> None:
        """Both models back to the Trainer's initial weights, zero hidden states."""
        self.trainer.model.load_state_dict(self.trainer.init_state)
        self.naive.load_state_dict(self.trainer.init_state)
        self.trainer.model.train()
        self.naive.train()
        self.hidden = {"naive": self.naive.init_hidden(self.cfg.batch_size),
                       "ours": self.trainer.model.init_hidden(self.cfg.batch_size)}
        self.loss_acc = torch.zeros((), device=self.device)
        self.total_loss = 0.0
        self.pos = {"naive": 0, "ours": 0}
        self.tokens = {"naive": 0, "ours": 0}  # trained so far, for tokens/s

    def batch(self, who: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The next minibatch (seq, batch) of ``who``'s pass over the training stream."""
        b = self.pos[who] % self.trainer.n_batches
        self.pos[who] = b + 1
        if b == 0:  # a new pass starts from a zero state, as an epoch does
            model = self.naive if who == "naive" else self.trainer.model
            self.hidden[who] = model.init_hidden(self.cfg.batch_size)
        x, y = get_batch(self.trainer.train_data, b * self.cfg.bptt, self.cfg.bptt)
        self.tokens[who] += y.numel()
        return x, y

    def naive_steps(self, n: int) -> list[float]:
        """``n`` naive steps; their mean losses."""
        losses = []
        for _ in range(n):
            x, y = self.batch("naive")
            self.hidden["naive"], loss = naive_step(self.naive, x, y, self.hidden["naive"],
                                                    self.cfg.lr, self.cfg.normalize_eps)
            self.total_loss += loss
            losses.append(loss)
        return losses

    def our_steps(self, n: int) -> list[int]:
        """``n`` steps of ``Trainer.step`` (as in ``train_epoch``); their rows of ``records``."""
        rows = []
        for _ in range(n):
            b = self.pos["ours"] % self.trainer.n_batches
            x, y = self.batch("ours")
            self.hidden["ours"], total = self.trainer.step(x, y, self.hidden["ours"],
                                                           self.records[b])
            self.loss_acc += total
            rows.append(b)
        return rows

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
        naive_params = list(self.naive.parameters())
        loss_diff, update_diff = 0.0, 0.0
        for _ in range(n):
            self.naive.load_state_dict(self.trainer.model.state_dict())
            self.hidden["naive"] = repackage(self.hidden["ours"])
            self.pos["naive"] = self.pos["ours"]
            before = [p.detach().clone() for p in ours_params]
            (naive,) = self.naive_steps(1)
            (row,) = self.our_steps(1)
            ours = float(self.records[row, 0])
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
        ours_losses = self.records[self.our_steps(n), 0].tolist()
        drift = max(abs(o - r) / abs(r) for o, r in zip(ours_losses, naive_losses, strict=True))
        return {"loss_max_rel_diff": loss_diff, "update_max_rel_diff": update_diff,
                "loss_drift_rel_diff": drift}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on CPU); called at timing block edges only."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds ``fn`` takes, queued device work included."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


class MatmulPeak:
    """The fp32 matmul peak of a device: ``torch.mm`` of two (size, size) matrices."""

    def __init__(self, device: torch.device, size: int = 4096) -> None:
        gen = torch.Generator().manual_seed(0)
        self.device, self.size = device, size
        self.a = torch.randn(size, size, generator=gen).to(device)  # (size, size)
        self.b = torch.randn(size, size, generator=gen).to(device)  # (size, size)
        self.out = torch.empty(size, size, device=device)  # (size, size)
        self.inner = 1 if device.type == "cpu" else 10  # products per timing
        self.measure(1)  # warm-up

    def _run(self) -> None:
        for _ in range(self.inner):
            torch.mm(self.a, self.b, out=self.out)

    def measure(self, repeats: int) -> float:
        """Median GFLOP/s over ``repeats`` timings."""
        times = [timed(self._run, self.device) for _ in range(repeats)]
        return 2.0 * self.size**3 * self.inner / statistics.median(times) / 1e9


def machine(device: torch.device) -> dict[str, Any]:
    """The columns describing where the benchmark ran."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_tf32": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else "",
        "cudnn_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else "",
    }


def measure(pair: Pair, warmup: int, steps: int, repeats: int, flops: float,
            peak: MatmulPeak) -> dict[str, float]:
    """Alternate timed blocks (naive, ours, ours without group stats, the peak matmul);
    medians of tokens/s, of per-repeat ratios and of per-repeat shares of the peak."""
    trainer = pair.trainer

    def ours_global(n: int) -> None:
        trainer.treat = pair.global_treat
        try:
            pair.our_steps(n)
        finally:
            trainer.treat = pair.full_treat

    arms: dict[str, Callable[[int], Any]] = {
        "naive": pair.naive_steps, "ours": pair.our_steps, "global": ours_global}
    for fn in arms.values():
        fn(warmup)
    rates: dict[str, list[float]] = {k: [] for k in arms}  # tokens/s of each block
    peaks = []  # GFLOP/s, measured between the blocks: the load of a shared machine drifts
    for _ in range(repeats):
        for name, fn in arms.items():
            who = "naive" if name == "naive" else "ours"
            before = pair.tokens[who]
            seconds = timed(lambda fn=fn: fn(steps), pair.device)
            rates[name].append((pair.tokens[who] - before) / seconds)
        peaks.append(peak.measure(1))
    ratios = [o / n for n, o in zip(rates["naive"], rates["ours"], strict=True)]
    overhead = [g / f - 1 for f, g in zip(rates["ours"], rates["global"], strict=True)]
    out = {"naive_tokens_per_s": statistics.median(rates["naive"]),
           "ours_tokens_per_s": statistics.median(rates["ours"]),
           "ratio": statistics.median(ratios),
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


def memory_child(who: str, bc: BenchConfig, args: argparse.Namespace) -> dict[str, float]:
    """In this (fresh) process: ``args.memory_steps`` steps of one loop; its peak memory.

    Both loops build the same Trainer (data, model, naive copy), so the difference in peak
    memory is that of the training steps.
    """
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        pair = Pair(bc, args.data_dir, device, args.batch_size, args.bptt, Path(tmp),
                    args.loss_impl)
        if who == "naive":
            pair.naive_steps(args.memory_steps)
        else:
            pair.our_steps(args.memory_steps)
        synchronize(device)
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
    return {"peak_rss_mb": peak_rss_mb(), "cuda_peak_mb": cuda}


def memory_of(who: str, bc: BenchConfig, args: argparse.Namespace) -> dict[str, float]:
    """Run :func:`memory_child` in a fresh interpreter; its result."""
    cmd = [sys.executable, "-m", "rnnbench.bench", "--_memory-child", who, "--configs", bc.name,
           "--data-dir", str(args.data_dir), "--device", args.device,
           "--batch-size", str(args.batch_size), "--bptt", str(args.bptt),
           "--memory-steps", str(args.memory_steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.loss_impl:
        cmd += ["--loss-impl", args.loss_impl]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {who} {bc.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(value: Any, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The markdown table of the results."""
    head = ["config", "naive tok/s", "ours tok/s", "ratio", "naive % peak", "ours % peak",
            "loss rel diff (same w)", "update rel diff", "loss drift (free run)",
            "stats overhead %", "RSS naive/ours MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rss = f"{_fmt(r['naive_peak_rss_mb'], '.0f')} / {_fmt(r['ours_peak_rss_mb'], '.0f')}"
        if not math.isnan(r["naive_cuda_peak_mb"]):
            rss += (f" (GPU {_fmt(r['naive_cuda_peak_mb'], '.0f')} / "
                    f"{_fmt(r['ours_cuda_peak_mb'], '.0f')})")
        cells = [f"{r['cell']}:{r['hidden']}:{r['layers']}",
                 _fmt(r["naive_tokens_per_s"], ",.0f"), _fmt(r["ours_tokens_per_s"], ",.0f"),
                 _fmt(r["ratio"], ".2f") + "x", _fmt(100 * r["naive_peak_share"], ".1f"),
                 _fmt(100 * r["ours_peak_share"], ".1f"), _fmt(r["loss_max_rel_diff"], ".1e"),
                 _fmt(r["update_max_rel_diff"], ".1e"), _fmt(r["loss_drift_rel_diff"], ".1e"),
                 _fmt(r["stats_overhead_pct"], "+.1f"), rss]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write the result rows (``columns``) to ``path`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, lambda tmp: tmp.write_text(buf.getvalue()))


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    p = argparse.ArgumentParser(description="Training tokens/s: Trainer.step vs the naive loop.")
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help=f"comma-separated cell:hidden:layers (default {DEFAULT_CONFIGS})")
    p.add_argument("--grid", action="store_true",
                   help="every configuration of the default grid (4 cells x 3 sizes x 2 depths),"
                        " with fewer steps unless --steps/--repeats are given")
    p.add_argument("--data-dir", type=Path, default=Path("results/data/ptb"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--loss-impl", choices=LOSS_IMPLS, default=None,
                   help="our step's loss_impl (default: RunConfig's)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per loop (5; grid 2)")
    p.add_argument("--steps", type=int, default=None, help="steps per timed block (10; grid 4)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed blocks per loop, alternating (7; grid 3)")
    p.add_argument("--loss-steps", type=int, default=None,
                   help="identical steps whose losses are compared (20; grid 5)")
    p.add_argument("--peak-size", type=int, default=4096, help="matrix size of the peak matmul")
    p.add_argument("--profile", action="store_true",
                   help="also profile where each loop's step time goes (CPU only)")
    p.add_argument("--profile-steps", type=int, default=5, help="profiled steps per loop")
    p.add_argument("--memory", action="store_true",
                   help="also measure peak memory of each loop in a fresh subprocess")
    p.add_argument("--memory-steps", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path("results/bench/bench.csv"))
    p.add_argument("--_memory-child", choices=("naive", "ours"), default=None,
                   help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = grid_configs() if args.grid else parse_configs(args.configs)
    if args._memory_child:
        print(json.dumps(memory_child(args._memory_child, configs[0], args)))
        return 0
    small = args.grid
    warmup = args.warmup if args.warmup is not None else (2 if small else 5)
    steps = args.steps if args.steps is not None else (4 if small else 10)
    repeats = args.repeats if args.repeats is not None else (3 if small else 7)
    loss_steps = args.loss_steps if args.loss_steps is not None else (5 if small else 20)
    device = pick_device(args.device)
    env = machine(device)
    peak = MatmulPeak(device, args.peak_size)
    start_peak = peak.measure(3 if small else 5)
    print(f"# {env['date']}  {env['device']} {env['gpu'] or env['cpu_model']}  torch "
          f"{env['torch']}  {env['threads']} threads  fp32 matmul peak {start_peak:.1f} GFLOP/s"
          + (f"  (tf32: matmul {env['cuda_tf32']}, cudnn {env['cudnn_tf32']})"
             if device.type == "cuda" else ""), flush=True)
    rows, profiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for bc in configs:
            pair = Pair(bc, args.data_dir, device, args.batch_size, args.bptt, Path(tmp),
                        args.loss_impl)
            flops = matmul_flops_per_token(bc.cell, bc.hidden, bc.layers, pair.vocab)
            row: dict[str, Any] = {**env, "cell": bc.cell, "hidden": bc.hidden,
                                   "layers": bc.layers, "vocab": pair.vocab,
                                   "batch_size": args.batch_size, "bptt": args.bptt,
                                   "loss_impl": pair.cfg.loss_impl,
                                   "flops_per_token": flops,
                                   "loss_steps": loss_steps, "warmup": warmup,
                                   "loss_max_rel_diff": math.nan,
                                   "update_max_rel_diff": math.nan,
                                   "loss_drift_rel_diff": math.nan,
                                   "steps": steps, "repeats": repeats}
            if loss_steps > 0:
                row.update(pair.loss_difference(loss_steps))
            row.update(measure(pair, warmup, steps, repeats, flops, peak))
            row["ceiling_tokens_per_s"] = ceiling(flops, row["peak_gflops"])
            if args.profile:
                for prof in profile_pair(pair, args.profile_steps):
                    profiles.append({"config": bc.name, **prof,
                                     "peak_gflops": row["peak_gflops"],
                                     "naive_tokens_per_s": row["naive_tokens_per_s"],
                                     "ceiling_tokens_per_s": row["ceiling_tokens_per_s"]})
            for who in ("naive", "ours"):
                mem = memory_of(who, bc, args) if args.memory else {}
                row[f"{who}_peak_rss_mb"] = mem.get("peak_rss_mb", math.nan)
                row[f"{who}_cuda_peak_mb"] = mem.get("cuda_peak_mb", math.nan)
            rows.append(row)
            del pair
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    write_csv(args.out, rows, COLUMNS)
    print(f"\nwrote {args.out}")
    if profiles:
        out = args.out.with_name(f"{args.out.stem}-profile.csv")
        print("\nWhere a step's time goes (ms per step, share of the profiled step):\n")
        print(profile_table(profiles))
        print("\nCeiling: tokens/s with every matmul FLOP at the measured peak and nothing "
              "else timed:")
        for r in rows:
            print(f"  {r['cell']}:{r['hidden']}:{r['layers']}  "
                  f"{r['ceiling_tokens_per_s']:,.0f} tok/s = "
                  f"{r['ceiling_tokens_per_s'] / r['naive_tokens_per_s']:.2f}x the naive loop")
        write_csv(out, profiles, ["config", "loop", "wall_ms",
                                  *[COLUMN[c] for c in CATEGORIES], "decoder_gemm_gflops",
                                  "peak_gflops", "naive_tokens_per_s", "ceiling_tokens_per_s"])
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
