"""Helpers shared by the test modules: the one Snakemake subprocess, the tiny configs and
corpora, the trainer that stops itself. Test modules import from here, never from each other."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rnnbench.config import RunConfig
from rnnbench.training.train import Preempted, Trainer

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "valid", "test")


# Snakemake ---------------------------------------------------------------------------------


def snakemake(workdir: Path, *args: str, configfile: Path | str | None = None,
              env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Snakemake on the repository's Snakefile in ``workdir`` (``--configfile`` first when
    given); its jobs' ``python`` is this interpreter (its folder first on PATH)."""
    config = ["--configfile", str(configfile)] if configfile is not None else []
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           *config, *args]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PATH": path, **(env or {})})


def job_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The job counts of a ``snakemake -n --quiet rules`` (or plain ``-n``) table: rule → n."""
    counts = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) == 2 and words[1].isdigit() and words[0] != "total":
            counts[words[0]] = int(words[1])
    return counts


def run_logged(module: str, args: list[str], log: Path) -> int:
    """Run ``python -m module args > log 2>&1`` as a rule does; the exit status."""
    with log.open("w") as f:
        return subprocess.run([sys.executable, "-m", module, *args], stdout=f,
                              stderr=subprocess.STDOUT, timeout=120).returncode


# Corpora -----------------------------------------------------------------------------------


def write_corpus(folder: Path, vocab: int = 40, lines: tuple[int, int, int] = (300, 40, 40),
                 seed: int = 0) -> dict[str, Path]:
    """Three small text files of random words ``w0..w{vocab-1}``, 3-12 words a line."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in zip(SPLITS, lines, strict=True):
        text = "\n".join(
            " ".join(f"w{rng.randrange(vocab)}" for _ in range(rng.randint(3, 12)))
            for _ in range(n)
        )
        paths[split] = folder / f"{split}.txt"
        paths[split].write_text(text + "\n")
    return paths


def corpus(folder: Path, **texts: bytes | str) -> dict[str, Path]:
    """Three split files in ``folder``; the defaults are small valid texts."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        text = texts.get(split, "the cat sat\non the mat\n")
        paths[split] = folder / f"{split}.txt"
        if isinstance(text, str):
            text = text.encode()
        paths[split].write_bytes(text)
    return paths


def tokenizer_args(paths: dict[str, Path], out: Path) -> list[str]:
    """The tokenizer's command line for ``paths`` into ``out``."""
    return [f"--{s}={p}" for s, p in paths.items()] + ["--out-dir", str(out)]


# Configs -----------------------------------------------------------------------------------


def quick() -> dict:
    """config/quick.yaml as a dict."""
    return yaml.safe_load((ROOT / "config/quick.yaml").read_text())


def write_config(path: Path, config: dict) -> Path:
    """``config`` as YAML at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def quick_cut(path: Path, cells: list[str], hidden: int = 32, **recipe) -> Path:
    """config/quick.yaml cut to ``cells``, one epoch of 2 minibatches, 2 evaluation ones; its
    study is the file's name."""
    cfg = quick()
    cfg["recipes"]["quick"].update({"epochs": 1, "max_batches": 2, "max_eval_batches": 2,
                                    **recipe})
    cfg["experiments"]["quick"].update(cells=cells, hidden=[hidden])
    cfg["study"] = path.stem
    return write_config(path, cfg)


def local_config(path: Path, name: str = "mine", **urls: str) -> Path:
    """config/quick.yaml on a local corpus ``{name}/{split}.txt`` (relative to -d), with
    ``urls`` replacing some splits' url."""
    config = quick()
    config["corpus"] = {"name": name, "max_vocab": None,
                        "files": {s: {"url": urls.get(s, f"{name}/{s}.txt")} for s in SPLITS}}
    config["context"] = False  # a shortened valid split cannot hold the context sample
    return write_config(path, config)


def one_run_config(recipe: dict | None = None, **keys) -> dict:
    """A one-run config (lstm, hidden 8, 4 minibatches) on the local corpus
    ``mine/{split}.txt``; ``recipe`` updates its recipe, ``keys`` its top level."""
    return {
        "corpus": {"name": "mine", "max_vocab": None,
                   "files": {s: {"url": f"mine/{s}.txt"} for s in SPLITS}},
        "context": False,
        "recipes": {"tiny": {"epochs": 1, "lr": 1.0, "batch_size": 4, "bptt": 5,
                             "max_batches": 4, "max_eval_batches": 2, **(recipe or {})}},
        "experiments": {"tiny": {"cells": ["lstm"], "hidden": [8], "layers": [1],
                                 "seeds": [1], "recipe": "tiny"}},
        **keys,
    }


TUNING_SPEC = {"space": {"lr": [0.5, 2.0, 8.0]}, "keep": 0.5,  # no `trials`: the full grid
               "rungs": [{"epochs": 1, "max_batches": 4}, {"epochs": 1, "max_batches": 8}]}


def tuned_config(**tuning) -> dict:
    """quick.yaml as a tuned experiment: two cells at one recurrent budget, two seeds."""
    config = quick()
    config["recipes"]["quick"].update(epochs=1, max_batches=10, max_eval_batches=5)
    config["experiments"] = {"fairtiny": {
        "cells": ["rnn_tanh", "lstm"], "budgets": [3000], "layers": [1], "seeds": [1, 2],
        "recipe": "quick", "tuning": {**TUNING_SPEC, **tuning}}}
    return config


def diverging_config(path: Path, finished: bool) -> Path:
    """config/quick.yaml made to diverge: lr 1e38 without normalising or clipping overflows
    float32 in the first steps (a non-finite loss), 4 minibatches, one epoch; with
    ``finished``, a second experiment of one LSTM on a sane recipe that finishes."""
    cfg = quick()
    tiny = {**cfg["recipes"]["quick"], "epochs": 1, "max_batches": 4, "max_eval_batches": 2}
    cfg["recipes"] = {"boom": {**tiny, "lr": 1.0e38, "grad": "none"}}
    cfg["experiments"] = {"boom": {**cfg["experiments"]["quick"], "recipe": "boom",
                                   "cells": ["rnn_tanh", "rnn_relu", "lstm"]}}
    if finished:
        cfg["recipes"]["fine"] = tiny
        cfg["experiments"]["fine"] = {**cfg["experiments"]["boom"], "recipe": "fine",
                                      "cells": ["lstm"]}
    return write_config(path, cfg)


# Training ----------------------------------------------------------------------------------


def tiny_run_config(**kw) -> RunConfig:
    """A two-layer LSTM RunConfig small enough to train in well under a second."""
    base = dict(cell="lstm", hidden=16, layers=2, seed=3, epochs=2, lr=1.0, decay_start=1,
                decay_factor=2.0, batch_size=4, bptt=10, dropout=0.2, device="cpu")
    return RunConfig(**{**base, **kw})


class StopAfter(Trainer):
    """A Trainer that receives SIGTERM (as a flag) after ``stop_after`` steps."""

    def __init__(self, *args, stop_after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.stop_after = 0, stop_after

    def _checkpoint_due(self) -> bool:
        self.calls += 1
        if self.calls >= self.stop_after:
            self.stop_signal = signal.SIGTERM
        return False


def train_to_end(cfg: RunConfig, data: Path, ckpt: Path, stops: tuple[int, ...] = ()) -> Trainer:
    """Train to the end, preempted after each number of steps in ``stops``."""
    for n in stops:
        with pytest.raises(Preempted):
            StopAfter(cfg, data, ckpt, torch.device("cpu"), stop_after=n).run()
        assert ckpt.exists()
    trainer = Trainer(cfg, data, ckpt, torch.device("cpu"))
    assert trainer.run() == "ok"
    return trainer
