"""The records a training run leaves: its environment, and the train_model rule's outputs
(tables, weights and ``train.json``), each written atomically."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rnnbench import __version__
from rnnbench.io import write_atomic, write_json
from rnnbench.training.metrics import grad_norm_stats, write_rows, write_steps
from rnnbench.training.provenance import code_changes, code_sha256, code_version, cpu_model

if TYPE_CHECKING:  # only for the annotation: rnnbench.training.train imports this module
    from rnnbench.training.train import Trainer


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
        # what `+dirty` means for training (files under src/) and the code that ran (publish)
        "code_changes": code_changes(), "code_sha256": code_sha256(),
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    return env


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
        # why training ended (rnnbench.training.schedule.STOPPED), and how often the lr fell
        "stopped": "diverged" if status == "diverged" else st.stopped or "max_epochs",
        "lr_decays": sum(b["lr"] < a["lr"]
                         for a, b in zip(st.history, st.history[1:], strict=False)),
        # total = embedding + decoder (which dominate on a 10k vocabulary) + recurrent
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "embedding_decoder_params": sum(
            p.numel() for m in (trainer.model.encoder, trainer.model.decoder)
            for p in m.parameters()),
        "recurrent_params": sum(p.numel() for p in trainer.model.rnn.parameters()),
        # wall time of every process that trained it (to each one's last checkpoint), and
        # the training time alone (validation and start-up excluded), summed over epochs
        "wall_seconds": None if math.isnan(wall := trainer.wall_seconds()) else wall,
        "resumes": st.resumes, "vocab_size": trainer.vocab_size,
        "precision": cfg.precision_name,  # of the products (rnnbench.model.precision)
        # the data it trained on (also the checkpoint's identity)
        "corpus": trainer.corpus, "data_sha256": trainer.data_sha256,
        "train_seconds": sum(r["seconds"] for r in st.history),
        # global gradient norm over every step of the run (before normalisation/clipping)
        **{f"grad_norm_{k}": v for k, v in grad_norm_stats(every_step).items()
           if k in ("p50", "p90", "p99", "max")},
        "config": cfg.to_dict(), "command": command, **env,
    })
