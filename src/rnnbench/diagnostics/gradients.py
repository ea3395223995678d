"""Gradient through time of one run, trained (best-valid weights) and at initialisation.

For each kind of weights, ``||dl_t/dh_{t-k}||`` for lags ``k = 0..max_lag`` per layer and state
(``h``; ``c`` too for the LSTM), averaged over held-out windows and their columns (see
:mod:`rnnbench.diagnostics.gradtime` for the window layout and the averages), and the fitted
decay rate per step: the least-squares slope of the mean log norm against the lag (Pascanu et al.
2013, §2).
Usage::

    python -m rnnbench.diagnostics.gradients --run-dir results/runs/grid/lstm-h300-l1-s1 \\
        --data-dir results/data/ptb --out results/runs/grid/lstm-h300-l1-s1/gradients.csv

Writes, each atomically (the last two beside ``--out`` unless ``--decay-out`` and
``--meta-out`` say otherwise):

- ``gradients.csv``: one row per (kind, layer, state, lag), columns ``GRAD_COLUMNS``;
- ``decay.csv``: one row per (kind, layer, state), columns ``DECAY_COLUMNS``;
- ``gradients.json``: what was measured or skipped and why, the settings, device, seconds.

Windows are the same for every run: ``windows * batch`` evenly spaced starts over the
held-out (valid) stream, not overlapping on PTB (by default 40 columns of 137 tokens of
73,760). A fixed ``batch`` rather than the run's ``batch_size`` keeps them identical across
recipes; columns never interact, so it only sets how many are computed at once. 40 columns
are plenty for the decay rate: on the quick runs the rate of single 20-column windows varies
by a standard deviation of about 0.001 per step, against rates of -0.2 to -3.
Computing in float64 costs about twice float32 on a CPU but moves the log floor from -87 to
-708: a trained tanh RNN of the quick config decays by 3.1 per step, so in float32 its norm
would underflow after some 28 steps. Cost of the whole command on one CPU core (CPU time,
both kinds, about 1.3 s of imports included): 1.5 s at hidden 32, 1.6-2.5 s at 150 and
2.5-12 s at 650, the most for a two-layer LSTM.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging
import math
import sys
import time
from pathlib import Path

import torch

from rnnbench.diagnostics import cli
from rnnbench.diagnostics.evaluate import load_model
from rnnbench.diagnostics.gradtime import (
    decay_rate,
    gradient_through_time,
    sample_windows,
    window_length,
)
from rnnbench.io import read_json, write_json, write_text
from rnnbench.model.model import RNNModel
from rnnbench.model.precision import autocast

log = logging.getLogger(__name__)
# kind of weights -> what load_model calls them; trained first, the run's headline number.
KINDS = {"trained": "best", "init": "init"}
LABELS = ["run_id", "cell", "hidden", "layers", "seed"]
GRAD_COLUMNS = [*LABELS, "kind", "layer", "state", "lag", "grad_norm", "log_grad_norm",
                "frac_floored"]
DECAY_COLUMNS = [*LABELS, "kind", "layer", "state", "decay_rate", "per_step_factor",
                 "min_lag", "max_lag", "lags_fitted"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What is measured: lags 0..max_lag on windows x batch held-out columns."""

    max_lag: int = 100  # K: well past the training bptt of 35
    windows: int = 2
    batch: int = 20  # columns per window, the same for every run
    warmup: int = 35  # tokens run without gradient first, so the state is not all zeros
    dtype: str = "float64"


def held_out_windows(stream: torch.Tensor, max_lag: int, warmup: int, windows: int,
                     batch: int) -> torch.Tensor:
    """Deterministic windows (windows, length, batch): evenly spaced starts over ``stream``."""
    return sample_windows(stream, batch, window_length(max_lag, warmup), windows)


def decay_rows(records: list[dict], min_lag: int = 1) -> list[dict]:
    """Fitted decay rate per (layer, state) over lags ``>= min_lag`` of one kind's records.

    A lag enters the fit only when none of its norms hit the log floor (an exact zero or an
    underflow) and its mean log norm is finite; with fewer than two such lags the rate is NaN.
    """
    curves: dict[tuple[int, str], list[dict]] = {}
    for r in records:
        curves.setdefault((r["layer"], r["state"]), []).append(r)
    rows = []
    for (layer, state), curve in curves.items():
        usable = [r for r in curve if r["lag"] >= min_lag and r["frac_floored"] == 0
                  and math.isfinite(r["log_grad_norm"])]
        lags = [r["lag"] for r in usable]
        rate = decay_rate(lags, [r["log_grad_norm"] for r in usable]) if len(lags) > 1 \
            else math.nan
        rows.append({"layer": layer, "state": state, "decay_rate": rate,
                     "per_step_factor": math.exp(rate) if math.isfinite(rate) else math.nan,
                     "min_lag": min(lags, default=None), "max_lag": max(lags, default=None),
                     "lags_fitted": len(lags)})
    return rows


def measure(model: RNNModel, windows: torch.Tensor, max_lag: int, warmup: int,
            dtype: torch.dtype, precision: str | None = None) -> list[dict]:
    """:func:`gradient_through_time` records of ``model`` cast to ``dtype``; a bf16 run's in its
    own precision instead: fp32 weights, bf16 products (autocast leaves float64 alone, and
    bf16's exponent is fp32's, so float64 would move no floor)."""
    if precision is None:
        return gradient_through_time(model.to(dtype), windows, max_lag, warmup)
    with autocast(windows.device, precision):
        return gradient_through_time(model.float(), windows, max_lag, warmup)


def measure_run(run_dir: Path, stream: torch.Tensor, settings: Settings,
                device: torch.device) -> tuple[list[dict], list[dict], dict]:
    """Gradient rows, decay rows and the metadata of one run folder."""
    meta = read_json(run_dir / "train.json")
    cfg = meta["config"]
    labels = {"run_id": meta["run_id"], **{k: cfg[k] for k in LABELS[1:]}}
    s = settings
    windows = held_out_windows(stream, s.max_lag, s.warmup, s.windows, s.batch)
    grads, decays = [], []
    info = {"run_id": meta["run_id"], "train_status": meta["status"],
            "diverged_step": meta.get("diverged_step"), "measured": [],
            "skipped": {}, "seconds": {}}
    for kind, which in KINDS.items():
        model = load_model(run_dir / "model.pt", which, device)
        if model is None:
            step = meta.get("diverged_step")
            reason = (f"no {which} weights in model.pt (run {meta['status']}"
                      + (f" at step {step}" if step is not None else "")
                      + " before any validation)")
            log.warning("run %s: skipping %s: %s", meta["run_id"], kind, reason)
            info["skipped"][kind] = reason
            continue
        start = time.perf_counter()
        records = measure(model, windows, s.max_lag, s.warmup, DTYPES[s.dtype],
                          cfg.get("precision"))
        info["seconds"][kind] = time.perf_counter() - start
        info["measured"].append(kind)
        grads += [{**labels, "kind": kind, **r} for r in records]
        fits = decay_rows(records)
        decays += [{**labels, "kind": kind, **r} for r in fits]
        log.info("run %s %s: %.2f s; decay per step %s", meta["run_id"], kind,
                 info["seconds"][kind],
                 ", ".join(f"l{d['layer']}.{d['state']} {d['decay_rate']:.4f}" for d in fits))
    info["status"] = "ok" if not info["skipped"] else "partial"
    info["precision"] = cfg.get("precision") or s.dtype
    info.update(dataclasses.asdict(s), num_columns=s.windows * s.batch)
    return grads, decays, info


def write_table(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Rows as CSV with the given columns (floats to 10 significant digits), atomically."""
    def cell(v):
        return f"{v:.10g}" if isinstance(v, float) else ("" if v is None else v)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(r[c]) for c in columns] for r in rows)
    write_text(path, buf.getvalue())


def build_parser() -> argparse.ArgumentParser:
    """Flags: paths, the measurement's settings, the machine."""
    p = cli.parser(__doc__, "gradients.csv to write")
    p.add_argument("--decay-out", type=Path, help="decay.csv (default: beside --out)")
    p.add_argument("--meta-out", type=Path, help="gradients.json (default: beside --out)")
    default = Settings()
    p.add_argument("--max-lag", type=int, default=default.max_lag, help="largest lag K")
    p.add_argument("--windows", type=int, default=default.windows,
                   help="windows of --batch columns each")
    p.add_argument("--batch", type=int, default=default.batch, help="columns per window")
    p.add_argument("--warmup", type=int, default=default.warmup,
                   help="tokens run without gradient before each window")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=default.dtype)
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    device = cli.open_device(args)
    stream = torch.load(args.data_dir / "valid.pt", weights_only=True)  # (tokens,) int64
    start = time.perf_counter()
    settings = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
    grads, decays, info = measure_run(args.run_dir, stream, settings, device)
    info.update(cli.machine_record(device, start, "rnnbench.diagnostics.gradients", argv))
    write_table(args.out, grads, GRAD_COLUMNS)
    write_table(args.decay_out or args.out.with_name("decay.csv"), decays, DECAY_COLUMNS)
    write_json(args.meta_out or args.out.with_name("gradients.json"), info)
    log.info("run %s: %s (%s) in %.1f s -> %s", info["run_id"], info["status"],
             ", ".join(info["measured"]) or "nothing measured", info["wall_seconds"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
