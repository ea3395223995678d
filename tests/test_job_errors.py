"""Every rule's failure shows its error paragraph on the terminal (issue #32 f): the job's own
reason under the failed job, not only ``CalledProcessError ... check log``
(``python -m rnnbench.io LOG -- COMMAND``)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import write_corpus

from rnnbench.io import error_paragraph, run_logged

ROOT = Path(__file__).resolve().parents[1]
RUN = "results/runs/mine/tiny/lstm-h8-l1-s1"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--cores", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def config(path: Path, **keys) -> str:
    """A one-run config on the local corpus ``mine/{split}.txt``."""
    path.write_text(yaml.safe_dump({
        "corpus": {"name": "mine", "max_vocab": None,
                   "files": {s: {"url": f"mine/{s}.txt"} for s in ("train", "valid", "test")}},
        "context": False,
        "recipes": {"tiny": {"epochs": 1, "lr": 1.0, "batch_size": 4, "bptt": 5,
                             "max_batches": 4, "max_eval_batches": 2}},
        "experiments": {"tiny": {"cells": ["lstm"], "hidden": [8], "layers": [1],
                                 "seeds": [1], "recipe": "tiny"}},
        **keys,
    }))
    return str(path)


def test_the_paragraph_is_the_error_lines_else_the_exception_else_the_last_lines():
    log = "2026 INFO start\n2026 ERROR the split is too short: use more text\n"
    assert error_paragraph(log) == "2026 ERROR the split is too short: use more text"
    trace = ("INFO start\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
             "    write()\nrnnbench.io.DiskFullError: no space left on device: a.csv\n")
    assert error_paragraph(trace) == "rnnbench.io.DiskFullError: no space left on device: a.csv"
    assert error_paragraph("a\nb\nthe valid split holds 300 tokens\n", limit=1) == \
        "the valid split holds 300 tokens"


def test_a_failed_command_prints_its_paragraph_and_a_retry_prints_nothing(tmp_path):
    log, out = tmp_path / "job.log", tmp_path / "stderr"
    fail = [sys.executable, "-c", "import sys; print('working'); sys.exit('the reason: fix X')"]
    with open(out, "w") as stream:
        assert run_logged(log, fail, stream=stream) == 1
    assert out.read_text().startswith("working\nthe reason: fix X\n(exit status 1")
    assert log.read_text() == "working\nthe reason: fix X\n"
    # an attempt appended after an earlier one shows its own lines only
    with open(out, "w") as stream:
        assert run_logged(log, [sys.executable, "-c", "raise SystemExit('second')"],
                          append=True, stream=stream) == 1
    assert out.read_text().startswith("second\n") and "fix X" not in out.read_text()
    with open(out, "w") as stream:
        assert run_logged(log, [sys.executable, "-c", "raise SystemExit(75)"],
                          stream=stream) == 75
    assert out.read_text() == ""  # a stop to be retried is no error


def test_sigterm_to_the_job_reaches_the_command_which_ends_as_it_handles_it(tmp_path):
    handler = ("import signal, sys, time\n"
               "signal.signal(signal.SIGTERM, lambda *a: sys.exit(75))\n"
               "print('ready', flush=True)\ntime.sleep(60)\n")
    log = tmp_path / "job.log"
    job = subprocess.Popen([sys.executable, "-m", "rnnbench.io", str(log), "--",
                            sys.executable, "-c", handler], stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if log.exists() and "ready" in log.read_text():
            break
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=30) == 75
    assert job.stderr.read() == ""


def test_a_split_too_short_for_the_context_measurement_shows_why_on_the_terminal(tmp_path):
    # a first run: the corpus is not tokenized yet, so only the job finds the split too short
    write_corpus(tmp_path / "mine", lines=(300, 40, 40))
    configfile = config(tmp_path / "short.yaml", context=True)
    result = snakemake(tmp_path, f"{RUN}/context.json", "--configfile", configfile)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/measure_context/mine/tiny/lstm-h8-l1-s1.log").read_text()
    reason = log.strip().splitlines()[-1]
    assert "valid" in reason, log[-2000:]
    assert reason in result.stderr, result.stderr[-3000:]  # the paragraph, not only "check log"


def test_a_full_disk_while_measuring_context_shows_the_one_line_on_the_terminal(tmp_path,
                                                                               small_fs):
    write_corpus(tmp_path / "mine", lines=(300, 200, 40))
    settings = {"targets": 20, "prefix": 30, "shuffle_targets": 10, "resamples": 50}
    configfile = config(tmp_path / "full.yaml", context=settings)
    trained = snakemake(tmp_path, f"{RUN}/train.json", "--configfile", configfile)
    assert trained.returncode == 0, trained.stderr[-3000:]
    # the run's folder onto the small file system, which is then filled up
    run = tmp_path / RUN
    shutil.copytree(run, small_fs / "run", copy_function=shutil.copy2)
    shutil.rmtree(run)
    run.symlink_to(small_fs / "run")
    with open(small_fs / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (1 << 20))
    result = snakemake(tmp_path, f"{RUN}/context.json", "--configfile", configfile)
    assert result.returncode != 0
    assert "no space left on device" in result.stderr, result.stderr[-3000:]
    assert "free some space and rerun" in result.stderr


def test_a_file_missing_from_the_mirror_names_the_file_and_the_fix(tmp_path):
    write_corpus(tmp_path / "mirror")
    (tmp_path / "mirror/valid.txt").unlink()
    # a network URL that fails at once (nothing listens on port 9): the mirror is tried first
    files = {s: {"url": f"http://127.0.0.1:9/{s}.txt"} for s in ("train", "valid", "test")}
    configfile = config(tmp_path / "mirror.yaml", corpus={"name": "mine", "max_vocab": None,
                                                          "files": files},
                        mirror=str(tmp_path / "mirror"))
    result = snakemake(tmp_path, "results/data/mine/raw/valid.txt", "--configfile", configfile)
    assert result.returncode != 0
    assert "could not download valid.txt: tried" in result.stderr, result.stderr[-3000:]
    assert "point the config key `mirror` at a folder" in result.stderr


def test_a_tuning_whose_every_trial_diverged_says_so_before_its_final_runs(tmp_path):
    # lr 1e30: the only trial diverges at its first step, its rung promotes nothing
    write_corpus(tmp_path / "mine")
    configfile = config(tmp_path / "diverged.yaml", experiments={"tiny": {
        "cells": ["rnn_relu"], "hidden": [8], "layers": [1], "seeds": [1], "recipe": "tiny",
        "tuning": {"space": {"lr": [1e30]}, "rungs": [{"epochs": 1, "max_batches": 4}]}}})
    result = snakemake(tmp_path, "results/runs/mine/tiny/rnn_relu-h8-l1-s1/train.json",
                       "--configfile", configfile)
    assert result.returncode != 0
    assert "No trial of tiny/rnn_relu-h8-l1 finished its last rung" in result.stderr
    assert "Widen the search space" in result.stderr
