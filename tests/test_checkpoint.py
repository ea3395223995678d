"""Checkpoints: matched to their run by config *and* data, unreadable ones set aside, one trainer
per run (real processes holding a real lock), and a full disk said in one line."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import StopAfter, write_corpus

from rnnbench.config import RunConfig
from rnnbench.data.tokenizer import main as tokenize_main
from rnnbench.training.checkpoint import lock_path
from rnnbench.training.train import Preempted, Trainer

CPU = torch.device("cpu")


# tiny models on one thread: fast, and immune to a busy second core (conftest.one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> RunConfig:
    base = dict(cell="gru", hidden=12, layers=1, seed=2, epochs=2, lr=1.0, batch_size=4,
                bptt=10, device="cpu")
    return RunConfig(**{**base, **kw})


def tokenized(folder: Path, seed: int = 0, max_vocab: int | None = None) -> Path:
    """A tokenized tiny corpus: the conftest one for seed 0, other text for other seeds."""
    paths = write_corpus(folder / "raw", seed=seed)
    extra = [] if max_vocab is None else ["--max-vocab", str(max_vocab)]
    assert tokenize_main(["--train", str(paths["train"]), "--valid", str(paths["valid"]),
                          "--test", str(paths["test"]), "--out-dir", str(folder / "data"),
                          *extra]) == 0
    return folder / "data"


def preempted_checkpoint(cfg: RunConfig, data: Path, ckpt: Path, steps: int = 7) -> None:
    """Leave a mid-epoch checkpoint of ``cfg`` on ``data`` at ``ckpt``."""
    with pytest.raises(Preempted):
        StopAfter(cfg, data, ckpt, CPU, stop_after=steps).run()
    assert ckpt.exists()


def history(trainer: Trainer) -> pd.DataFrame:
    return pd.DataFrame(trainer.state.history).drop(columns=["seconds", "tokens_per_s"])


def test_checkpoint_of_other_data_is_set_aside_not_resumed(tiny_data, tmp_path, caplog):
    cfg, ckpt = tiny_config(), tmp_path / "run.pt"
    other = tokenized(tmp_path / "other", seed=1)  # same vocabulary size, other text
    assert len((other / "vocab.txt").read_text().splitlines()) == \
        len((tiny_data / "vocab.txt").read_text().splitlines())
    preempted_checkpoint(cfg, tiny_data, ckpt)
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg, other, ckpt, CPU)
    assert (trainer.state.resumes, trainer.state.epoch, trainer.state.batch) == (0, 0, 0)
    assert not ckpt.exists() and (tmp_path / "run.pt.stale").exists()
    [line] = [r.getMessage() for r in caplog.records if "belongs to another run" in r.message]
    assert str(ckpt) in line and "train.pt" in line and "run.pt.stale" in line
    assert trainer.run() == "ok"
    clean = Trainer(cfg, other, tmp_path / "clean.pt", CPU)
    clean.run()
    pd.testing.assert_frame_equal(history(trainer), history(clean), check_exact=True)


def test_checkpoint_of_another_max_vocab_starts_afresh_without_a_size_mismatch(tiny_data,
                                                                               tmp_path, caplog):
    cfg, ckpt = tiny_config(), tmp_path / "run.pt"
    smaller = tokenized(tmp_path / "v20", seed=0, max_vocab=20)  # the same text, 20 words
    preempted_checkpoint(cfg, tiny_data, ckpt)
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg, smaller, ckpt, CPU)
    assert trainer.vocab_size == 20 and trainer.state.resumes == 0
    assert "vocab.txt" in caplog.text and "max_vocab" in caplog.text


def test_checkpoint_of_another_config_is_set_aside(tiny_data, tmp_path, caplog):
    ckpt = tmp_path / "run.pt"
    preempted_checkpoint(tiny_config(), tiny_data, ckpt)
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(tiny_config(lr=0.5), tiny_data, ckpt, CPU)
    assert trainer.state.resumes == 0 and (tmp_path / "run.pt.stale").exists()
    assert "lr 1.0 (checkpoint) vs 0.5 (run)" in caplog.text


def test_matching_checkpoint_still_resumes(tiny_data, tmp_path):
    cfg, ckpt = tiny_config(), tmp_path / "run.pt"
    preempted_checkpoint(cfg, tiny_data, ckpt)
    copy = tmp_path / "copy"  # the same files in another folder: same checksums
    shutil.copytree(tiny_data, copy)
    trainer = Trainer(cfg, copy, ckpt, CPU)
    assert trainer.state.resumes == 1 and trainer.state.batch > 0


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_unreadable_checkpoint_is_named_moved_aside_and_training_starts_afresh(
        tiny_data, tmp_path, caplog, damage):
    cfg, ckpt = tiny_config(), tmp_path / "run.pt"
    preempted_checkpoint(cfg, tiny_data, ckpt)
    blob = ckpt.read_bytes()
    ckpt.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg, tiny_data, ckpt, CPU)
    assert trainer.state.resumes == 0 and trainer.state.batch == 0
    assert not ckpt.exists() and (tmp_path / "run.pt.corrupt").exists()
    [line] = [r.getMessage() for r in caplog.records if "unreadable" in r.message]
    assert str(ckpt) in line and "starting afresh" in line


@pytest.mark.parametrize("dropped", ["data", "wall_seconds", "stopped"])
def test_checkpoint_of_an_older_rnnbench_is_set_aside_not_resumed_in_part(
        tiny_data, tmp_path, caplog, dropped):
    cfg, ckpt = tiny_config(), tmp_path / "run.pt"
    preempted_checkpoint(cfg, tiny_data, ckpt)
    blob = torch.load(ckpt, weights_only=True)
    del blob[dropped]
    torch.save(blob, ckpt)
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg, tiny_data, ckpt, CPU)
    assert trainer.state.resumes == 0 and trainer.state.batch == 0
    assert (tmp_path / "run.pt.corrupt").exists()
    [line] = [r.getMessage() for r in caplog.records if "unreadable" in r.message]
    assert f"no {dropped}" in line and "older rnnbench" in line


def _train_cmd(data: Path, run_dir: Path, ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnnbench.training.train", "--cell", "gru", "--hidden", "24",
            "--layers", "2", "--dropout", "0.1", "--epochs", "3", "--batch-size", "4",
            "--bptt", "10", "--device", "cpu", "--data-dir", str(data), "--run-dir",
            str(run_dir), "--checkpoint", str(ckpt), "--threads", "1", *extra]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def test_second_trainer_of_a_run_exits_at_once_naming_the_holder(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt" / "run.pt"
    first = subprocess.Popen(_train_cmd(tiny_data, tmp_path / "run", ckpt, "--epochs", "50"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ckpt, first)  # the lock is taken before the first checkpoint
        started = time.monotonic()
        second = subprocess.run(_train_cmd(tiny_data, tmp_path / "run", ckpt, "--epochs", "50"),
                                capture_output=True, text=True, timeout=120)
        assert time.monotonic() - started < 30  # at once, no waiting for the holder
        assert second.returncode == 1
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
        assert "another trainer of this run" in second.stderr and "Traceback" not in second.stderr
        assert str(lock_path(ckpt)) in second.stderr
        assert "resuming from" not in second.stderr  # it never read the checkpoint
        assert first.poll() is None  # the holder trains on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 75
    assert not lock_path(ckpt).exists()  # released (and removed) by its holder


def test_lock_of_a_killed_trainer_is_free_and_the_run_resumes(tiny_data, tmp_path):
    ckpt = tmp_path / "run.pt"
    cmd = _train_cmd(tiny_data, tmp_path / "run", ckpt)
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(ckpt, first)
    first.kill()  # kill -9: no cleanup, the lock file stays; the kernel drops the lock
    first.wait()
    assert lock_path(ckpt).exists()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and not lock_path(ckpt).exists()


def fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system up to ``leave`` free bytes."""
    with open(folder / "filler", "wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(shutil.disk_usage(folder).free - leave, 0))
    assert shutil.disk_usage(folder).free <= leave + 4096


def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_one(tiny_data,
                                                                               tmp_path,
                                                                               small_fs):
    probe = tmp_path / "probe.pt"  # the size of the first checkpoint (after one minibatch)
    preempted_checkpoint(tiny_config(hidden=24, layers=2, dropout=0.1, epochs=3), tiny_data,
                         probe, steps=1)
    size = probe.stat().st_size
    fill(small_fs, size * 3 // 2)  # room for the first checkpoint, not for a second beside it
    ckpt = small_fs / "run.pt"
    done = subprocess.run(_train_cmd(tiny_data, tmp_path / "run", ckpt,
                                     "--checkpoint-interval", "0"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"no space left on device: {ckpt}"), done.stderr
    assert "Traceback" not in done.stderr and "basic_ios" not in done.stderr
    kept = torch.load(ckpt, weights_only=True)  # the previous checkpoint, intact
    assert (kept["epoch"], kept["batch"]) == (0, 1)
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler", "run.pt"]  # no temp file
    assert not (tmp_path / "run").exists()
    os.unlink(small_fs / "filler")  # space again: the rerun resumes it
    again = subprocess.run(_train_cmd(tiny_data, tmp_path / "run", ckpt), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr
