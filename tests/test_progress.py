"""What a run shows on the terminal (progress, log paths, the plan after a dry run) and a user
stop (Ctrl-C or SIGTERM to Snakemake: checkpoints, one line, a resume to identical numbers)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import tiny_run_config
from snakemake_interface_logger_plugins.common import LogEvent

from rnnbench.training.train import Trainer
from rnnbench.workflow.progress import (
    GridProgress,
    PlanAtExit,
    ProgressHandler,
    UserStop,
    start_line,
    stop_line,
    time_left,
)

ROOT = Path(__file__).resolve().parents[1]


def _finish(run: Path, train_seconds: float) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "train.json").write_text(json.dumps({"train_seconds": train_seconds}))


def test_time_left_scales_the_plan_and_spreads_runs_over_workers():
    assert time_left([100, 100, 100, 100], 1.0, workers=2) == 200
    assert time_left([100, 100, 100, 100], 1.5, workers=2) == 300
    # a run is not split: the longest bounds the wall time with workers to spare
    assert time_left([400, 10], 1.0, workers=4) == 400
    assert time_left([], 2.0, workers=2) == 0


def test_progress_line_scales_the_plan_by_how_long_this_sessions_runs_took(tmp_path):
    runs = [tmp_path / f"r{i}" for i in range(4)]
    _finish(runs[0], 999.0)  # finished in an earlier session: counted, not timed
    grid = GridProgress(runs, {str(r): 600.0 for r in runs[1:]}, workers=1)
    assert grid.line() == "[rnnbench] 1/4 runs done, about 30 minutes left (the plan's estimate)"
    assert grid.update() is None  # nothing new since the start
    _finish(runs[1], 1200.0)  # twice the plan's 600 s: the 2 runs left take 2 x 1,200 s
    assert grid.update() == ("[rnnbench] 2/4 runs done, about 40 minutes left "
                             "(runs took 2.0x the plan's estimate)")
    assert grid.update() is None  # once per finished run
    _finish(runs[2], 300.0)
    _finish(runs[3], 300.0)
    assert grid.update() == "[rnnbench] 4/4 runs done"


def test_progress_of_runs_that_may_stop_early_is_an_upper_bound(tmp_path):
    runs = [tmp_path / f"r{i}" for i in range(2)]
    grid = GridProgress(runs, {str(r): 900.0 for r in runs}, workers=1, upper_bound=True)
    assert grid.line() == "[rnnbench] 0/2 runs done, at most 30 minutes left (the plan's estimate)"


def test_progress_line_without_an_estimate_counts_runs_only(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    grid = GridProgress(runs, {}, workers=2)  # no reference run: no per-run estimate
    _finish(runs[0], 10.0)
    assert grid.update() == "[rnnbench] 1/2 runs done"


def _snakemake_logger(stream: io.StringIO) -> logging.Logger:
    """A logger fed the way Snakemake feeds its own (message + logger-plugin event)."""
    logger = logging.getLogger(f"test-progress-{id(stream)}")
    logger.propagate, logger.level = False, logging.INFO
    logger.handlers = [logging.StreamHandler(stream)]
    return logger


def test_handler_names_the_log_of_a_training_job_and_the_runs_done_as_jobs_finish(tmp_path):
    out, console = io.StringIO(), io.StringIO()
    run = tmp_path / "results/runs/ptb/quick/lstm-h32-l1-s1"
    logger = _snakemake_logger(console)
    logger.addHandler(ProgressHandler(GridProgress([run], {}, workers=1), stream=out))
    log = "results/logs/train_model/ptb/quick/lstm-h32-l1-s1.log"
    logger.info(" Rule: train_model, Jobid: 3", extra=dict(
        event=LogEvent.JOB_INFO, rule_name="train_model", log=[log],
        wildcards={"corpus": "ptb", "experiment": "quick", "run": "lstm-h32-l1-s1"}))
    logger.info(" Rule: tokenize_corpus, Jobid: 1", extra=dict(
        event=LogEvent.JOB_INFO, rule_name="tokenize_corpus", log=["t.log"], wildcards={}))
    logger.info("Finished jobid: 1", extra=dict(event=LogEvent.JOB_FINISHED, job_id=1))
    _finish(run, 5.0)
    logger.info("Finished jobid: 3", extra=dict(event=LogEvent.JOB_FINISHED, job_id=3))
    assert out.getvalue().splitlines() == [
        f"[rnnbench] training quick/lstm-h32-l1-s1: log {log}", "[rnnbench] 1/1 runs done"]
    assert start_line({}, []) is None


def test_stop_line_counts_the_checkpoints_present(tmp_path):
    ckpts = [tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"]
    ckpts[0].write_bytes(b"x")
    ckpts[2].write_bytes(b"x")
    out = io.StringIO()
    stop = UserStop(ckpts, stream=out)
    stop.report()
    assert out.getvalue() == ""  # no stop, no line
    stop.stopped = True
    stop.report()
    stop.report()
    assert out.getvalue() == "stopped; 2 runs checkpointed; rerun the same command to resume\n"
    assert stop_line(1) == "stopped; 1 run checkpointed; rerun the same command to resume"


# A process that does what Snakemake does around a user stop: a child job, a console logger,
# a signal to itself (SIGINT: KeyboardInterrupt; SIGTERM: Snakemake's handler, which lets the
# running jobs end), then an error logged for the job that the signal ended.
STOPPED_PROCESS = textwrap.dedent("""
    import logging, os, signal, subprocess, sys, time
    from pathlib import Path
    from rnnbench.workflow.progress import UserStop
    tmp, signum = Path(sys.argv[1]), getattr(signal, sys.argv[2])
    job = subprocess.Popen([sys.executable, "-c", '''
    import signal, sys, time
    from pathlib import Path
    def stop(signum, frame):
        Path(sys.argv[1]).write_text(str(signum))
        sys.exit(75)
    signal.signal(signal.SIGTERM, stop)
    Path(sys.argv[1] + ".ready").touch()
    time.sleep(60)
    ''', str(tmp / "ckpt.pt")])
    while not (tmp / "ckpt.pt.ready").exists():
        time.sleep(0.05)
    logger = logging.getLogger("snakemake.logging")
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logger.addHandler(logging.FileHandler(tmp / "snakemake.log"))
    signal.signal(signal.SIGTERM, lambda *_: None)  # Snakemake's: wait for the running jobs
    UserStop([tmp / "ckpt.pt", tmp / "other.pt"]).install(logger)
    logger.error("before the stop")
    try:
        os.kill(os.getpid(), signum)
        status = job.wait()
    except KeyboardInterrupt:
        status = job.wait()
    logger.error("Error in rule train_model: exit status %d", status)
    sys.exit(1)
""")


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_user_stop_ends_every_job_at_once_and_ends_with_one_line(tmp_path, signum):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", STOPPED_PROCESS, str(tmp_path), signum],
                            env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30  # the job did not sleep its 60 s
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "ckpt.pt").read_text() == str(int(signal.SIGTERM))
    # the console: what came before the stop, then one line; the log file keeps the rest
    assert result.stderr.splitlines() == [
        "before the stop",
        "stopped; 1 run checkpointed; rerun the same command to resume"]
    assert "exit status 75" in (tmp_path / "snakemake.log").read_text()


def test_plan_at_exit_prints_after_a_dry_run_unless_it_failed():
    out = io.StringIO()
    plan = PlanAtExit("rnnbench plan: 4 training runs", lambda: True, stream=out)
    plan.report()
    assert out.getvalue() == "rnnbench plan: 4 training runs\n"
    for dry, error, printed in ((False, False, ""), (True, True, "")):
        out = io.StringIO()
        plan = PlanAtExit("rnnbench plan: 4 training runs", lambda d=dry: d, stream=out)
        logger = _snakemake_logger(io.StringIO())
        logger.addHandler(plan)
        logger.info("fine")
        if error:
            logger.error("MissingInputException")
        plan.report()
        assert out.getvalue() == printed


def test_dry_run_prints_the_plan_after_the_list_of_jobs(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
           "-n", "--cores", "2", "--configfile", str(ROOT / "config/quick.yaml")]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    assert out.count("rnnbench plan:") == 1
    assert out.index("This was a dry-run") < out.index("rnnbench plan: 4 training runs")
    assert "[rnnbench]" not in out  # a dry run trains nothing: no progress lines


def test_first_progress_lines_come_after_a_few_minibatches_of_each_start(tiny_data, tmp_path,
                                                                          caplog, one_thread):
    trainer = Trainer(tiny_run_config(epochs=1), tiny_data, tmp_path / "c.pt", torch.device("cpu"),
                      log_interval=1000)
    with caplog.at_level(logging.INFO, logger="rnnbench.training.train"):
        trainer.train_epoch()
    batches = [m.split("batch ")[1].split()[0] for m in caplog.messages if "batch " in m]
    n = trainer.n_batches
    assert batches == [f"5/{n}", f"50/{n}", f"{n}/{n}"]


# The rules run `python -m rnnbench...`: this interpreter's, as in an activated environment.
JOB_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT / "src")}


def _quick_long(tmp_path: Path, ptb_mirror: Path) -> list[str]:
    """The quick config, 2 runs of 2 epochs of 100 minibatches: the command that trains them."""
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    config["recipes"]["quick"]["max_batches"] = 100
    config["experiments"]["quick"]["cells"] = ["lstm", "gru"]
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = [f"results/runs/ptb/quick/{c}-h32-l1-s1/train.json" for c in ("lstm", "gru")]
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d",
            str(tmp_path), *targets, "--cores", "2", "--configfile", str(path),
            "--config", f"mirror={ptb_mirror}"]


@pytest.mark.slow
def test_ctrl_c_checkpoints_every_run_and_the_same_command_resumes_to_identical_numbers(
        tmp_path, ptb_mirror):
    cmd = _quick_long(tmp_path, ptb_mirror)
    logs = [tmp_path / f"results/logs/train_model/ptb/quick/{c}-h32-l1-s1.log"
            for c in ("lstm", "gru")]
    snakemake = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=JOB_ENV)
    deadline = time.monotonic() + 240
    # both trainers mid-epoch 0 (the progress line after 50 minibatches): SIGINT to Snakemake
    while not all(p.exists() and "batch 50/" in p.read_text() for p in logs):
        assert snakemake.poll() is None and time.monotonic() < deadline, snakemake.stdout.read()
        time.sleep(0.1)
    snakemake.send_signal(signal.SIGINT)
    out, _ = snakemake.communicate(timeout=120)
    assert snakemake.returncode != 0
    assert out.rstrip().splitlines()[-1] == (
        "stopped; 2 runs checkpointed; rerun the same command to resume"), out[-3000:]
    assert "CalledProcessError" not in out and "WorkflowError" not in out
    for log in logs:  # each job's log path was printed when it started
        assert f"log {log.relative_to(tmp_path)}" in out
    runs = [tmp_path / f"results/runs/ptb/quick/{c}-h32-l1-s1" for c in ("lstm", "gru")]
    for run in runs:
        state = torch.load(tmp_path / f"results/checkpoints/ptb/quick/{run.name}.pt",
                           weights_only=True)
        assert (state["epoch"], state["batch"] > 50) == (0, True), run.name
        assert not (run / "train.json").exists()
    again = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=600, env=JOB_ENV)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "[rnnbench] 2/2 runs done" in again.stdout
    assert not list((tmp_path / "results/checkpoints").rglob("*.pt"))
    # the trainers' own commands, run without a stop, give the same numbers bit for bit
    wholes = {}
    for run in runs:
        meta = json.loads((run / "train.json").read_text())
        assert meta["resumes"] == 1
        argv = shlex.split(meta["command"])[3:]
        argv[argv.index("--run-dir") + 1] = str(tmp_path / "whole" / run.name)
        argv[argv.index("--checkpoint") + 1] = str(tmp_path / "whole" / f"{run.name}.pt")
        wholes[run] = subprocess.Popen([sys.executable, "-m", "rnnbench.training.train", *argv],
                                       cwd=tmp_path, env=JOB_ENV, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
    for run, proc in wholes.items():
        assert proc.wait(timeout=600) == 0, run.name
        whole = tmp_path / "whole" / run.name
        a, b = pd.read_csv(whole / "history.csv"), pd.read_csv(run / "history.csv")
        cols = [c for c in a.columns if c not in ("seconds", "tokens_per_s")]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
        assert gzip.decompress((whole / "steps.csv.gz").read_bytes()) == \
            gzip.decompress((run / "steps.csv.gz").read_bytes())
        ma = torch.load(whole / "model.pt", weights_only=True)
        mb = torch.load(run / "model.pt", weights_only=True)
        for key in ("best_state", "final_state"):
            assert all(torch.equal(ma[key][k], mb[key][k]) for k in ma[key]), (run.name, key)
