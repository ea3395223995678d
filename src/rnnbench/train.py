"""Train one language model with truncated BPTT and plain SGD; resumable and preemption-safe.

One step (the course lab's recipe, generalised)::

    hidden <- hidden.detach()                  # truncated BPTT: carry values, cut the graph
    loss   <- sum of token cross-entropies / (bptt*batch)   [mean]  or  / batch   [sum_time]
    g      <- grad(loss);  n <- ||g|| (global), recorded with per-group norms
    g      <- g / n  (0 if n < eps)  [normalize]  |  g * min(1, c/n)  [clip]  |  g  [none]
    w      <- w - lr * g

A checkpoint (model, optimizer, RNG states, hidden state, position, history) is written
atomically at every epoch end, every ``--checkpoint-interval`` seconds, and on SIGTERM/SIGINT,
to a path outside the rule's outputs, so a killed or preempted job resumes where it stopped
and ends with the same numbers (bitwise on CPU). A NaN/inf loss ends the run as ``diverged``
with exit status 0. Usage: ``python -m rnnbench.train --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import platform
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rnnbench import __version__
from rnnbench.config import RunConfig
from rnnbench.data import batchify, get_batch, num_batches
from rnnbench.evaluate import build_model, evaluate, perplexity
from rnnbench.gradtime import recurrent_spectra
from rnnbench.io import write_atomic, write_json
from rnnbench.losses import loss_sum
from rnnbench.metrics import (
    GLOBAL_STATS,
    grad_norm_stats,
    group_grad_stats,
    write_rows,
    write_steps,
)
from rnnbench.model import RNNModel, detach_hidden, parameter_groups
from rnnbench.provenance import code_version, cpu_model

log = logging.getLogger(__name__)
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: "try again"; Snakemake retries the job


class Preempted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint has been written."""


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


class GradTreatment:
    """Per-group gradient norms and the recipe's normalize/clip step, without host syncs."""

    def __init__(self, model: RNNModel, cfg: RunConfig) -> None:
        named = dict(model.named_parameters())
        groups = parameter_groups(model)
        self.names = [g for g, _ in groups]
        self.params = [named[n] for _, names in groups for n in names]
        index = [i for i, (_, names) in enumerate(groups) for _ in names]
        self.index = torch.tensor(index, device=self.params[0].device)
        self.cfg = cfg

    def __call__(self) -> torch.Tensor:
        """Apply the treatment in place; return [global, *group] norms *before* it."""
        # Few small ops (each costs host time, a kernel launch on GPU); the same float ops as
        # ||g_p||^2 summed per group, then over groups, then sqrt; 1/total is reciprocal().
        grads = [p.grad for p in self.params]
        sq_param = torch.stack(torch._foreach_norm(grads))  # (P,) norms, squared in place
        sq_param.mul_(sq_param)
        sq = sq_param.new_zeros(len(self.names)).index_add_(0, self.index, sq_param)  # (G,)
        norms = torch.cat([sq.sum().view(1), sq]).sqrt_()  # (1+G,) [global, *group]
        total = norms[0]
        if self.cfg.grad == "normalize":
            # unit-norm step; an (almost) zero gradient is zeroed, not blown up
            scale = torch.where(total < self.cfg.normalize_eps, 0.0, total.reciprocal())
            torch._foreach_mul_(grads, scale)
        elif self.cfg.grad == "clip":
            torch._foreach_mul_(grads, (self.cfg.clip_norm / (total + 1e-6)).clamp(max=1.0))
        return norms


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "device 'cuda' was requested but torch sees no CUDA GPU (torch "
            f"{torch.__version__}); set `device: auto` or `device: cpu` in the config."
        )
    return torch.device(name)


def environment(device: torch.device) -> dict[str, Any]:
    """Where and with what this run executes."""
    env = {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rnnbench": __version__,
        "code_version": code_version(),
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    return env


def save_checkpoint(path: Path, cfg: RunConfig, model, state: State) -> None:
    """Write the resumable state atomically (tensors and plain containers only)."""
    blob = {
        "config": cfg.to_dict(),
        "model": model.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        **{f.name: getattr(state, f.name) for f in dataclasses.fields(State)},
    }
    write_atomic(path, lambda tmp: torch.save(blob, tmp))


def load_checkpoint(path: Path, cfg: RunConfig, model, device) -> State | None:
    """The saved State (model weights and RNG restored), or None to start fresh."""
    if not path.exists():
        return None
    blob = torch.load(path, map_location=device, weights_only=True)
    if blob["config"] != cfg.to_dict():
        log.warning("checkpoint %s belongs to another configuration; starting afresh", path)
        return None
    model.load_state_dict(blob["model"])
    torch.set_rng_state(blob["rng_cpu"].cpu())
    if blob["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in blob["rng_cuda"]])
    names = [f.name for f in dataclasses.fields(State)]
    missing = [n for n in names if n not in blob]
    if missing:  # written by an older rnnbench: those records restart empty
        log.warning("checkpoint %s has no %s; they start empty", path, ", ".join(missing))
    state = State(**{n: blob[n] for n in names if n in blob})
    if "wall_seconds" not in blob:  # earlier processes' wall time unknown
        state.wall_seconds = math.nan
    state.resumes += 1
    log.info("resuming from %s at epoch %d, minibatch %d", path, state.epoch, state.batch)
    return state


class Trainer:
    """Owns the model, data and state of one run; ``run()`` trains to the end."""

    def __init__(self, cfg: RunConfig, data_dir: Path, checkpoint: Path, device: torch.device,
                 log_interval: int = 200, checkpoint_interval: float = 600.0) -> None:
        self._started = time.monotonic()
        self.cfg, self.device, self.checkpoint = cfg, device, checkpoint
        self.log_interval, self.checkpoint_interval = log_interval, checkpoint_interval
        def load(split: str) -> torch.Tensor:
            return torch.load(data_dir / f"{split}.pt", weights_only=True)

        self.train_data = batchify(load("train"), cfg.batch_size).to(device)  # (rows, batch)
        self.valid_data = batchify(load("valid"), cfg.batch_size).to(device)
        self.vocab_size = len((data_dir / "vocab.txt").read_text().splitlines())
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, self.vocab_size).to(device)
        self.init_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.treat = GradTreatment(self.model, cfg)
        n = num_batches(self.train_data, cfg.bptt)
        self.n_batches = n if cfg.max_batches is None else min(n, cfg.max_batches)
        self.state = load_checkpoint(checkpoint, cfg, self.model, device) or State(
            spectra=[{"epoch": -1, **r} for r in recurrent_spectra(self.model)])
        self.stop_signal: int | None = None
        self._last_save = time.monotonic()

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> None:
        """Run the rest of the current epoch from ``state.batch``."""
        cfg, st = self.cfg, self.state
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(st.epoch)
        if st.batch == 0:
            st.hidden, st.loss_sum, st.tokens, st.seconds = None, None, 0, 0.0
            st.steps.append(torch.full((self.n_batches, 2 + len(self.treat.names)), math.nan,
                                       device=self.device))
        steps = st.steps[-1]
        hidden = st.hidden if st.hidden is not None else self.model.init_hidden(cfg.batch_size)
        loss_acc = st.loss_sum if st.loss_sum is not None else torch.zeros((), device=self.device)
        t0 = time.perf_counter() - st.seconds
        for b in range(st.batch, self.n_batches):
            x, y = get_batch(self.train_data, b * cfg.bptt, cfg.bptt)  # (seq, batch) each
            hidden, total = self.step(x, y, hidden, steps[b])
            loss_acc += total
            st.tokens += y.numel()
            st.batch, st.hidden, st.loss_sum = b + 1, hidden, loss_acc
            st.seconds = time.perf_counter() - t0
            if (b + 1) % self.log_interval == 0 or b + 1 == self.n_batches:
                if self.check_diverged(steps, b + 1):
                    return
                self.log_progress(b + 1)
            if self.stop_signal is not None or self._checkpoint_due():
                st.hidden = detach_hidden(hidden)
                self.save()
                if self.stop_signal is not None:
                    raise Preempted(self.stop_signal)

    def step(self, x: torch.Tensor, y: torch.Tensor, hidden, record: torch.Tensor):
        """One SGD step on inputs/targets (seq, batch); fills ``record`` with [mean loss,
        global norm, group norms] and returns the new hidden state and the summed loss,
        all on the device (no host synchronisation)."""
        model, cfg = self.model, self.cfg
        hidden = detach_hidden(hidden)
        model.zero_grad(set_to_none=True)
        out, hidden = model.features(x, hidden)  # (seq, batch, hidden)
        total = loss_sum(model.decoder, out, y, cfg.loss_impl)
        divisor = y.numel() if cfg.loss_reduction == "mean" else y.size(1)
        (total / divisor).backward()
        torch.div(total.detach(), y.numel(), out=record[0])  # mean token loss of this step
        record[1:] = self.treat()
        self.optimizer.step()
        return hidden, total.detach()

    def check_diverged(self, steps: torch.Tensor, upto: int) -> bool:
        """Mark the run diverged at the first non-finite step loss (one host sync)."""
        bad = ~torch.isfinite(steps[:upto, 0])
        if not bool(bad.any()):
            return False
        first = int(bad.nonzero()[0, 0])
        self.state.diverged_step = self.state.epoch * self.n_batches + first
        log.error("loss became non-finite at epoch %d, minibatch %d: run diverged",
                  self.state.epoch, first)
        return True

    def end_epoch(self) -> None:
        """Validate, keep the best weights, append the epoch's row, checkpoint."""
        cfg, st = self.cfg, self.state
        valid_loss, _ = evaluate(self.model, self.valid_data, cfg.bptt, cfg.loss_impl,
                                 cfg.max_eval_batches)
        train_loss = st.loss_sum.item() / max(st.tokens, 1)
        grad_rows = group_grad_stats(st.steps[-1], self.treat.names, st.epoch, self.n_batches,
                                     cfg)
        row = {
            "epoch": st.epoch, "lr": cfg.lr_at(st.epoch),
            "train_loss": train_loss, "train_ppl": perplexity(train_loss),
            "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss),
            "seconds": st.seconds, "tokens": st.tokens,
            "tokens_per_s": st.tokens / st.seconds if st.seconds else math.nan,
            **{f"grad_norm_{k}": grad_rows[0][k] for k in GLOBAL_STATS},
        }
        st.history.append(row)
        st.grad_stats += grad_rows
        st.spectra += [{"epoch": st.epoch, **r} for r in recurrent_spectra(self.model)]
        if valid_loss < st.best_valid:
            st.best_valid = valid_loss
            st.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        log.info("epoch %d/%d  lr %.4g  train ppl %.2f  valid ppl %.2f  %.1f s  %.0f tok/s",
                 st.epoch, cfg.epochs - 1, row["lr"], row["train_ppl"], row["valid_ppl"],
                 row["seconds"], row["tokens_per_s"])
        st.epoch, st.batch, st.hidden, st.loss_sum = st.epoch + 1, 0, None, None
        self.save()

    def run(self) -> str:
        """Train all epochs (or until divergence); return the status."""
        while self.state.epoch < self.cfg.epochs and self.state.diverged_step is None:
            self.train_epoch()
            if self.state.diverged_step is not None:
                break
            self.end_epoch()
        if self.state.diverged_step is not None:
            self.save()
            return "diverged"
        return "ok"

    # -- bookkeeping -------------------------------------------------------------------------
    def log_progress(self, done: int) -> None:
        """One progress line: position, loss, tokens/s, ETA of the run."""
        st, cfg = self.state, self.cfg
        loss = st.loss_sum.item() / max(st.tokens, 1)
        rate = st.tokens / st.seconds if st.seconds else math.nan
        left = (self.n_batches - done) + (cfg.epochs - st.epoch - 1) * self.n_batches
        eta = left * st.seconds / max(done - 0, 1) if st.seconds else math.nan
        log.info("epoch %d/%d  batch %d/%d  loss %.3f  ppl %.1f  %.0f tok/s  ETA %.0f s",
                 st.epoch, cfg.epochs - 1, done, self.n_batches, loss, perplexity(loss),
                 rate, eta)

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self._last_save > self.checkpoint_interval

    def save(self) -> None:
        """Checkpoint now."""
        save_checkpoint(self.checkpoint, self.cfg, self.model,
                        dataclasses.replace(self.state, wall_seconds=self.wall_seconds()))
        self._last_save = time.monotonic()

    def wall_seconds(self) -> float:
        """Wall time of the whole run so far: earlier processes (to their last checkpoint)
        plus this one; NaN if resumed from a checkpoint too old to record it."""
        return self.state.wall_seconds + (time.monotonic() - self._started)


def write_outputs(trainer: Trainer, run_dir: Path, run_id: str, status: str,
                  env: dict, command: str) -> None:
    """The rule's outputs: history.csv, steps.csv.gz, grad_stats.csv, spectra.csv, model.pt
    (best-validation, initial and, for a finished run, final weights) and train.json."""
    st, cfg = trainer.state, trainer.cfg
    write_rows(run_dir / "history.csv", st.history)
    write_rows(run_dir / "grad_stats.csv", st.grad_stats)
    write_rows(run_dir / "spectra.csv", st.spectra)
    write_steps(run_dir / "steps.csv.gz", st.steps, trainer.treat.names, trainer.n_batches)
    # best-validation, initial and final weights (published recipes test the final ones)
    final_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    model_blob = {"config": cfg.to_dict(), "vocab_size": trainer.vocab_size,
                  "best_state": st.best_state, "init_state": trainer.init_state,
                  "final_state": final_state if status == "ok" else None}
    write_atomic(run_dir / "model.pt", lambda tmp: torch.save(model_blob, tmp))
    best = min(st.history, key=lambda r: r["valid_loss"]) if st.history else None
    every_step = torch.cat([t[:, 1].cpu() for t in st.steps]) if st.steps else torch.zeros(0)
    every_step = every_step[~torch.isnan(every_step)]
    write_json(run_dir / "train.json", {
        "run_id": run_id, "status": status, "diverged_step": st.diverged_step,
        "epochs_done": len(st.history), "best_epoch": best["epoch"] if best else None,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        # wall time of every process that trained it (to each one's last checkpoint), and
        # the training time alone (validation and start-up excluded), summed over epochs
        "wall_seconds": None if math.isnan(wall := trainer.wall_seconds()) else wall,
        "resumes": st.resumes, "vocab_size": trainer.vocab_size,
        "train_seconds": sum(r["seconds"] for r in st.history),
        # global gradient norm over every step of the run (before normalisation/clipping)
        **{f"grad_norm_{k}": v for k, v in grad_norm_stats(every_step).items()
           if k in ("p50", "p90", "p99", "max")},
        "config": cfg.to_dict(), "command": command, **env,
    })


def build_parser() -> argparse.ArgumentParser:
    """Flags: one per RunConfig field, plus paths and machine settings."""
    p = argparse.ArgumentParser(description="Train one RNN language model (rnnbench).")
    for f in dataclasses.fields(RunConfig):
        if f.name == "extra":
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" |")[0], str)
        if "None" in str(f.type):
            kind = int
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind,
                       required=f.default is dataclasses.MISSING, default=f.default)
    p.add_argument("--data-dir", required=True, type=Path, help="tokenized corpus folder")
    p.add_argument("--run-dir", required=True, type=Path, help="folder of the outputs")
    p.add_argument("--run-id", default=None)
    p.add_argument("--checkpoint", required=True, type=Path, help="resumable state file")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--log-interval", type=int, default=200, help="minibatches between logs")
    p.add_argument("--checkpoint-interval", type=float, default=600.0,
                   help="seconds between mid-epoch checkpoints")
    p.add_argument("--time-limit-s", type=float, default=None,
                   help="wall-clock limit of this job (e.g. its SLURM time limit): checkpoint "
                   "and exit 75 (retry) before it, without waiting for a signal")
    p.add_argument("--time-limit-margin-s", type=float, default=180.0,
                   help="stop this long before --time-limit-s (at most half of it); covers "
                   "the start-up before this process, an end-of-epoch validation and a save")
    p.add_argument("--gpu-slots-per-device", type=int, default=None,
                   help="runs that may share one GPU (default $RNNBENCH_GPU_SLOTS or 1)")
    p.add_argument("--gpu-lock-dir", type=Path, default=None,
                   help="folder of the GPU slot locks (default $RNNBENCH_GPU_LOCK_DIR or "
                   "$TMPDIR/rnnbench-gpu-slots-<uid>)")
    p.add_argument("--gpu-wait-s", type=float, default=None,
                   help="longest wait for a free GPU slot (default $RNNBENCH_GPU_WAIT_S or "
                   "forever)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    import threading

    from rnnbench import gpus

    started = time.monotonic()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}
    cfg = RunConfig.from_dict({k: v for k, v in vars(args).items() if k in fields})
    if args.threads:
        torch.set_num_threads(args.threads)
    # Before anything initialises CUDA, which reads CUDA_VISIBLE_DEVICES once, at its start.
    try:
        gpus.claim_gpu(cfg.device, args.gpu_slots_per_device, args.gpu_lock_dir,
                       args.gpu_wait_s)
    except gpus.NoFreeGpu as err:
        raise SystemExit(str(err)) from err
    device = pick_device(cfg.device)
    env = environment(device)
    log.info("run %s on %s: %s", args.run_id, env["gpu"] or env["device"], cfg)
    trainer = Trainer(cfg, args.data_dir, args.checkpoint, device, args.log_interval,
                      args.checkpoint_interval)

    def on_signal(signum, _frame):
        log.warning("received signal %d: checkpointing at the next minibatch", signum)
        trainer.stop_signal = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.time_limit_s is not None:
        # Stop on our own before the job's limit rather than trust the scheduler's signal.
        stop_at = args.time_limit_s - min(args.time_limit_margin_s, args.time_limit_s / 2)

        def on_time_limit() -> None:
            log.warning("%.0f s of the %g s time limit used: checkpointing at the next "
                        "minibatch", time.monotonic() - started, args.time_limit_s)
            trainer.stop_signal = signal.SIGALRM

        timer = threading.Timer(max(0.0, stop_at - (time.monotonic() - started)), on_time_limit)
        timer.daemon = True
        timer.start()
    try:
        status = trainer.run()
    except Preempted:
        log.warning("checkpoint written to %s; rerun the job to resume", args.checkpoint)
        return PREEMPTED_EXIT
    command = shlex.join(["python", "-m", "rnnbench.train",
                          *(sys.argv[1:] if argv is None else argv)])
    write_outputs(trainer, args.run_dir, args.run_id or args.run_dir.name, status, env, command)
    args.checkpoint.unlink(missing_ok=True)  # in-progress state only; the outputs now exist
    log.info("run %s finished: %s", args.run_id, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
