"""One GPU (or one share of a GPU) per training process on one machine, held by a lock file.

    snakemake --cores 8 --resources gpu=4                        # 4 GPUs, one run on each
    RNNBENCH_GPU_SLOTS=2 snakemake --cores 8 --resources gpu=8   # 4 GPUs, two runs on each

Snakemake's ``gpu`` resource only counts jobs; it never says *which* GPU a job may use, so
every job would start on ``cuda:0``. Before CUDA is initialised, :func:`claim_gpu` takes an
exclusive ``fcntl.flock`` on one free ``{lock_dir}/gpu{d}-slot{s}.lock`` and sets
``CUDA_VISIBLE_DEVICES=d`` for the process. The kernel drops the lock when the process ends,
however it ends (``kill -9`` included), so a crashed run never strands a GPU. Slots are
filled slot-major (slot 0 of every GPU before slot 1 of any), which spreads runs out.

When every slot is held, the process waits (a log line a minute says who holds them) until
one frees up or ``wait_s`` passes, then fails with :class:`NoFreeGpu`. Waiting is the right
default: with ``--resources gpu`` at most GPUs x slots, nothing waits; without it, the pool
is the queue. A batch-20 RNN leaves most of a modern GPU idle, hence ``slots_per_device``.

Nothing happens for CPU runs, inside a SLURM job (SLURM has already picked the GPU and set
``CUDA_VISIBLE_DEVICES``), or where no GPU is visible. The GPUs are those of
``CUDA_VISIBLE_DEVICES`` when it is set (indices or UUIDs; MIG instances by UUID), else the
ones ``nvidia-smi -L`` lists. This module never imports torch at import time: asking torch
would risk initialising CUDA, after which ``CUDA_VISIBLE_DEVICES`` is ignored; only
:func:`pick_device`, called after the claim, does.

Settings (flags of ``rnnbench.training.train``, defaults from the environment):
``RNNBENCH_GPU_SLOTS`` runs per GPU (1); ``RNNBENCH_GPU_LOCK_DIR`` the lock folder
(``$TMPDIR/rnnbench-gpu-slots-<uid>``: one per machine and user, so two pipelines in two
checkouts on one machine share the pool); ``RNNBENCH_GPU_WAIT_S`` the longest wait (forever).
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only inside functions: importing it here could initialise CUDA early
    import torch

log = logging.getLogger(__name__)


class NoFreeGpu(RuntimeError):
    """Every GPU slot stayed held for longer than the allowed wait."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A held (device, slot): the lock stays until :meth:`release` or the process exits."""

    device: str  # as written in CUDA_VISIBLE_DEVICES: an index or a UUID
    slot: int
    path: Path
    fd: int

    def release(self) -> None:
        """Close the lock file, freeing the slot."""
        os.close(self.fd)


def default_slots() -> int:
    """Runs that may share one GPU: ``$RNNBENCH_GPU_SLOTS``, else 1."""
    return int(os.environ.get("RNNBENCH_GPU_SLOTS") or 1)


def default_lock_dir() -> Path:
    """``$RNNBENCH_GPU_LOCK_DIR``, else one folder per machine and user under the temp dir."""
    folder = os.environ.get("RNNBENCH_GPU_LOCK_DIR")
    return Path(folder or Path(tempfile.gettempdir()) / f"rnnbench-gpu-slots-{os.getuid()}")


def default_wait_s() -> float | None:
    """Longest wait for a free slot: ``$RNNBENCH_GPU_WAIT_S``, else None (forever)."""
    value = os.environ.get("RNNBENCH_GPU_WAIT_S")
    return float(value) if value else None


def parse_visible(value: str) -> list[str]:
    """Devices of a ``CUDA_VISIBLE_DEVICES`` value; like CUDA, stop at a negative index."""
    devices = []
    for item in (v.strip() for v in value.split(",")):
        if not item or item.startswith("-"):
            break
        devices.append(item)
    return devices


def nvidia_smi_devices() -> list[str]:
    """Indices of the GPUs ``nvidia-smi -L`` lists (none without a driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", out, re.MULTILINE)]


def _lock_path(lock_dir: Path, device: str, slot: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", device)
    return lock_dir / f"gpu{safe}-slot{slot}.lock"


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path`` exclusively, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by child processes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # who holds it, for the messages of those who wait
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _holders(paths: Sequence[Path]) -> str:
    """``gpu0-slot0.lock: pid 123 on host, ...`` for a message."""
    def holder(path: Path) -> str:
        try:
            return path.read_text().strip() or "?"
        except OSError:
            return "?"

    return ", ".join(f"{p.name}: {holder(p)}" for p in paths)


def acquire(devices: Sequence[str], slots_per_device: int, lock_dir: Path,
            wait_s: float | None = None, poll_s: float = 0.2) -> Claim:
    """Hold one free (device, slot), waiting up to ``wait_s`` seconds (None: forever)."""
    if not devices or slots_per_device < 1:
        raise ValueError(f"no GPU slots: devices {list(devices)}, {slots_per_device} per device")
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = [(d, s) for s in range(slots_per_device) for d in devices]  # spread runs out
    paths = [_lock_path(lock_dir, d, s) for d, s in order]
    start = last_note = time.monotonic()
    while True:
        for (device, slot), path in zip(order, paths, strict=True):
            fd = _try_lock(path)
            if fd is not None:
                return Claim(device, slot, path, fd)
        now = time.monotonic()
        if wait_s is not None and now - start >= wait_s:
            raise NoFreeGpu(
                f"no free GPU slot after {wait_s:g} s: all {len(devices)} GPU(s) x "
                f"{slots_per_device} slot(s) in {lock_dir} are held ({_holders(paths)}); "
                "lower the Snakemake resource `gpu` to GPUs x slots, or raise "
                "RNNBENCH_GPU_SLOTS")
        if now - last_note >= 60:
            log.info("waiting for a free GPU slot (%.0f s so far): %s", now - start,
                     _holders(paths))
            last_note = now
        time.sleep(poll_s)


def claim_gpu(device: str, slots_per_device: int | None = None, lock_dir: Path | None = None,
              wait_s: float | None = None) -> Claim | None:
    """For a CUDA-capable run outside SLURM, hold a free GPU slot and make only that GPU
    visible (``CUDA_VISIBLE_DEVICES``); None where there is nothing to choose."""
    if device == "cpu":
        return None
    if os.environ.get("SLURM_JOB_ID"):
        log.info("inside SLURM job %s: using the GPUs SLURM allocated (CUDA_VISIBLE_DEVICES=%s)",
                 os.environ["SLURM_JOB_ID"], os.environ.get("CUDA_VISIBLE_DEVICES"))
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = parse_visible(visible) if visible is not None else nvidia_smi_devices()
    if not devices:
        return None
    slots = slots_per_device or default_slots()
    folder = lock_dir or default_lock_dir()
    claim = acquire(devices, slots, folder, wait_s if wait_s is not None else default_wait_s())
    if visible is None:
        # nvidia-smi numbers GPUs by PCI bus; CUDA's default order is fastest first
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ["CUDA_VISIBLE_DEVICES"] = claim.device
    log.info("GPU %s, slot %d of %d (lock %s)", claim.device, claim.slot, slots, claim.path)
    return claim


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error.

    Call it after :func:`claim_gpu`: it asks torch, which initialises CUDA."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "device 'cuda' was requested but torch sees no CUDA GPU (torch "
            f"{torch.__version__}); set `device: auto` or `device: cpu` in the config."
        )
    return torch.device(name)
