"""Training throughput: our ``Trainer.step`` (fp32 and bf16) against the seed's naive loop,
side by side.

For each configuration (cell, hidden, layers) the benchmark builds a real
:class:`rnnbench.training.train.Trainer` ("ours") and a model with the same weights trained by the
course lab's loop (:mod:`rnnbench.bench.naive`: pytorch/examples word_language_model's ``train()``
with full logits, mean ``F.cross_entropy``, a Python loop over parameter norms with host syncs,
``p.grad /= norm``, ``p.data.add_``). It then

1. runs ``--loss-steps`` steps of both from the same initial weights on the same minibatches
   and records the largest relative difference of the step losses with the naive model
   re-synchronised to our weights before each step (same data and weights), of the updates,
   and of the losses of two free runs (see :meth:`rnnbench.bench.harness.Pair.loss_difference`);
   and, the same way, what ``precision: bf16`` changes in our step's loss
   (:meth:`rnnbench.bench.harness.Pair.precision_difference`);
2. after ``--warmup`` steps, times blocks of ``--steps`` steps alternately (naive, ours, ours
   in bf16, ours with global-norm-only gradient treatment, one fp32 ``--peak-size``-square
   ``torch.mm``;
   repeated ``--repeats`` times; device synchronised at block edges only) and reports median
   tokens/s, the median of the per-repeat ratios ours/naive, the share of the matmul peak
   measured in the same repeat (analytic matmul FLOPs per token x tokens/s / peak) and the
   overhead of the per-group gradient statistics;
3. with ``--profile``, profiles a few steps of each loop with ``torch.profiler`` and splits the
   step's time into decoder GEMMs, softmax + cross-entropy, recurrence, embedding, gradient
   norm + SGD and the rest (:mod:`rnnbench.bench.stepprofile`), with the decoder GEMMs' achieved
   GFLOP/s, and reports the *ceiling*: the tokens/s of a step whose every matmul FLOP ran at
   the measured peak and nothing else took time;
4. with ``--memory``, runs each loop for ``--memory-steps`` steps in a fresh subprocess and
   records its peak resident memory (and, on CUDA, peak allocated GPU memory).

This module is the command line; the pieces are :mod:`rnnbench.bench.harness` (the pair and
its measurements), :mod:`rnnbench.bench.naive` (the reference loop), :mod:`rnnbench.bench.peak`
(FLOPs, the matmul peak, the ceiling), :mod:`rnnbench.bench.stepprofile` (where the time goes)
and :mod:`rnnbench.bench.benchtable` (the table printed to stdout and the CSV written with the
machine's
description). Usage::

    python -m rnnbench.bench.bench --threads 2                      # the two issue configurations
    python -m rnnbench.bench.bench --threads 2 --profile          # ... and where the time goes
    python -m rnnbench.bench.bench --grid --memory --out results/bench/grid.csv
    python -m rnnbench.bench.bench --configs rnn_tanh:150:1,gru:650:2 --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from rnnbench.bench.benchtable import (
    COLUMNS,
    PROFILE_COLUMNS,
    ceiling_lines,
    profile_table,
    table,
    write_csv,
)
from rnnbench.bench.harness import (
    BenchConfig,
    Pair,
    grid_configs,
    measure,
    parse_configs,
    peak_memory,
)
from rnnbench.bench.peak import MatmulPeak, ceiling, matmul_flops_per_token
from rnnbench.bench.stepprofile import profile_pair
from rnnbench.config import LOSS_IMPLS
from rnnbench.training.gpus import pick_device
from rnnbench.training.provenance import cpu_flags, cpu_model

DEFAULT_CONFIGS = "rnn_tanh:150:1,lstm:300:1"


def machine(device: torch.device) -> dict[str, Any]:
    """The columns describing where the benchmark ran."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "cpu_model": cpu_model(),
        # the vector ISA torch's CPU kernels dispatch to (DEFAULT, AVX2, AVX512, AVX512_BF16 or
        # AMX on newer builds): bf16 products are fast with AVX512_BF16 or AMX-BF16
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_tf32": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else "",
        "cudnn_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else "",
    }


def memory_child(who: str, bc: BenchConfig, args: argparse.Namespace) -> dict[str, float]:
    """In this (fresh) process: ``args.memory_steps`` steps of one loop; its peak memory."""
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        pair = Pair(bc, args.data_dir, device, args.batch_size, args.bptt, Path(tmp),
                    args.loss_impl)
        return peak_memory(pair, who, args.memory_steps)


def memory_of(who: str, bc: BenchConfig, args: argparse.Namespace) -> dict[str, float]:
    """Run :func:`memory_child` in a fresh interpreter; its result."""
    cmd = [sys.executable, "-m", "rnnbench.bench.bench", "--_memory-child", who,
           "--configs", bc.name,
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
    p.add_argument("--_memory-child", choices=("naive", "ours", "bf16"), default=None,
                   help=argparse.SUPPRESS)
    return p


def step_counts(args: argparse.Namespace) -> dict[str, int]:
    """Warm-up, block, repeat and loss-comparison step counts: the flags, else the defaults."""
    default = {"warmup": 5, "steps": 10, "repeats": 7, "loss_steps": 20}
    if args.grid:  # 24 configurations: fewer steps each
        default = {"warmup": 2, "steps": 4, "repeats": 3, "loss_steps": 5}
    return {k: d if getattr(args, k) is None else getattr(args, k) for k, d in default.items()}


def bench_config(bc: BenchConfig, args: argparse.Namespace, counts: dict[str, int],
                 env: dict[str, Any], device: torch.device, peak: MatmulPeak,
                 workdir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every measurement of one configuration: its CSV row and its profile rows."""
    pair = Pair(bc, args.data_dir, device, args.batch_size, args.bptt, workdir, args.loss_impl)
    flops = matmul_flops_per_token(bc.cell, bc.hidden, bc.layers, pair.vocab)
    row: dict[str, Any] = {**env, "cell": bc.cell, "hidden": bc.hidden, "layers": bc.layers,
                           "vocab": pair.vocab, "batch_size": args.batch_size, "bptt": args.bptt,
                           "loss_impl": pair.cfg.loss_impl, "flops_per_token": flops,
                           "loss_steps": counts["loss_steps"], "warmup": counts["warmup"],
                           "loss_max_rel_diff": math.nan, "update_max_rel_diff": math.nan,
                           "loss_drift_rel_diff": math.nan, "bf16_loss_max_rel_diff": math.nan,
                           "bf16_loss_last_rel_diff": math.nan,
                           "steps": counts["steps"], "repeats": counts["repeats"]}
    if counts["loss_steps"] > 0:
        row.update(pair.loss_difference(counts["loss_steps"]))
        row.update(pair.precision_difference(counts["loss_steps"]))
    row.update(measure(pair, counts["warmup"], counts["steps"], counts["repeats"], flops, peak))
    row["ceiling_tokens_per_s"] = ceiling(flops, row["peak_gflops"])
    row["bf16_peak_gflops"] = env["bf16_peak_gflops"]
    row["bf16_ceiling_tokens_per_s"] = ceiling(flops, env["bf16_peak_gflops"])
    profiles = []
    if args.profile:
        for prof in profile_pair(pair, args.profile_steps):
            peak = row["bf16_peak_gflops" if prof["precision"] == "bf16" else "peak_gflops"]
            profiles.append({"config": bc.name, **prof, "peak_gflops": peak,  # its precision's
                             "naive_tokens_per_s": row["naive_tokens_per_s"],
                             "ceiling_tokens_per_s": row["ceiling_tokens_per_s"]})
    for who in ("naive", "ours", "bf16"):  # the pair is still alive here; the child is fresh
        mem = memory_of(who, bc, args) if args.memory else {}
        row[f"{who}_peak_rss_mb"] = mem.get("peak_rss_mb", math.nan)
        row[f"{who}_cuda_peak_mb"] = mem.get("cuda_peak_mb", math.nan)
    return row, profiles


def report_profiles(rows: list[dict[str, Any]], profiles: list[dict[str, Any]],
                    out: Path) -> None:
    """Print the profile table and the ceilings; write the profile CSV beside ``out``."""
    path = out.with_name(f"{out.stem}-profile.csv")
    print("\nWhere a step's time goes (ms per step, share of the profiled step):\n")
    print(profile_table(profiles))
    print("\nCeiling: tokens/s with every matmul FLOP at the measured peak and nothing "
          "else timed:")
    print(ceiling_lines(rows))
    write_csv(path, profiles, PROFILE_COLUMNS)
    print(f"\nwrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = grid_configs() if args.grid else parse_configs(args.configs)
    if args._memory_child:
        print(json.dumps(memory_child(args._memory_child, configs[0], args)))
        return 0
    counts = step_counts(args)
    device = pick_device(args.device)
    env = machine(device)
    peak = MatmulPeak(device, args.peak_size)
    start_peak = peak.measure(3 if args.grid else 5)
    peak16 = MatmulPeak(device, args.peak_size, torch.bfloat16)
    env["bf16_peak_gflops"] = peak16.measure(3 if args.grid else 5)
    del peak16
    print(f"# {env['date']}  {env['device']} {env['gpu'] or env['cpu_model']}  "
          f"CPU capability {env['cpu_capability']} ({env['cpu_flags'] or 'no AMX/BF16 flags'})"
          f"  torch {env['torch']}  {env['threads']} threads  matmul peak fp32 "
          f"{start_peak:.1f}, bf16 {env['bf16_peak_gflops']:.1f} GFLOP/s"
          + (f"  (tf32: matmul {env['cuda_tf32']}, cudnn {env['cudnn_tf32']})"
             if device.type == "cuda" else ""), flush=True)
    rows, profiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for bc in configs:
            row, prof = bench_config(bc, args, counts, env, device, peak, Path(tmp))
            rows.append(row)
            profiles += prof
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    write_csv(args.out, rows, COLUMNS)
    print(f"\nwrote {args.out}")
    if profiles:
        report_profiles(rows, profiles, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
