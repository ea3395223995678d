"""Perplexity of a trained run's best-validation (or, with ``--weights final``, final) weights on
valid and test.

The whole stream is read in ``batch_size`` columns, ``bptt`` rows at a time, with the hidden
state carried; perplexity is exp of the token-weighted mean cross-entropy. With
``--stream-test`` the test set is also read as one stream (one column: every token but the
first is predicted with the whole preceding test text as context), the protocol of Zaremba et
al.'s code and the TensorFlow PTB tutorial, recorded as ``test_stream_ppl``. Each split's
``{split}_tokens`` (scored) and ``{split}_tokens_total`` (a full pass: every row but the
first) are recorded, and ``eval_capped`` says whether ``max_eval_batches`` scored fewer.
A split too short for one row of targets is refused: no perplexity over zero tokens. A run
whose validation or test loss is not finite, or so large that its perplexity overflows
(above ~709.8 nats), is no result: its ``status`` becomes ``diverged`` with ``diverged_split``
naming the split, never ``ok``, and the undefined perplexity is written as null. Usage::

    python -m rnnbench.diagnostics.evaluate --run-dir results/runs/grid/lstm-h300-l1-s1 \\
        --data-dir results/data/ptb --out results/runs/grid/lstm-h300-l1-s1/eval.json
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import torch

from rnnbench.data.batching import batchify
from rnnbench.data.streams import stream_errors
from rnnbench.diagnostics import cli
from rnnbench.io import DiskFullError, read_json, write_json
from rnnbench.model.losses import NoTokens, evaluate, full_pass_tokens, perplexity
from rnnbench.model.model import RNNModel, build_model

log = logging.getLogger(__name__)


def load_model(path: str | Path, which: str = "best", device: str = "cpu") -> RNNModel | None:
    """The run's model with its ``best`` (best-validation), ``final`` or ``init`` weights; None
    if absent (a diverged run keeps no final weights)."""
    from rnnbench.config import RunConfig

    blob = torch.load(path, map_location=device, weights_only=True)
    state = blob.get(f"{which}_state")
    if state is None:
        return None
    cfg = RunConfig.from_dict(blob["config"])
    model = build_model(cfg, blob["vocab_size"]).to(device)
    model.load_state_dict(state)
    return model


def too_short(cfg, streams: dict[str, torch.Tensor], data_dir: Path) -> str | None:
    """One paragraph on the splits too short for a perplexity at this batch_size, or None."""
    problems = stream_errors(cfg, {k: v.numel() for k, v in streams.items()}, data_dir.name)
    if not problems:
        return None
    return (f"cannot evaluate: {'; '.join(problems)}, so its perplexity would be a mean over no "
            f"tokens. Lower batch_size ({cfg.batch_size}) in the config's recipe, or give "
            f"longer splits (the files in {data_dir}).")


def score(model: RNNModel, data: torch.Tensor, cfg, key: str, path: Path) -> dict:
    """``{key}_loss``, ``_ppl``, ``_tokens`` (scored) and ``_tokens_total`` (a full pass)."""
    try:
        loss, tokens = evaluate(model, data, cfg.bptt, cfg.loss_impl, cfg.max_eval_batches,
                                cfg.precision)
    except NoTokens as err:
        raise SystemExit(f"cannot evaluate {key} ({path}): {err}; no perplexity is reported "
                         "over zero tokens. Give a longer split or a smaller batch_size.") from err
    total = full_pass_tokens(data)
    log.info("%s: loss %.4f  ppl %.2f  (%d of %d tokens)", key, loss, perplexity(loss), tokens,
             total)
    return {f"{key}_loss": loss, f"{key}_ppl": perplexity(loss), f"{key}_tokens": tokens,
            f"{key}_tokens_total": total}


def undefined_split(result: dict, keys: list[str]) -> str | None:
    """The first scored split whose loss or perplexity is not a finite number, or None."""
    for key in keys:
        if not (math.isfinite(result[f"{key}_loss"]) and math.isfinite(result[f"{key}_ppl"])):
            return key
    return None


def mark_undefined(result: dict, keys: list[str]) -> None:
    """Make a run with an undefined perplexity ``diverged`` (naming the split), never ok."""
    split = undefined_split(result, keys)
    if split is None or result["status"] != "ok":
        return
    result.update(status="diverged", diverged_split=split)
    log.error("%s loss %.4g nats: its perplexity is not a finite number (exp overflows above "
              "~709.8 nats), so run %s is marked diverged, not ok, and left out of the means",
              split, result[f"{split}_loss"], result["run_id"])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from rnnbench.config import RunConfig

    parser = cli.parser(__doc__, "eval.json to write")
    parser.add_argument("--weights", choices=("best", "final"), default="best",
                        help="best-validation weights (default) or the final ones")
    parser.add_argument("--stream-test", action="store_true",
                        help="also evaluate the test set as one stream (batch 1)")
    args = parser.parse_args(argv)
    device = cli.open_device(args)
    meta = read_json(args.run_dir / "train.json")
    cfg = RunConfig.from_dict(meta["config"])
    paths = {split: args.data_dir / f"{split}.pt" for split in ("valid", "test")}
    streams = {split: torch.load(path, weights_only=True) for split, path in paths.items()}
    if message := too_short(cfg, streams, args.data_dir):
        raise SystemExit(message)
    result = {"run_id": meta["run_id"], "status": meta["status"], "device": str(device),
              "weights": args.weights}
    model = load_model(args.run_dir / "model.pt", args.weights, device)
    if model is None and meta["status"] == "ok":
        raise SystemExit(
            f"{args.run_dir / 'model.pt'} keeps no {args.weights} weights although the run "
            "finished ok (a model.pt written by an older rnnbench): retrain the run (delete its "
            "folder and run the same command).")
    if model is None:
        log.warning("run %s has no %s weights (status %s)", meta["run_id"], args.weights,
                    meta["status"])
        result.update(valid_loss=math.nan, valid_ppl=math.nan, test_loss=math.nan,
                      test_ppl=math.nan)
    start = time.perf_counter()
    keys = []
    for split in ("valid", "test") if model is not None else ():
        data = batchify(streams[split], cfg.batch_size).to(device)  # (rows, batch)
        result.update(score(model, data, cfg, split, paths[split]))
        keys.append(split)
    if args.stream_test and model is not None:
        data = batchify(streams["test"], 1).to(device)  # (tokens, 1)
        result.update(score(model, data, cfg, "test_stream", paths["test"]))
        keys.append("test_stream")
    mark_undefined(result, keys)
    # max_eval_batches scores only the first minibatches: say so beside the perplexities
    result["eval_capped"] = any(result[f"{k}_tokens"] < result[f"{k}_tokens_total"]
                                for k in keys)
    result["eval_seconds"] = time.perf_counter() - start
    try:
        write_json(args.out, result)
    except DiskFullError as err:
        raise SystemExit(str(err)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
