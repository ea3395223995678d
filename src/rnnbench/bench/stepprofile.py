"""Where a training step's time goes: the naive loop, ours and ours in bf16, op by op, in six
categories.

``python -m rnnbench.bench.bench --profile`` runs :func:`profile_pair` after the timing: a few steps
of each loop under ``torch.profiler`` (CPU activities, input shapes recorded). Every profiled
op's *self* time is given to one category:

``decoder GEMM``
    matrix products with the vocabulary size ``V`` in an input shape: the decoder's forward
    logits, the gradient of its input and of its weight (``3 x 2 N H V`` FLOPs per step);
``softmax + CE``
    every other op under a top-level op that touches an ``N x V`` tensor: log-softmax,
    cross-entropy, their backward, the bias gradient, the fused loss's elementwise work;
``recurrence``
    the recurrent layers' ops (small matrix products and their elementwise gates);
``embedding``
    the embedding lookup and its backward;
``norm + SGD``
    the global gradient norm, the scaling of the gradients and the SGD update;
``casts``
    dtype conversions (``aten::_to_copy`` and what it calls) wherever they happen: with
    ``precision: bf16`` the casts of weights and activations to bf16 and back, none in fp32.

What the ops do not account for (Python, autograd bookkeeping, the profiler itself) is the
``other`` row: profiled wall time minus the ops' summed self time. On CUDA the times are the
host's (launch) times, not the kernels', so profiling is CPU-only. The table of these rows is
:func:`rnnbench.bench.benchtable.profile_table`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from torch.profiler import ProfilerActivity, profile

CATEGORIES = ("decoder GEMM", "softmax + CE", "recurrence", "embedding", "norm + SGD", "casts",
              "other")
CAST_OPS = frozenset({"aten::_to_copy"})
# CSV column of each category: ``decoder_gemm_ms``, ``softmax_ce_ms``, ...
COLUMN = {c: "_".join(c.replace("+", " ").lower().split()) + "_ms" for c in CATEGORIES}
GEMM_OPS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmv",
                      "aten::mv", "aten::matmul", "aten::linear", "aten::_addmm_activation"})
UPDATE_MARKERS = ("_foreach", "norm", "Optimizer.step", "aten::div_", "aten::add_",
                  "aten::item", "aten::_local_scalar_dense", "aten::where", "aten::stack",
                  "aten::reciprocal", "aten::sqrt", "aten::lt", "AccumulateGrad", "aten::zero_")


def _has_vocab(event: Any, vocab: int) -> bool:
    """Whether any input of ``event`` has a dimension equal to ``vocab``."""
    return any(vocab in shape for shape in (event.input_shapes or []) if isinstance(shape, list))


def _subtree(event: Any) -> Iterable[Any]:
    yield event
    for child in event.cpu_children:
        yield from _subtree(child)


def _top_category(event: Any, vocab: int) -> str:
    """The category of a top-level event (no profiled parent) and everything under it."""
    name = event.name
    if "mbedding" in name:
        return "embedding"
    if any(m in name for m in UPDATE_MARKERS):
        return "norm + SGD"
    if any(_has_vocab(e, vocab) for e in _subtree(event)) or "CrossEntropy" in name:
        return "softmax + CE"
    return "recurrence"


def categorize(events: Iterable[Any], vocab: int) -> dict[str, float]:
    """Summed self CPU time (microseconds) of ``events`` per category (``other`` excluded).

    A matrix product is ``decoder GEMM`` when it has ``vocab`` in an input shape, else it
    belongs to its top-level op's category; its children (allocation, packing) go with it.
    """
    totals = dict.fromkeys(CATEGORIES[:-1], 0.0)

    def walk(event: Any, category: str) -> None:
        if event.name in CAST_OPS:
            category = "casts"
        elif event.name in GEMM_OPS and category != "decoder GEMM" and _has_vocab(event, vocab):
            category = "decoder GEMM"
        totals[category] += event.self_cpu_time_total
        for child in event.cpu_children:
            walk(child, category)

    for event in events:
        if event.cpu_parent is None:
            walk(event, _top_category(event, vocab))
    return totals


def profile_steps(run_steps: Callable[[int], Any], steps: int, vocab: int) -> dict[str, float]:
    """Profile ``run_steps(steps)``; milliseconds per step of each category and of the wall.

    ``other`` is the profiled wall time not covered by any op's self time.
    """
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        run_steps(steps)
        wall_us = (time.perf_counter() - t0) * 1e6
    totals = categorize(prof.events(), vocab)
    totals["other"] = max(wall_us - sum(totals.values()), 0.0)
    out = {c: totals[c] / steps / 1e3 for c in CATEGORIES}
    out["wall"] = wall_us / steps / 1e3
    return out


def profile_pair(pair: Any, steps: int) -> list[dict[str, Any]]:
    """Profile ``steps`` naive steps, ``steps`` of ours and of ours in bf16 (after one of each
    as warm-up); one row per loop: milliseconds per step per category, and the decoder GEMMs'
    GFLOP/s."""
    if pair.device.type != "cpu":
        raise ValueError(f"--profile measures host time and needs --device cpu, not "
                         f"{pair.device.type}: on a GPU the ops' host times are launch times")
    hidden = pair.cfg.hidden
    tokens = pair.cfg.batch_size * pair.cfg.bptt
    decoder_flops = 3 * 2 * tokens * hidden * pair.vocab  # forward logits, grad h, grad W
    rows = []
    for who, precision, fn in (("naive", "fp32", pair.naive_steps),
                               ("ours", "fp32", pair.our_steps),
                               ("ours bf16", "bf16", pair.bf16_steps)):
        fn(1)
        ms = profile_steps(fn, steps, pair.vocab)
        gemm_s = ms["decoder GEMM"] / 1e3
        rows.append({"loop": who, "precision": precision,
                     **{COLUMN[c]: ms[c] for c in CATEGORIES},
                     "wall_ms": ms["wall"],
                     "decoder_gemm_gflops": decoder_flops / gemm_s / 1e9 if gemm_s else
                     float("nan")})
    pair.reset()
    return rows

