"""Effective context of one trained run: how much of the past it uses to predict a word.

Khandelwal, He, Qi and Jurafsky (ACL 2018, "Sharp Nearby, Fuzzy Far Away") ablate the
context of a trained LSTM: an LSTM on PTB uses about 200 tokens, and word order only within
the last ~50; they score every target of the split. Here, for ``targets`` positions ``t``
evenly spaced over the validation stream after its first ``prefix`` tokens (the test split
stays read once, by :mod:`rnnbench.diagnostics.evaluate`), the loss of token ``t``:

- full context: everything before ``t``, read in one pass over the stream from a zero state
  at its start with the state carried (batch 1, in chunks): the model's own evaluation of
  the split. It stands as ``k = prefix`` in the grid ("at least ``prefix`` tokens");
- ``truncate`` at ``k < prefix``: only ``t-k .. t-1``, the state zero before them;
- ``shuffle`` at ``k``: for the first ``shuffle_targets`` of an evenly spaced subset, the
  ``prefix`` tokens before ``t`` with the ``prefix - k`` beyond distance ``k`` in a random
  order, per target (order destroyed, content kept), against the same window in order
  (``k = prefix``).

Only the targets need the decoder; the windows of a ``k`` are batched as columns::

    stream   w[0] ...                     w[t-k] ... w[t-1]  w[t]
    full     ------- one pass, state carried ----------->   target     (stream,) -> (targets,)
    truncate                              <--- k rows --->   target     (k, targets)
    shuffle  <-- permuted -->             <--- in order -->  target     (prefix, subset * ks)

The statistics (relative increase, effective context, bootstrap) are
:mod:`rnnbench.diagnostics.context_stats`'. Evaluation only, in the run's own precision (bf16
products for a bf16 run, as it trained and was evaluated; fp32 otherwise). Usage::

    python -m rnnbench.diagnostics.context --run-dir results/runs/ptb/grid/lstm-h300-l1-s1 \\
        --data-dir results/data/ptb --out results/runs/ptb/grid/lstm-h300-l1-s1/context.csv

Cost: the truncation reads ``sum(k < prefix)`` tokens per target (463 for the default grid up
to 200), the shuffle ``prefix`` per target and ``k``; docs/performance.md gives measured times.

Writes ``context.csv`` (one row per ablation and ``k``, columns ``COLUMNS``) and, beside it
unless ``--meta-out`` says otherwise, ``context.json`` (status, effective context with its
bootstrap interval, settings, device, seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rnnbench.diagnostics import cli
from rnnbench.diagnostics.context_stats import (
    ABLATIONS,
    THRESHOLD,
    ContextSettings,
    bootstrap,
    k_grid,
    settings_problem,
)
from rnnbench.diagnostics.evaluate import load_model
from rnnbench.diagnostics.gradients import write_table
from rnnbench.io import read_json, write_json
from rnnbench.model.model import RNNModel
from rnnbench.model.precision import autocast

log = logging.getLogger(__name__)
LABELS = ["run_id", "cell", "hidden", "layers", "seed"]
COLUMNS = [*LABELS, "ablation", "k", "loss", "loss_increase", "ci_low", "ci_high", "full_loss",
           "targets"]
# Floats per fused call's workspace (about 64 MB in fp32): sets the time chunk of a window.
WORKSPACE = 16_000_000
MAX_COLUMNS = 2048  # columns per fused call: big GEMMs, bounded memory


def target_positions(length: int, settings: ContextSettings) -> torch.Tensor:
    """``targets`` distinct positions (targets,) evenly spaced over ``[prefix, length - 1]``."""
    where = f"{length} tokens"
    if problem := settings_problem(settings, length, where):
        raise ValueError(problem)
    return spaced(settings.prefix, length - 1, settings.targets)


def spaced(first: int, last: int, n: int) -> torch.Tensor:
    """``n`` distinct integers (n,) evenly spaced over ``[first, last]`` (``n <= last - first
    + 1``)."""
    return torch.linspace(first, last, n, dtype=torch.float64).floor().long()


def windows(stream: torch.Tensor, positions: torch.Tensor, k: int) -> torch.Tensor:
    """Tokens (k, n): column ``j`` is ``stream[t - k : t]`` for ``t = positions[j]``."""
    offsets = torch.arange(-k, 0, device=stream.device)  # (k,)
    return stream[positions[None, :] + offsets[:, None]]  # (k, n)


def shuffled(stream: torch.Tensor, positions: torch.Tensor, prefix: int, k: int,
             generator: torch.Generator) -> torch.Tensor:
    """Tokens (prefix, n): each column's ``prefix`` window with its first ``prefix - k`` rows
    (the tokens beyond distance ``k``) in a random order of their own."""
    window = windows(stream, positions, prefix)  # (prefix, n)
    far = prefix - k
    if far > 0:
        order = torch.rand(far, window.shape[1], generator=generator).argsort(dim=0)  # (far, n)
        window = torch.cat([window[:far].gather(0, order.to(window.device)), window[far:]])
    return window


def wide(logits: torch.Tensor) -> torch.Tensor:
    """bf16 logits in fp32 for the softmax (as training and evaluation take it); others as
    they are (a float64 model stays exact)."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def last_losses(model: RNNModel, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss (n,) float64 of ``targets`` (n,) after reading ``inputs`` (length, n) from a zero
    state; the recurrence runs in time chunks so its workspace stays near ``WORKSPACE``."""
    out = []
    for cols in range(0, inputs.shape[1], MAX_COLUMNS):
        x = inputs[:, cols:cols + MAX_COLUMNS]  # (length, c)
        width = x.shape[1] * (model.embedding_size + 4 * model.hidden_size)  # per step
        chunk = max(1, WORKSPACE // width)
        hidden = model.init_hidden(x.shape[1])
        for start in range(0, x.shape[0], chunk):
            features, hidden = model.features(x[start:start + chunk], hidden)  # (chunk, c, H)
        logits = model.decoder(features[-1])  # (c, vocab): the last position only
        out.append(F.cross_entropy(wide(logits), targets[cols:cols + MAX_COLUMNS],
                                   reduction="none").double())
    return torch.cat(out)


def stream_losses(model: RNNModel, stream: torch.Tensor, positions: torch.Tensor,
                  chunk: int = 2048) -> torch.Tensor:
    """Loss (n,) float64 of ``stream[t]`` for each ``t`` of ``positions`` (n,), sorted, after
    everything before it: one pass over ``stream`` (batch 1) from a zero state, carried."""
    hidden = model.init_hidden(1)
    wanted = positions - 1  # the step whose output predicts stream[t]
    feats = []
    for start in range(0, int(positions.max()), chunk):
        x = stream[start:min(start + chunk, int(positions.max()))]
        features, hidden = model.features(x.view(-1, 1), hidden)  # (chunk, 1, H)
        here = wanted[(wanted >= start) & (wanted < start + x.shape[0])] - start
        feats.append(features[here, 0])  # (m, H)
    logits = model.decoder(torch.cat(feats))  # (n, vocab)
    return F.cross_entropy(wide(logits), stream[positions], reduction="none").double()


def ablation_losses(model: RNNModel, stream: torch.Tensor, settings: ContextSettings,
                    precision: str | None = None
                    ) -> tuple[list[int], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The grid and, per ablation, the baseline losses (n,) and the ablated ones (K, n); the
    grid's last ``k`` (``prefix``) is the baseline itself: the whole past for ``truncate``,
    the window in order for ``shuffle`` (on its subset of the targets)."""
    positions = target_positions(stream.shape[0], settings).to(stream.device)  # (n,)
    subset = positions[spaced(0, positions.numel() - 1, settings.shuffle_count)]  # (m,)
    ks = k_grid(settings.prefix)
    generator = torch.Generator().manual_seed(settings.seed)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(stream.device, precision):
            full = stream_losses(model, stream, positions)  # (n,)
            truncate = torch.stack([*(last_losses(model, windows(stream, positions, k),
                                                  stream[positions]) for k in ks[:-1]), full])
            in_order = last_losses(model, windows(stream, subset, settings.prefix),
                                   stream[subset])  # (m,)
            # every k below the prefix at once: (prefix, m * (K - 1)) columns, k-major
            mixed = torch.cat([shuffled(stream, subset, settings.prefix, k, generator)
                               for k in ks[:-1]], dim=1)
            shuffle = last_losses(model, mixed, stream[subset].repeat(len(ks) - 1))
            shuffle = torch.cat([shuffle.view(len(ks) - 1, -1), in_order[None]])  # (K, m)
    finally:
        model.train(was_training)
    fulls = {"truncate": full.cpu().numpy(), "shuffle": in_order.cpu().numpy()}
    return ks, fulls, {"truncate": truncate.cpu().numpy(), "shuffle": shuffle.cpu().numpy()}


def summarize(ks: list[int], fulls: dict[str, np.ndarray], ablated: dict[str, np.ndarray],
              settings: ContextSettings) -> tuple[list[dict], dict]:
    """Rows (ablation, k, loss, loss_increase, CI) and the effective contexts of one run."""
    full = fulls["truncate"]
    rows, info = [], {"full_loss": float(full.mean()), "full_ppl": math.exp(full.mean())}
    for name in ABLATIONS:
        base = fulls[name]
        st = bootstrap(base, ablated[name], ks, settings.resamples, settings.seed)
        for i, k in enumerate(ks):
            rows.append({"ablation": name, "k": k, "loss": float(ablated[name][i].mean()),
                         "loss_increase": float(st["increase"][i]),
                         "ci_low": float(st["ci_low"][i]), "ci_high": float(st["ci_high"][i]),
                         "full_loss": float(base.mean()), "targets": base.shape[0]})
        # truncate: the effective context; shuffle: how far back word order matters
        key = "effective_context" if name == "truncate" else "order_context"
        info.update({key: st["effective"], f"{key}_ci_low": st["effective_ci_low"],
                     f"{key}_ci_high": st["effective_ci_high"],
                     f"{key}_censored": st["effective"] >= settings.prefix})
    return rows, info


def measure_run(run_dir: Path, stream: torch.Tensor, settings: ContextSettings, weights: str,
                device: torch.device) -> tuple[list[dict], dict]:
    """context.csv's rows and context.json's content for one run folder."""
    meta = read_json(run_dir / "train.json")
    labels = {"run_id": meta["run_id"], **{k: meta["config"][k] for k in LABELS[1:]}}
    info = {"run_id": meta["run_id"], "train_status": meta["status"], "weights": weights,
            "threshold": THRESHOLD, "ks": k_grid(settings.prefix),
            **dataclasses.asdict(settings)}
    model = load_model(run_dir / "model.pt", weights, device)
    if model is None:
        info.update(status="skipped", reason=f"no {weights} weights in model.pt (run "
                    f"{meta['status']} before any validation)")
        log.warning("run %s: %s", meta["run_id"], info["reason"])
        return [], info
    precision = meta["config"].get("precision")
    info["precision"] = precision or "fp32"
    start = time.perf_counter()
    ks, fulls, ablated = ablation_losses(model.float(), stream.to(device), settings, precision)
    info["seconds"] = time.perf_counter() - start
    if not all(np.isfinite(a).all() for a in (*fulls.values(), *ablated.values())):
        # a loss of inf or NaN is no measurement: no increase, no effective context
        info.update(status="nonfinite", reason="a target's loss is not finite")
        log.warning("run %s: %s", meta["run_id"], info["reason"])
        return [], info
    rows, stats = summarize(ks, fulls, ablated, settings)
    info.update(status="ok", **stats)
    log.info("run %s: full-context loss %.4f (ppl %.1f); effective context %g (95%% CI "
             "%g-%g), word order within %g; %.1f s", meta["run_id"], stats["full_loss"],
             stats["full_ppl"], stats["effective_context"], stats["effective_context_ci_low"],
             stats["effective_context_ci_high"], stats["order_context"], info["seconds"])
    return [{**labels, **r} for r in rows], info


def build_parser() -> argparse.ArgumentParser:
    """Flags: paths, the measurement's settings, the machine."""
    p = cli.parser(__doc__, "context.csv to write")
    p.add_argument("--meta-out", type=Path, help="context.json (default: beside --out)")
    default = ContextSettings()
    for field in dataclasses.fields(ContextSettings):
        p.add_argument(f"--{field.name}", type=int, default=getattr(default, field.name))
    p.add_argument("--weights", choices=("best", "final"), default="best",
                   help="best-validation weights (default) or the final ones, as evaluated")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    settings = ContextSettings(**{f.name: getattr(args, f.name)
                                  for f in dataclasses.fields(ContextSettings)})
    path = args.data_dir / "valid.pt"
    stream = torch.load(path, weights_only=True)  # (tokens,) int64
    if problem := settings_problem(settings, stream.numel(), str(path)):
        raise SystemExit(problem)
    device = cli.open_device(args)
    start = time.perf_counter()
    rows, info = measure_run(args.run_dir, stream, settings, args.weights, device)
    info.update(cli.machine_record(device, start, "rnnbench.diagnostics.context", argv))
    write_table(args.out, rows, COLUMNS)
    write_json(args.meta_out or args.out.with_name("context.json"), info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
