"""Perplexity of a trained run's best-validation (or, with ``--weights final``, final) weights on
valid and test.

The whole stream is read in ``batch_size`` columns, ``bptt`` rows at a time, with the hidden
state carried; perplexity is exp of the token-weighted mean cross-entropy. With
``--stream-test`` the test set is also read as one stream (one column: every token but the
first is predicted with the whole preceding test text as context), the protocol of Zaremba et
al.'s code and the TensorFlow PTB tutorial, recorded as ``test_stream_ppl``. Usage::

    python -m rnnbench.evaluate --run-dir results/runs/grid/lstm-h300-l1-s1 \\
        --data-dir results/data/ptb --out results/runs/grid/lstm-h300-l1-s1/eval.json
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import torch

from rnnbench.data import batchify, get_batch, num_batches
from rnnbench.io import read_json, write_json
from rnnbench.losses import loss_sum
from rnnbench.model import RNNModel

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(
    model: RNNModel,
    data: torch.Tensor,
    bptt: int,
    impl: str = "fused",
    max_batches: int | None = None,
) -> tuple[float, int]:
    """Mean cross-entropy (nats/token) over ``data`` (rows, batch) and the token count."""
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    tokens = 0
    n = num_batches(data, bptt)
    n = n if max_batches is None else min(n, max_batches)
    for b in range(n):
        x, y = get_batch(data, b * bptt, bptt)
        out, hidden = model.features(x, hidden)
        total += loss_sum(model.decoder, out, y, impl).double()
        tokens += y.numel()
    return total.item() / max(tokens, 1), tokens


def perplexity(mean_loss: float) -> float:
    """exp(mean loss), inf when it overflows."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def load_model(path: str | Path, which: str = "best", device: str = "cpu") -> RNNModel | None:
    """The run's model with its ``best`` (best-validation), ``final`` or ``init`` weights; None
    if absent.

    A model.pt written before final weights were kept has none; when the run's best epoch was its
    last (train.json beside it), the final weights *are* the best ones and those are used.
    """
    from rnnbench.config import RunConfig

    blob = torch.load(path, map_location=device, weights_only=True)
    state = blob.get(f"{which}_state")
    if which == "final" and "final_state" not in blob:
        meta = read_json(Path(path).parent / "train.json")
        if meta["status"] == "ok" and meta["best_epoch"] == meta["epochs_done"] - 1:
            state = blob["best_state"]  # the last epoch was the best: the same weights
        else:
            raise SystemExit(
                f"{path} keeps no final weights (written by an older rnnbench) and its best "
                f"epoch {meta['best_epoch']} is not its last ({meta['epochs_done'] - 1}), so "
                "they cannot be recovered: retrain the run, or evaluate its best weights "
                "(`eval_weights: best`).")
    if state is None:
        return None
    cfg = RunConfig.from_dict(blob["config"])
    model = build_model(cfg, blob["vocab_size"]).to(device)
    model.load_state_dict(state)
    return model


def build_model(cfg, vocab_size: int) -> RNNModel:
    """The RNNModel a RunConfig describes (initialised with the global RNG)."""
    return RNNModel(cfg.cell, vocab_size, cfg.hidden, cfg.layers, cfg.embedding_size,
                    cfg.dropout, cfg.init, cfg.init_scale)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from rnnbench.config import RunConfig
    from rnnbench.train import pick_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", choices=("best", "final"), default="best",
                        help="best-validation weights (default) or the final ones")
    parser.add_argument("--stream-test", action="store_true",
                        help="also evaluate the test set as one stream (batch 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from rnnbench.gpus import claim_gpu

    claim_gpu(args.device)  # a GPU (slot) of its own before CUDA starts, as in training
    device = pick_device(args.device)
    meta = read_json(args.run_dir / "train.json")
    cfg = RunConfig.from_dict(meta["config"])
    result = {"run_id": meta["run_id"], "status": meta["status"], "device": str(device),
              "weights": args.weights}
    model = load_model(args.run_dir / "model.pt", args.weights, device)
    if model is None:
        log.warning("run %s has no %s weights (status %s)", meta["run_id"], args.weights,
                    meta["status"])
        result.update(valid_loss=math.nan, valid_ppl=math.nan, test_loss=math.nan,
                      test_ppl=math.nan)
    start = time.perf_counter()
    for split in ("valid", "test") if model is not None else ():
        stream = torch.load(args.data_dir / f"{split}.pt", weights_only=True)
        data = batchify(stream, cfg.batch_size).to(device)
        loss, tokens = evaluate(model, data, cfg.bptt, cfg.loss_impl, cfg.max_eval_batches)
        result.update({f"{split}_loss": loss, f"{split}_ppl": perplexity(loss),
                       f"{split}_tokens": tokens})
        log.info("%s: loss %.4f  ppl %.2f  (%d tokens)", split, loss, perplexity(loss), tokens)
    if args.stream_test and model is not None:
        stream = torch.load(args.data_dir / "test.pt", weights_only=True)
        data = batchify(stream, 1).to(device)  # (tokens, 1)
        loss, tokens = evaluate(model, data, cfg.bptt, cfg.loss_impl, cfg.max_eval_batches)
        result.update(test_stream_loss=loss, test_stream_ppl=perplexity(loss),
                      test_stream_tokens=tokens)
        log.info("test as one stream: loss %.4f  ppl %.2f  (%d tokens)", loss,
                 perplexity(loss), tokens)
    result["eval_seconds"] = time.perf_counter() - start
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
