"""A training run's checkpoint: what it holds, its identity, how it is saved and loaded, and the
lock that lets one trainer at a time write it.

A checkpoint is a dict of tensors and plain containers (``weights_only`` loadable): the model's
``state_dict``, the RNG states, every field of :class:`State`, and its *identity*, the run's
config plus the SHA-256 of the data it trains on (``train.pt``, ``valid.pt``, ``vocab.txt``).
A checkpoint is resumed only when its identity is the run's: one written for another config,
another corpus or another ``max_vocab`` (a new ``vocab.txt``) is moved aside to
``<name>.stale``, and an unreadable one (truncated, not a checkpoint) to ``<name>.corrupt``;
either way the run starts afresh and the log says why.

The lock is an exclusive ``fcntl.flock`` on ``<name>.lock`` beside the checkpoint, as
:mod:`rnnbench.training.gpus` holds its GPU slots: the kernel drops it when the process ends,
however it ends, so an orphaned trainer (its Snakemake killed) keeps its run to itself until it
exits, and a second trainer of that run stops at once, naming the holder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import logging
import math
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rnnbench.config import RunConfig
from rnnbench.io import write_atomic

log = logging.getLogger(__name__)
DATA_FILES = ("train.pt", "valid.pt", "vocab.txt")  # what a run's weights depend on


@dataclasses.dataclass
class State:
    """Everything that changes during training, i.e. everything a checkpoint must hold."""

    epoch: int = 0  # 0-based epoch in progress
    batch: int = 0  # next minibatch of that epoch
    hidden: Any = None  # carried hidden state mid-epoch
    loss_sum: torch.Tensor | None = None  # summed train loss of the epoch so far
    tokens: int = 0  # train tokens of the epoch so far
    seconds: float = 0.0  # training seconds of the epoch so far
    steps: list = dataclasses.field(default_factory=list)  # (n_batches, 2+G) per epoch
    history: list = dataclasses.field(default_factory=list)  # one dict per finished epoch
    spectra: list = dataclasses.field(default_factory=list)  # sigma_max rows per epoch
    grad_stats: list = dataclasses.field(default_factory=list)  # per-group rows per epoch
    best_valid: float = math.inf
    best_state: dict | None = None
    diverged_step: int | None = None
    wall_seconds: float = 0.0  # wall time of the earlier processes of this run, to their last save
    resumes: int = 0  # how many times this run was resumed from a checkpoint
    schedule: dict = dataclasses.field(default_factory=dict)  # rnnbench.training.schedule's state
    stopped: str | None = None  # set when the schedule ended training early (plateau_decays)


STATE_FIELDS = tuple(f.name for f in dataclasses.fields(State))


class RunLocked(SystemExit):
    """Another live process holds the run's lock; the message names it and what to do."""


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def data_checksums(data_dir: Path) -> dict[str, str]:
    """SHA-256 of each file of ``data_dir`` that a run's weights depend on."""
    return {name: sha256(data_dir / name) for name in DATA_FILES}


def identity(cfg: RunConfig, checksums: dict[str, str]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the run's config and its data."""
    return {"config": cfg.to_dict(), "data": dict(checksums)}


def differences(saved: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``hidden 32 (checkpoint) vs 64 (run); data: vocab.txt differs`` for a log line."""
    old_cfg, new_cfg = saved.get("config") or {}, wanted["config"]
    parts = [f"{k} {old_cfg.get(k)!r} (checkpoint) vs {new_cfg.get(k)!r} (run)"
             for k in sorted(set(old_cfg) | set(new_cfg)) if old_cfg.get(k) != new_cfg.get(k)]
    changed = [n for n in DATA_FILES if saved["data"].get(n) != wanted["data"].get(n)]
    if changed:
        parts.append(f"data: {', '.join(changed)} differ{'s' if len(changed) == 1 else ''} "
                     "(another corpus, its files changed, or another max_vocab)")
    return "; ".join(parts)


def _config_of(blob: dict) -> dict | None:
    """The checkpoint's config with today's defaults filled in (a key added to RunConfig
    later, off by default, does not make an older checkpoint another run's); None if it
    names keys this version does not know."""
    try:
        return RunConfig.from_dict(blob["config"]).to_dict()
    except (TypeError, ValueError):
        return None


def save(path: Path, ident: dict[str, Any], model: torch.nn.Module, state: State) -> None:
    """Write the resumable state atomically (tensors and plain containers only)."""
    blob = {
        **ident,
        "model": model.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        **{f.name: getattr(state, f.name) for f in dataclasses.fields(State)},
    }
    write_atomic(path, lambda tmp: torch.save(blob, tmp))


def set_aside(path: Path, suffix: str) -> Path:
    """Move ``path`` to ``<path><suffix>`` (replacing an older one); the new path."""
    aside = path.with_name(path.name + suffix)
    os.replace(path, aside)
    return aside


def _read(path: Path, device) -> dict | None:
    """The checkpoint's dict, or None (moved aside, said in the log) if it cannot be read."""
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(blob, dict) or not {"config", "model", "rng_cpu"} <= set(blob):
            raise ValueError("not an rnnbench checkpoint")
        missing = [n for n in ("data", *STATE_FIELDS) if n not in blob]
        if missing:
            raise ValueError(f"no {', '.join(missing)}: written by an older rnnbench")
        return blob
    except Exception as err:  # noqa: BLE001 - any unreadable file: truncated, foreign, garbage
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        aside = set_aside(path, ".corrupt")
        log.warning("checkpoint %s is unreadable (%s): moved to %s; starting afresh", path,
                    reason, aside)
        return None


def load(path: Path, ident: dict[str, Any], model: torch.nn.Module, device) -> State | None:
    """The saved State (model weights and RNG restored), or None to start fresh: no
    checkpoint, an unreadable one, or one of another config or other data (moved aside)."""
    if not path.exists():
        return None
    blob = _read(path, device)
    if blob is None:
        return None
    if _config_of(blob) != ident["config"] or blob["data"] != ident["data"]:
        aside = set_aside(path, ".stale")
        log.warning("checkpoint %s belongs to another run (%s): moved to %s; starting afresh",
                    path, differences(blob, ident), aside)
        return None
    model.load_state_dict(blob["model"])
    torch.set_rng_state(blob["rng_cpu"].cpu())
    if blob["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in blob["rng_cuda"]])
    state = State(**{n: blob[n] for n in STATE_FIELDS})
    state.resumes += 1
    log.info("resuming from %s at epoch %d, minibatch %d", path, state.epoch, state.batch)
    return state


def lock_path(checkpoint: Path) -> Path:
    """The lock file beside a checkpoint: ``<name>.lock``."""
    return checkpoint.with_name(checkpoint.name + ".lock")


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "an unknown process"
    except OSError:
        return "an unknown process"


@contextlib.contextmanager
def exclusive(checkpoint: Path) -> Iterator[Path]:
    """Hold the run's lock for the block; raise RunLocked at once if another process has it."""
    path = lock_path(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by child processes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise RunLocked(
                f"another trainer of this run is running: {_holder(path)} holds {path}, the "
                f"lock of checkpoint {checkpoint}. Two trainers of one run would overwrite "
                "each other's checkpoint, so this one stops without touching it. Wait for that "
                "process to finish, or stop it (kill the pid above; it may be an orphan of a "
                "killed Snakemake) and rerun.") from None
        # The file we locked may have been unlinked by a holder that finished in between:
        # then it locks nothing, and we try again on the file now at the path.
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        os.close(fd)
    try:
        with contextlib.suppress(OSError):  # who holds it, for the message (a full disk: none)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still held, so no one can lock the unlinked file unnoticed
        os.close(fd)
