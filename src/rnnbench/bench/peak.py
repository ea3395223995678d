"""What the hardware could do: a step's matmul FLOPs, the fp32 (and bf16) matmul peak, the
ceiling.

The benchmark reports each loop's tokens/s as a share of the peak (analytic matmul FLOPs per
token x tokens/s / peak) and the *ceiling*: the tokens/s of a step whose every matmul FLOP ran
at the measured peak and nothing else took time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from rnnbench.model.params import matmul_flops_per_token  # noqa: F401  (re-exported)


def ceiling(flops_per_token: float, peak_gflops: float) -> float:
    """Tokens/s if every matmul FLOP ran at the measured peak and nothing else took time."""
    return peak_gflops * 1e9 / flops_per_token


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
    """The matmul peak of a device in ``dtype`` (fp32 unless told): ``torch.mm`` of two
    (size, size) matrices."""

    def __init__(self, device: torch.device, size: int = 4096,
                 dtype: torch.dtype = torch.float32) -> None:
        gen = torch.Generator().manual_seed(0)
        self.device, self.size = device, size
        self.a = torch.randn(size, size, generator=gen).to(device, dtype)  # (size, size)
        self.b = torch.randn(size, size, generator=gen).to(device, dtype)  # (size, size)
        self.out = torch.empty(size, size, device=device, dtype=dtype)  # (size, size)
        self.inner = 1 if device.type == "cpu" else 10  # products per timing
        self.measure(1)  # warm-up

    def _run(self) -> None:
        for _ in range(self.inner):
            torch.mm(self.a, self.b, out=self.out)

    def measure(self, repeats: int) -> float:
        """Median GFLOP/s over ``repeats`` timings."""
        times = [timed(self._run, self.device) for _ in range(repeats)]
        return 2.0 * self.size**3 * self.inner / statistics.median(times) / 1e9
