"""Train one language model with truncated BPTT and plain SGD; resumable and preemption-safe.

One step (the course lab's recipe, generalised)::

    hidden <- hidden.detach()                  # truncated BPTT: carry values, cut the graph
    loss   <- sum of token cross-entropies / (bptt*batch)   [mean]  or  / batch   [sum_time]
    g      <- grad(loss);  n <- ||g|| (global), recorded with per-group norms
    g      <- g / n  (0 if n < eps)  [normalize]  |  g * min(1, c/n)  [clip]  |  g  [none]
    w      <- w - lr * g                       # lr per epoch: rnnbench.training.schedule

A checkpoint (rnnbench.training.checkpoint: model, RNG states, hidden state, position, history, and
the config and data checksums it belongs to) is written atomically at every epoch end, every
``--checkpoint-interval`` seconds, and on SIGTERM/SIGINT, to a path outside the rule's outputs,
so a killed or preempted job resumes where it stopped and ends with the same numbers (bitwise
on CPU); one process at a time trains a run (a lock beside the checkpoint). Splits too short
for ``batch_size`` x ``bptt`` are refused before anything is written. A NaN/inf loss ends the
run as ``diverged`` with exit status 0. Usage: ``python -m rnnbench.training.train --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shlex
import sys
import time
from pathlib import Path

import torch

from rnnbench.config import RunConfig
from rnnbench.data.batching import batchify, get_batch, num_batches
from rnnbench.data.streams import split_tokens, stream_errors
from rnnbench.io import DiskFullError
from rnnbench.model.losses import evaluate, loss_sum, perplexity
from rnnbench.model.model import build_model, detach_hidden
from rnnbench.model.params import budget_error
from rnnbench.model.precision import autocast
from rnnbench.model.spectra import recurrent_spectra
from rnnbench.training import checkpoint as ckpt
from rnnbench.training import gpus
from rnnbench.training.checkpoint import State
from rnnbench.training.gradtreat import GradTreatment
from rnnbench.training.metrics import GLOBAL_STATS, duration_text, group_grad_stats, ppl_text
from rnnbench.training.runrecord import environment, write_outputs
from rnnbench.training.schedule import Schedule
from rnnbench.training.stopping import StopRequests

log = logging.getLogger(__name__)
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: "try again"; Snakemake retries the job
# Minibatches after an epoch's (re)start with a progress line, before every --log-interval:
# a large model's 200 minibatches take minutes, and a user watching the log needs a sign of life.
EARLY_LOGS = (5, 50)


class Preempted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint has been written."""


def check_streams(cfg: RunConfig, data_dir: Path, streams: dict[str, torch.Tensor]) -> None:
    """Stop with one paragraph if a split is too short for this batch_size and bptt.

    Train and valid are counted from their tensors, test from stats.json (when present):
    checked before anything is written, as no perplexity may be a mean over zero tokens."""
    problems = stream_errors(cfg, split_tokens(streams, data_dir), data_dir.name)
    if problems:
        raise SystemExit(
            f"cannot train: {'; '.join(problems)}. With batch_size {cfg.batch_size} and bptt "
            f"{cfg.bptt} a perplexity over it would be undefined (a mean over no tokens), so "
            "nothing was written. Lower batch_size (or bptt) in the config's recipe, or give "
            f"a larger split (the corpus files behind {data_dir}).")


class Trainer:
    """Owns the model, data and state of one run; ``run()`` trains to the end."""

    def __init__(self, cfg: RunConfig, data_dir: Path, checkpoint: Path, device: torch.device,
                 log_interval: int = 200, checkpoint_interval: float = 600.0) -> None:
        self._started = time.monotonic()
        self.cfg, self.device, self.checkpoint = cfg, device, checkpoint
        self.log_interval, self.checkpoint_interval = log_interval, checkpoint_interval
        streams = {s: torch.load(data_dir / f"{s}.pt", weights_only=True)  # (tokens,)
                   for s in ("train", "valid")}
        check_streams(cfg, data_dir, streams)
        # read once, at the start: the data a checkpoint must have been trained on
        self.corpus, self.data_sha256 = data_dir.name, ckpt.data_checksums(data_dir)
        self.identity = ckpt.identity(cfg, self.data_sha256)
        self.train_data = batchify(streams["train"], cfg.batch_size).to(device)  # (rows, batch)
        self.valid_data = batchify(streams["valid"], cfg.batch_size).to(device)
        self.vocab_size = len((data_dir / "vocab.txt").read_text().splitlines())
        if problem := budget_error(cfg.cell, cfg.hidden, cfg.layers, self.vocab_size,
                                   cfg.budget, cfg.budget_kind, cfg.embedding_size):
            raise SystemExit(problem)  # a total budget solved on another vocabulary
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, self.vocab_size).to(device)
        self.init_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.treat = GradTreatment(self.model, cfg)
        n = num_batches(self.train_data, cfg.bptt)
        self.n_batches = n if cfg.max_batches is None else min(n, cfg.max_batches)
        self.state = ckpt.load(self.checkpoint, self.identity, self.model, device) or State(
            spectra=[{"epoch": -1, **r} for r in recurrent_spectra(self.model)])
        self.schedule = Schedule(cfg, self.optimizer)  # the lr of each epoch; may stop early
        self.schedule.load_state_dict(self.state.schedule)
        self.stop_signal: int | None = None
        self._last_save = time.monotonic()
        self._logged = 0  # the minibatch after the last progress line

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> None:
        """Run the rest of the current epoch from ``state.batch``."""
        cfg, st = self.cfg, self.state
        self.model.train()
        self.schedule.start_epoch(st.epoch)
        self._logged = st.batch
        if st.batch == 0:
            st.hidden, st.loss_sum, st.tokens, st.seconds = None, None, 0, 0.0
            st.steps.append(torch.full((self.n_batches, 2 + len(self.treat.names)), math.nan,
                                       device=self.device))
        steps = st.steps[-1]
        hidden = st.hidden if st.hidden is not None else self.model.init_hidden(cfg.batch_size)
        loss_acc = st.loss_sum if st.loss_sum is not None else torch.zeros((), device=self.device)
        t0, first = time.perf_counter() - st.seconds, st.batch
        for b in range(first, self.n_batches):
            x, y = get_batch(self.train_data, b * cfg.bptt, cfg.bptt)  # (seq, batch) each
            hidden, total = self.step(x, y, hidden, steps[b])
            loss_acc += total
            st.tokens += y.numel()
            st.batch, st.hidden, st.loss_sum = b + 1, hidden, loss_acc
            st.seconds = time.perf_counter() - t0
            # every step (one host sync): a non-finite loss ends the run at that step
            if self.check_diverged(steps, b):
                return
            if ((b + 1) % self.log_interval == 0 or b + 1 == self.n_batches
                    or b + 1 - first in EARLY_LOGS):  # a first line within seconds of a start
                self.log_progress(steps, b + 1)
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
        with autocast(self.device, cfg.precision):  # products in bf16 when asked
            out, hidden = model.features(x, hidden)  # (seq, batch, hidden)
            total = loss_sum(model.decoder, out, y, cfg.loss_impl)  # fp32 either way
        divisor = y.numel() if cfg.loss_reduction == "mean" else y.size(1)
        (total / divisor).backward()
        torch.div(total.detach(), y.numel(), out=record[0])  # mean token loss of this step
        record[1:] = self.treat()
        self.optimizer.step()
        return hidden, total.detach()

    def check_diverged(self, steps: torch.Tensor, b: int) -> bool:
        """Mark the run diverged when minibatch ``b``'s loss is not finite (one host sync)."""
        if bool(torch.isfinite(steps[b, 0])):
            return False
        self.state.diverged_step = self.state.epoch * self.n_batches + b
        log.error("loss became non-finite at epoch %d, minibatch %d: run diverged",
                  self.state.epoch + 1, b)
        return True

    def end_epoch(self) -> None:
        """Validate, keep the best weights, append the epoch's row, checkpoint."""
        cfg, st = self.cfg, self.state
        valid_loss, _ = evaluate(self.model, self.valid_data, cfg.bptt, cfg.loss_impl,
                                 cfg.max_eval_batches, cfg.precision)
        train_loss = st.loss_sum.item() / max(st.tokens, 1)
        grad_rows = group_grad_stats(st.steps[-1], self.treat.names, st.epoch, self.n_batches,
                                     cfg)
        row = {
            "epoch": st.epoch, "lr": self.schedule.lr(st.epoch),
            "train_loss": train_loss, "train_ppl": perplexity(train_loss),
            "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss),
            "seconds": st.seconds, "tokens": st.tokens,
            "tokens_per_s": st.tokens / st.seconds if st.seconds else math.nan,
            **{f"grad_norm_{k}": grad_rows[0][k] for k in GLOBAL_STATS},
        }
        st.history.append(row)
        st.grad_stats += grad_rows
        st.spectra += [{"epoch": st.epoch, **r} for r in recurrent_spectra(self.model)]
        if not math.isfinite(row["valid_ppl"]):
            # a finite validation loss above ~709 nats overflows exp: weights whose perplexity
            # is infinite are no result. (The epoch's train perplexity may overflow from a few
            # exploding steps, as a relu RNN's do, while the weights recover: that is data.)
            st.diverged_step = (st.epoch + 1) * self.n_batches - 1
            log.error("validation perplexity overflowed at the end of epoch %d (valid loss "
                      "%.3g nats): run diverged", st.epoch, valid_loss)
        elif valid_loss < st.best_valid:
            st.best_valid = valid_loss
            st.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if st.diverged_step is None:  # the next epoch's lr, or the end (rnnbench.training.schedule)
            st.stopped = self.schedule.end_epoch(st.epoch, row["valid_ppl"])
            st.schedule = self.schedule.state_dict()
        log.info("epoch %d/%d done  lr %.4g  train loss %.3f  valid ppl %s  %.1f s  %.0f tok/s",
                 st.epoch + 1, cfg.epochs, row["lr"], train_loss, ppl_text(row["valid_ppl"]),
                 row["seconds"], row["tokens_per_s"])
        st.epoch, st.batch, st.hidden, st.loss_sum = st.epoch + 1, 0, None, None
        self.save()

    def run(self) -> str:
        """Train all epochs (or until divergence, or the schedule's stop); the status."""
        while (self.state.epoch < self.cfg.epochs and self.state.diverged_step is None
               and self.state.stopped is None):
            self.train_epoch()
            if self.state.diverged_step is not None:
                break
            self.end_epoch()
        if self.state.diverged_step is not None:
            self.save()
            return "diverged"
        return "ok"

    # -- bookkeeping -------------------------------------------------------------------------
    def log_progress(self, steps: torch.Tensor, done: int) -> None:
        """One progress line: position (epochs from 1), the mean loss of the minibatches since
        the last line (not since the epoch's start, which a few exploding first steps would
        dominate), its perplexity where finite, tokens/s, and the time left at most."""
        st, cfg = self.state, self.cfg
        start = self._logged if self._logged < done else 0
        loss = float(steps[start:done, 0].mean())
        self._logged = done
        rate = st.tokens / st.seconds if st.seconds else math.nan
        left = (self.n_batches - done) + (cfg.epochs - st.epoch - 1) * self.n_batches
        eta = left * st.seconds / max(done, 1) if st.seconds else math.nan
        ppl = perplexity(loss)
        log.info("epoch %d/%d  batch %d/%d  loss %.3f%s  %.0f tok/s  ETA %s%s",
                 st.epoch + 1, cfg.epochs, done, self.n_batches, loss,
                 f"  ppl {ppl:.1f}" if math.isfinite(ppl) else "", rate, duration_text(eta),
                 " at most (plateau schedule)" if cfg.schedule == "plateau" else "")

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self._last_save > self.checkpoint_interval

    def save(self) -> None:
        """Checkpoint now."""
        ckpt.save(self.checkpoint, self.identity, self.model,
                  dataclasses.replace(self.state, wall_seconds=self.wall_seconds()))
        self._last_save = time.monotonic()

    def wall_seconds(self) -> float:
        """Wall time of the whole run so far: earlier processes (to their last checkpoint)
        plus this one; NaN if resumed from a checkpoint too old to record it."""
        return self.state.wall_seconds + (time.monotonic() - self._started)


def build_parser() -> argparse.ArgumentParser:
    """Flags: one per RunConfig field, plus paths and machine settings."""
    p = argparse.ArgumentParser(description="Train one RNN language model (rnnbench).")
    for f in dataclasses.fields(RunConfig):
        if f.name == "extra":
            continue
        # "int", "float | None", ...: the type before " |"; None is the default, no flag
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" |")[0], str)
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
    started = time.monotonic()
    stops = StopRequests()  # first: a signal while the data loads is kept, not fatal
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}
    cfg = RunConfig.from_dict({k: v for k, v in vars(args).items() if k in fields})
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", "-m", "rnnbench.training.train",
                          *(sys.argv[1:] if argv is None else argv)])
    try:
        # one trainer per run for the whole process: a second one stops here, naming this one
        with ckpt.exclusive(args.checkpoint):
            return train_run(args, cfg, started, command, stops)
    except DiskFullError as err:  # the previous checkpoint is intact; say it in one line
        raise SystemExit(str(err)) from None


def train_run(args: argparse.Namespace, cfg: RunConfig, started: float, command: str,
              stops: StopRequests) -> int:
    """Claim the device, train (resuming the checkpoint) and write the outputs; exit status."""
    # Before anything initialises CUDA, which reads CUDA_VISIBLE_DEVICES once, at its start.
    try:
        gpus.claim_gpu(cfg.device, args.gpu_slots_per_device, args.gpu_lock_dir,
                       args.gpu_wait_s)
    except gpus.NoFreeGpu as err:
        raise SystemExit(str(err)) from err
    device = gpus.pick_device(cfg.device)
    env = environment(device)
    log.info("run %s on %s: %s", args.run_id, env["gpu"] or env["device"], cfg)
    trainer = Trainer(cfg, args.data_dir, args.checkpoint, device, args.log_interval,
                      args.checkpoint_interval)
    stops.attach(trainer)
    if args.time_limit_s is not None:
        stops.time_limit(args.time_limit_s, args.time_limit_margin_s, started)
    try:
        status = trainer.run()
    except Preempted:
        log.warning("checkpoint written to %s; rerun the job to resume", args.checkpoint)
        return PREEMPTED_EXIT
    write_outputs(trainer, args.run_dir, args.run_id or args.run_dir.name, status, env, command)
    args.checkpoint.unlink(missing_ok=True)  # in-progress state only; the outputs now exist
    log.info("run %s finished: %s", args.run_id, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
