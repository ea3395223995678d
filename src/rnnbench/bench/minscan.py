"""minGRU and minLSTM on the CPU: tokens/s of the log-space scan against the step-by-step loop.

Both forms of :mod:`rnnbench.model.mincells` compute the same states (tests/test_mincells.py);
this times one training step of the recurrent layer alone (its input products, the
recurrence, the backward pass to the input and the weights) at ``bptt`` steps, the forms in
alternating blocks in one process on the same input and weights, and prints medians of
tokens/s and the median of the per-repeat ratios scan / loop, with the CPU from ``lscpu``.
The result decides ``mincells.FORMS`` (docs/performance.md). Usage::

    python -m rnnbench.bench.minscan --threads 2 --hidden 256 --batch 20 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from rnnbench.model.mincells import GATES, MinRNN

FORMS = ("scan", "sequential")


def lscpu_model() -> str:
    """The CPU's ``Model name`` as ``lscpu`` prints it (``unknown`` without lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def step_seconds(rnn: MinRNN, x: torch.Tensor, h0: torch.Tensor, form: str,
                 steps: int) -> float:
    """Seconds per forward + backward of ``rnn`` over ``x`` (bptt, batch, E) by ``form``."""
    start = time.perf_counter()
    for _ in range(steps):
        out, h = rnn(x, h0, form=form)  # (bptt, batch, hidden), (layers, batch, hidden)
        (out.sum() + h.sum()).backward()
    return (time.perf_counter() - start) / steps


def compare(cell: str, hidden: int, batch: int, bptt: int, layers: int = 1, steps: int = 5,
            repeats: int = 7, seed: int = 0) -> dict:
    """Median tokens/s of each form and the median ratio scan / loop of one configuration."""
    torch.manual_seed(seed)
    rnn = MinRNN(cell, hidden, hidden, layers)
    x = torch.randn(bptt, batch, hidden, requires_grad=True)  # (bptt, batch, E = H)
    h0 = torch.rand(layers, batch, hidden)  # a carried (positive) state
    for form in FORMS:  # warm-up: allocator, first-call dispatch
        step_seconds(rnn, x, h0, form, 1)
    seconds: dict[str, list[float]] = {form: [] for form in FORMS}
    for _ in range(repeats):
        for form in FORMS:
            seconds[form].append(step_seconds(rnn, x, h0, form, steps))
    tokens = bptt * batch
    ratios = [s / q for s, q in zip(seconds["sequential"], seconds["scan"], strict=True)]
    return {"cell": cell, "hidden": hidden, "layers": layers, "batch": batch, "bptt": bptt,
            "scan_tok_s": tokens / statistics.median(seconds["scan"]),
            "loop_tok_s": tokens / statistics.median(seconds["sequential"]),
            "scan_over_loop": statistics.median(ratios)}


def table(rows: list[dict]) -> str:
    """A Markdown table of :func:`compare` rows."""
    lines = ["| cell | hidden | layers | batch | bptt | scan tok/s | loop tok/s | scan / loop |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['layers']} | {r['batch']} | "
                     f"{r['bptt']} | {r['scan_tok_s']:,.0f} | {r['loop_tok_s']:,.0f} | "
                     f"{r['scan_over_loop']:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Time both forms of both cells and print the table with the CPU and torch version."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [compare(cell, args.hidden, args.batch, args.bptt, args.layers, args.steps,
                    args.repeats) for cell in GATES]
    print(f"CPU: {lscpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
