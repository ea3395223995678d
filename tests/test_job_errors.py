"""Every rule's failure shows its error paragraph on the terminal (issue #32 f): the job's own
reason under the failed job, not only ``CalledProcessError ... check log``
(rnnbench.workflow.progress.JobErrorHandler)."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path

from helpers import one_run_config, snakemake, write_config, write_corpus
from snakemake_interface_logger_plugins.common import LogEvent

from rnnbench.workflow.progress import JobErrorHandler, error_paragraph

ROOT = Path(__file__).resolve().parents[1]
RUN = "results/runs/mine/tiny/lstm-h8-l1-s1"


def test_the_paragraph_is_the_error_lines_else_the_exception_else_the_last_lines():
    log = "2026 INFO start\n2026 ERROR the split is too short: use more text\n"
    assert error_paragraph(log) == "2026 ERROR the split is too short: use more text"
    trace = ("INFO start\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
             "    write()\nrnnbench.io.DiskFullError: no space left on device: a.csv\n")
    assert error_paragraph(trace) == "rnnbench.io.DiskFullError: no space left on device: a.csv"
    assert error_paragraph("a\nb\nthe valid split holds 300 tokens\n", limit=1) == \
        "the valid split holds 300 tokens"


def test_a_job_error_prints_its_logs_paragraph_unless_its_rule_prints_its_own(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("INFO working\nthe reason: fix X\n")
    stream = io.StringIO()
    handler = JobErrorHandler(skip=["train_model"], stream=stream)
    for rule in ("evaluate_model", "train_model"):
        record = logging.LogRecord("snakemake", logging.ERROR, "", 0, "Error in rule", (), None)
        record.event, record.rule_name, record.log = LogEvent.JOB_ERROR, rule, [str(log)]
        handler.emit(record)
    assert stream.getvalue() == (f"[rnnbench] evaluate_model failed ({log}):\n"
                                 "INFO working\nthe reason: fix X\n")


def test_a_split_too_short_for_the_context_measurement_shows_why_on_the_terminal(tmp_path):
    # a first run: the corpus is not tokenized yet, so only the job finds the split too short
    write_corpus(tmp_path / "mine", lines=(300, 40, 40))
    configfile = write_config(tmp_path / "short.yaml", one_run_config(context=True))
    result = snakemake(tmp_path, "--cores", "1", f"{RUN}/context.json", configfile=configfile)
    assert result.returncode != 0
    log = (tmp_path / "results/logs/measure_context/mine/tiny/lstm-h8-l1-s1.log").read_text()
    reason = log.strip().splitlines()[-1]
    assert "valid" in reason, log[-2000:]
    assert reason in result.stderr, result.stderr[-3000:]  # the paragraph, not only "check log"


def test_a_full_disk_while_measuring_context_shows_the_one_line_on_the_terminal(tmp_path,
                                                                               small_fs):
    write_corpus(tmp_path / "mine", lines=(300, 200, 40))
    settings = {"targets": 20, "prefix": 30, "shuffle_targets": 10, "resamples": 50}
    configfile = write_config(tmp_path / "full.yaml", one_run_config(context=settings))
    trained = snakemake(tmp_path, "--cores", "1", f"{RUN}/train.json", configfile=configfile)
    assert trained.returncode == 0, trained.stderr[-3000:]
    # the run's folder onto the small file system, which is then filled up
    run = tmp_path / RUN
    shutil.copytree(run, small_fs / "run", copy_function=shutil.copy2)
    shutil.rmtree(run)
    run.symlink_to(small_fs / "run")
    with open(small_fs / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (1 << 20))
    result = snakemake(tmp_path, "--cores", "1", f"{RUN}/context.json", configfile=configfile)
    assert result.returncode != 0
    assert "no space left on device" in result.stderr, result.stderr[-3000:]
    assert "free some space and rerun" in result.stderr


def test_a_file_missing_from_the_mirror_names_the_file_and_the_fix(tmp_path):
    write_corpus(tmp_path / "mirror")
    (tmp_path / "mirror/valid.txt").unlink()
    # a network URL that fails at once (nothing listens on port 9): the mirror is tried first
    files = {s: {"url": f"http://127.0.0.1:9/{s}.txt"} for s in ("train", "valid", "test")}
    configfile = write_config(tmp_path / "mirror.yaml", one_run_config(
        corpus={"name": "mine", "max_vocab": None, "files": files},
        mirror=str(tmp_path / "mirror")))
    result = snakemake(tmp_path, "--cores", "1", "results/data/mine/raw/valid.txt",
                       configfile=configfile)
    assert result.returncode != 0
    assert "could not download valid.txt: tried" in result.stderr, result.stderr[-3000:]
    assert "point the config key `mirror` at a folder" in result.stderr


def test_a_tuning_whose_every_trial_diverged_says_so_before_its_final_runs(tmp_path):
    # lr 1e30: the only trial diverges at its first step, its rung promotes nothing
    write_corpus(tmp_path / "mine")
    configfile = write_config(tmp_path / "diverged.yaml", one_run_config(experiments={"tiny": {
        "cells": ["rnn_relu"], "hidden": [8], "layers": [1], "seeds": [1], "recipe": "tiny",
        "tuning": {"space": {"lr": [1e30]}, "rungs": [{"epochs": 1, "max_batches": 4}]}}}))
    result = snakemake(tmp_path, "--cores", "1",
                       "results/runs/mine/tiny/rnn_relu-h8-l1-s1/train.json",
                       "--configfile", configfile)
    assert result.returncode != 0
    assert "No trial of tiny/rnn_relu-h8-l1 finished its last rung" in result.stderr
    assert "Widen the search space" in result.stderr
