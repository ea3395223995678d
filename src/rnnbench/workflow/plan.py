"""A plan before a long job: how many runs, on which device, about how long (no torch).

Snakemake prints it once, in its main process, at the start of a run and in ``snakemake -n``:
the README's main command starts 72 runs (about 37 hours on 2 CPU cores), and a user should
hear that before it starts, not after.

The time estimate scales measured throughput (bf16 and plateau runs priced from the committed
runs too: rnnbench.workflow.pricing). Each committed reference run
(``results/reference/**/train.json`` and its ``history.csv``) gives tokens/s on a known CPU;
times its matmul FLOPs per token that is an effective FLOP/s rate. The median rate over the
measured configurations, divided by a planned run's FLOPs per token, gives that run's
tokens/s. A step of a large model is mostly matmuls (docs/performance.md), so FLOPs are what changes
between sizes and cells. The rates of the measured configurations (the plan names them:
:func:`basis`, from rnnbench.workflow.calibration) differ from each other, and that spread
is how far the estimate can be trusted.
"""

from __future__ import annotations

import json
import os
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnbench.config import RunConfig
from rnnbench.model.params import param_counts
from rnnbench.training.gpus import nvidia_smi_devices, parse_visible
from rnnbench.training.provenance import cpu_model
from rnnbench.workflow.calibration import Measured, flops_per_token, read_reference
from rnnbench.workflow.pricing import Pricing, read_pricing
from rnnbench.workflow.pricing import notes as pricing_notes

# PTB's train split (tokens with <eos>) and vocabulary, until stats.json exists.
PTB_TRAIN_TOKENS = 929_589
PTB_VOCAB = 10_000
# Plans longer than this name the quick config as the alternative.
LONG_S = 15 * 60
QUICK = "snakemake --cores 2 --configfile config/quick.yaml"
# Copies of the parameters a training process holds: weights, gradients, and the best,
# initial and final weights kept for model.pt (rnnbench.training.runrecord); fp32, 4 bytes each.
PARAM_COPIES = 5
GATES = {"lstm": 4, "gru": 3, "min_gru": 2, "min_lstm": 3}
NO_PRICING = Pricing()  # every run at fp32's rate and its maximum of epochs


def tokens_per_epoch(cfg: RunConfig, train_tokens: int) -> int:
    """Training targets of one epoch: (rows - 1) x batch_size, capped by ``max_batches``."""
    # targets are the rows one down (rnnbench.data.batching)
    rows = train_tokens // cfg.batch_size - 1
    if cfg.max_batches is not None:
        rows = min(rows, cfg.max_batches * cfg.bptt)
    return max(rows, 0) * cfg.batch_size


def visible_gpus(env: Mapping[str, str] | None = None,
                 proc: Path = Path("/proc/driver/nvidia/gpus")) -> int:
    """CUDA GPUs this process could use, found without torch (driver's /proc, nvidia-smi)."""
    env = os.environ if env is None else env
    found = len(list(proc.iterdir())) if proc.is_dir() else len(nvidia_smi_devices())
    if found and env.get("CUDA_VISIBLE_DEVICES") is not None:
        return min(found, len(parse_visible(env["CUDA_VISIBLE_DEVICES"])))
    return found


def resolve_device(device: str, gpus: int) -> tuple[str, str]:
    """The device the runs will use and why (``auto``: CUDA when a GPU is visible)."""
    if device == "cpu":
        return "cpu", "device cpu"
    # "here": on a cluster, the jobs' nodes decide (this is the machine Snakemake runs on).
    seen = (f"{gpus} CUDA GPU{'s' if gpus != 1 else ''} here" if gpus
            else "no CUDA GPU here")
    if device == "cuda":
        return "cuda", f"device cuda: {seen}"
    return ("cuda" if gpus else "cpu"), f"device auto: {seen}"


def corpus_size(stats_path: Path, max_vocab: int | None) -> tuple[int, int, bool]:
    """Train tokens and vocabulary size from stats.json, else PTB's (third item: measured)."""
    try:
        stats = json.loads(stats_path.read_text())
        return int(stats["splits"]["train"]["tokens"]), int(stats["vocab_size"]), True
    except (OSError, ValueError, KeyError, TypeError):
        return PTB_TRAIN_TOKENS, min(max_vocab or PTB_VOCAB, PTB_VOCAB), False


def duration(seconds: float) -> str:
    """Rounded human time: ``under a minute``, ``12 minutes``, ``3.5 hours``, ``4.2 days``."""
    if seconds < 60:
        return "under a minute"
    if seconds < 90:
        return "1 minute"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def about(seconds: float) -> str:
    """``about 3.5 hours``, or ``under a minute``."""
    text = duration(seconds)
    return text if text.startswith("under") else f"about {text}"


def basis(measured: Sequence[Measured], cpu: str) -> tuple[list[Measured], str]:
    """The measurements to trust (those on this CPU model when there are any) and a note."""
    same = [m for m in measured if m.cpu == cpu]
    used = same or list(measured)
    names = ", ".join(f"{m.name} x{m.runs}" for m in sorted(used, key=lambda m: m.name))
    cpus = ", ".join(sorted({m.cpu for m in used}))
    where = "like this CPU" if same else f"not this CPU ({cpu})"
    return used, f"{names}; {cpus}, {where}"


@dataclass(frozen=True)
class Estimate:
    """Training time of the runs left: CPU-seconds summed, and wall time on ``workers``."""

    core_seconds: float
    wall_seconds: float
    workers: int
    flops_per_s: float


def seconds_each(configs: Sequence[RunConfig], flops_per_s: float, train_tokens: int,
                 vocab: int, pricing: Pricing = NO_PRICING) -> list[float]:
    """Training seconds of each config at ``flops_per_s`` (one 1-thread job), its epochs and
    precision priced by ``pricing`` (rnnbench.workflow.pricing)."""
    return [pricing.planned_epochs(c) * (
        tokens_per_epoch(c, train_tokens) * flops_per_token(c, vocab)
        / (flops_per_s * pricing.speed(c))
        + tokens_per_epoch(c, train_tokens) / (c.batch_size * c.bptt) * pricing.step_seconds
        + pricing.epoch_cost(c)) for c in configs]


def estimate(configs: Sequence[RunConfig], measured: Sequence[Measured], train_tokens: int,
             vocab: int, cores: int, pricing: Pricing = NO_PRICING) -> Estimate:
    """Time of ``configs`` at the median measured FLOP/s, one 1-thread job per core."""
    rate = statistics.median(m.flops_per_s for m in measured)
    each = seconds_each(configs, rate, train_tokens, vocab, pricing)
    workers = max(1, min(cores, len(each)))
    # Jobs cannot be split: the longest run bounds the wall time from below.
    wall = max(sum(each) / workers, max(each, default=0.0))
    return Estimate(sum(each), wall, workers, rate)


def format_plan(total: int, finished: int, device: tuple[str, str], est: Estimate | None,
                source: str, corpus_note: str = "", jobs: bool = False) -> str:
    """The plan as one short block of text (lines of at most 100 characters); ``jobs``:
    parallelism is a number of jobs (``--jobs``, a cluster), not of local cores."""
    on = "the GPU" if device[0] == "cuda" else "the CPU"
    text = [f"rnnbench plan: {total} training runs ({finished} done, {total - finished} "
            f"to train) on {on} ({device[1]})."]
    if est is None:
        text.append("Training time: no estimate (no reference run with a measured tokens/s).")
    else:
        cores = (f"{est.workers} core{'s' if est.workers != 1 else ''}" if not jobs
                 else f"{est.workers} job{'s' if est.workers != 1 else ''} at a time")
        on_cpu = f"{about(est.wall_seconds)} {'on' if not jobs else 'with'} {cores}"
        text.append(f"Training time on a GPU: not measured yet (on this CPU: {on_cpu})."
                    if device[0] == "cuda" else
                    f"Training time: {on_cpu} ({duration(est.core_seconds)} of CPU time, "
                    "one 1-thread job per core).")
        text.append(f"Estimated from the tokens/s of the reference runs ({source}; "
                    f"{est.flops_per_s / 1e9:.0f} GFLOP/s median), scaled by each run's matmul "
                    f"FLOPs per token, tokens and epochs{corpus_note}.")
    if est is None or est.wall_seconds > LONG_S:
        text.append(f"A few minutes instead: {QUICK}")
    return "\n".join(textwrap.fill(t, 100, subsequent_indent="  ", initial_indent="  " * (i > 0))
                     for i, t in enumerate(text))


def run_memory_bytes(cfg: RunConfig, vocab: int) -> int:
    """Rough peak memory of training one run: PARAM_COPIES fp32 copies of its parameters
    and one minibatch's activations kept for backward (every layer's gates and states, the
    logits and their gradient). Good to a factor of about two; it is there to catch sizes
    that cannot fit at all (hidden 100000 is hundreds of GB), not to budget."""
    params = param_counts(cfg.cell, cfg.hidden, cfg.layers, vocab, cfg.embedding_size)["params"]
    tokens = cfg.bptt * cfg.batch_size
    per_token = cfg.hidden * cfg.layers * (GATES.get(cfg.cell, 1) + 1) + 2 * vocab
    return 4 * (PARAM_COPIES * params + tokens * per_token)


def machine_memory_bytes(cgroup: Path = Path("/sys/fs/cgroup/memory.max")) -> int | None:
    """This machine's memory, or its cgroup's limit where that is lower; None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    try:
        limit = int(cgroup.read_text().strip())  # "max" (no limit) is no number
    except (OSError, ValueError):
        limit = None
    known = [v for v in (total, limit) if v and v > 0]
    return min(known) if known else None


def over_memory(runs: Iterable, vocab: int, memory: int | None) -> tuple[str, int] | None:
    """(run id, bytes) of the largest run of ``runs`` left to train whose estimate exceeds
    ``memory``; None when all fit (or ``memory`` is unknown)."""
    if not memory:
        return None
    todo = [r for r in runs if not (Path(r.path) / "train.json").exists()]
    sized = [(Path(r.path).name, run_memory_bytes(r.config, vocab)) for r in todo]
    largest = max(sized, key=lambda item: item[1], default=None)
    return largest if largest and largest[1] > memory else None


def gb(size: float) -> str:
    """Bytes as ``12.3 GB`` (10^9)."""
    return f"{size / 1e9:.1f} GB"


def machine_refusal(runs: Iterable, data_dir: Path, device: str, memory: int | None,
                    max_vocab: int | None = None, allow_over_memory: bool = False,
                    gpus: int | None = None) -> str | None:
    """One paragraph when this machine cannot run the config's jobs (``device: cuda`` and
    no visible GPU; a run that needs more than ``memory``), or None. Checked before any job:
    a job that fails there deletes the outputs it was to replace (a finished run's
    eval.json) and tells its reason only in its log."""
    if device == "cuda" and (visible_gpus() if gpus is None else gpus) == 0:
        return ("device: cuda, but this machine has no CUDA GPU (none found by the NVIDIA "
                "driver, or CUDA_VISIBLE_DEVICES hides them), so every training and evaluation "
                "job would fail. Nothing was run or deleted. Use --config device=auto (CUDA "
                "where there is a GPU, else the CPU) or device=cpu, or run on a machine with a "
                "GPU.")
    vocab = corpus_size(data_dir / "stats.json", max_vocab)[1]
    big = over_memory(list(runs), vocab, memory)
    if big is None or allow_over_memory:
        return None
    return (f"run {big[0]} needs about {gb(big[1])} of memory to train ({PARAM_COPIES} fp32 "
            f"copies of its parameters and a minibatch's activations), more than the "
            f"{gb(memory or 0)} this machine has, so it would fail or swap when it starts. "
            "Nothing was run. Lower its hidden size, layers or batch_size in the config, run "
            "it where there is more memory, or set `allow_over_memory: true` (e.g. --config "
            "allow_over_memory=True) to start it anyway.")


@dataclass(frozen=True)
class Plan:
    """The plan's text, and what the grid's progress line (rnnbench.workflow.progress) scales."""

    text: str  # empty when no run is left
    seconds: dict[str, float]  # estimated training seconds of each run left, by its folder
    workers: int  # runs trained at a time


def may_stop_early(cfg: RunConfig) -> bool:
    """Whether a run may end before its ``epochs`` (the plateau schedule; a run of one epoch,
    such as a tuning trial, cannot), so that its planned time is an upper bound."""
    return cfg.schedule == "plateau" and cfg.epochs > 1


def make_plan(runs: Iterable, data_dir: Path, reference_root: Path, device: str,
              cores: int | None, max_vocab: int | None = None, jobs: int | None = None,
              size: tuple[int, int, str] | None = None, memory: int | None = None,
              retrain: frozenset[str] | set[str] = frozenset()) -> Plan:
    """The plan of ``runs`` (grid.Run: ``.config``, ``.path``) on ``cores`` local cores, or
    ``jobs`` at a time (``--jobs`` of a cluster executor). ``size``: train tokens, vocabulary
    and a note on how they are known (rnnbench.data.sources.plan_size); without it, stats.json's,
    else PTB's. With ``memory`` (this machine's bytes), a run estimated to need more is
    named. ``retrain``: folders of finished runs that train again (another configuration)."""
    runs = list(runs)
    todo = [r for r in runs
            if r.path in retrain or not (Path(r.path) / "train.json").exists()]
    # More local jobs than cores share them: no faster than one job per core.
    workers = jobs or min(cores or os.cpu_count() or 1, os.cpu_count() or 1)
    if not todo:
        return Plan("", {}, workers)
    train_tokens, vocab, measured_size = corpus_size(data_dir / "stats.json", max_vocab)
    note = "" if measured_size else f" (PTB's {train_tokens:,} train tokens: not tokenized yet)"
    if size is not None:
        train_tokens, vocab, note = size
    refs = read_reference(reference_root)
    est, source, seconds, pricing = None, "", {}, NO_PRICING
    if refs:
        used, source = basis(refs, cpu_model())
        rate = statistics.median(m.flops_per_s for m in used)
        pricing = read_pricing(reference_root, cpu_model(), rate)
        configs = [r.config for r in todo]
        est = estimate(configs, used, train_tokens, vocab, workers, pricing)
        each = seconds_each(configs, est.flops_per_s, train_tokens, vocab, pricing)
        seconds = {str(r.path): s for r, s in zip(todo, each, strict=True)}
    gpus = visible_gpus() if device != "cpu" else 0
    text = format_plan(len(runs), len(runs) - len(todo), resolve_device(device, gpus), est,
                       source, note, jobs=bool(jobs))
    if est is not None:
        bf16 = sum(r.config.precision == "bf16" for r in todo)
        plateau = sum(may_stop_early(r.config) for r in todo)
        text += "".join("\n" + textwrap.fill(line, 100, initial_indent="  ",
                                             subsequent_indent="  ")
                        for line in pricing_notes(pricing, bf16, plateau))
    if big := over_memory(runs, vocab, memory):
        text += (f"\n  Memory: run {big[0]} needs about {gb(big[1])} to train; this machine has "
                 f"{gb(memory or 0)}.")
    return Plan(text, seconds, workers)


def plan_text(runs: Iterable, data_dir: Path, reference_root: Path, device: str,
              cores: int | None, max_vocab: int | None = None, jobs: int | None = None,
              size: tuple[int, int, str] | None = None, memory: int | None = None) -> str:
    """The plan of ``runs`` as text; empty when none is left (see ``make_plan``)."""
    return make_plan(runs, data_dir, reference_root, device, cores, max_vocab, jobs, size,
                     memory).text
