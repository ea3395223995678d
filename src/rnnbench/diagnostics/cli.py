"""What the measurement commands (``evaluate``, ``gradients``, ``context``) share: the flags of
the run, the corpus, the output and the machine; the device they measure on; and the
machine's record beside each measurement."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import torch


def parser(doc: str, out_help: str) -> argparse.ArgumentParser:
    """A measurement's parser (description: the first line of ``doc``) with the shared flags."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--run-dir", required=True, type=Path, help="a training run's folder")
    p.add_argument("--data-dir", required=True, type=Path,
                   help="tokenized corpus (valid.pt, test.pt)")
    p.add_argument("--out", required=True, type=Path, help=out_help)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (as in training)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return p


def open_device(args: argparse.Namespace) -> torch.device:
    """Logging, torch's CPU threads and the device to measure on, with a GPU (slot) of its
    own claimed before CUDA starts, as in training."""
    from rnnbench.training.gpus import claim_gpu, pick_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    claim_gpu(args.device)
    return pick_device(args.device)


def machine_record(device: torch.device, start: float, module: str,
                   argv: list[str] | None) -> dict:
    """Where and how a measurement ran: device, threads, torch, seconds since ``start``
    (time.perf_counter) and the command that reruns it."""
    return {"device": device.type, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "wall_seconds": time.perf_counter() - start,
            "command": shlex.join(["python", "-m", module,
                                   *(sys.argv[1:] if argv is None else argv)])}
