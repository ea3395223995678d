"""Refuse before destroying (issue #22): what this machine cannot run stops before any job
with one paragraph; a deleted run file is rebuilt; undefined perplexities never reach a table
as ok; a killed writer leaves no temporary file; a damaged JSON file is named."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers import ROOT, quick_cut, snakemake

from rnnbench.config import RunConfig
from rnnbench.io import BadJson, read_json, write_atomic
from rnnbench.workflow.plan import machine_refusal, run_memory_bytes

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, whatever the machine has


def test_device_cuda_without_a_gpu_stops_before_any_job(tmp_path):
    config = quick_cut(tmp_path / "tiny.yaml", ["lstm"])
    result = snakemake(tmp_path / "work", "-n", "--cores", "1", "--config",
                       "device=cuda", env=NO_GPU, configfile=config)
    assert result.returncode != 0
    text = " ".join((result.stdout + result.stderr).split())
    assert "device: cuda, but this machine has no CUDA GPU" in text
    assert "Use --config device=auto" in text and "Nothing was run or deleted" in text
    assert "Job stats" not in text and not (tmp_path / "work/results").exists()


def test_a_run_too_large_for_this_machine_is_named_in_the_plan_and_stops(tmp_path):
    config = quick_cut(tmp_path / "big.yaml", ["rnn_relu"], hidden=100_000)
    result = snakemake(tmp_path / "work", "-n", "--cores", "1", configfile=config)
    assert result.returncode != 0
    out = " ".join((result.stdout + result.stderr).split())
    assert "Memory: run rnn_relu-h100000-l1-s1 needs about" in out  # in the plan
    assert "run rnn_relu-h100000-l1-s1 needs about" in out and "allow_over_memory" in out
    assert "Job stats" not in out
    go_on = snakemake(tmp_path / "work", "-n", "--cores", "1", "--config",
                      "allow_over_memory=True", configfile=config)
    assert go_on.returncode == 0, go_on.stderr[-2000:]
    assert "Memory: run rnn_relu-h100000-l1-s1" in " ".join(go_on.stderr.split())


def test_memory_estimate_counts_five_copies_of_the_parameters_and_a_minibatch():
    cfg = RunConfig(cell="rnn_relu", hidden=100_000, layers=1)
    # encoder 10000 x 100000, decoder 100000 x 10000 + 10000, recurrent 2 x 100000^2 + 2 x 1e5
    params = 10_000 * 100_000 * 2 + 10_000 + 2 * 100_000**2 + 2 * 100_000
    acts = 35 * 20 * (100_000 * 2 + 2 * 10_000)
    assert run_memory_bytes(cfg, 10_000) == 4 * (5 * params + acts)  # ~440 GB
    small = run_memory_bytes(RunConfig(cell="lstm", hidden=32), 10_000)
    assert 50e6 < small < 100e6  # mostly the minibatch's logits and their gradient


def test_machine_refusal_only_for_what_this_machine_lacks(tmp_path):
    runs = [type("Run", (), {"config": RunConfig(cell="lstm", hidden=64),
                             "path": str(tmp_path / "r")})()]
    data = tmp_path / "data"
    assert machine_refusal(runs, data, "cuda", 10**12, gpus=1) is None
    assert machine_refusal(runs, data, "auto", 10**12, gpus=0) is None
    assert "no CUDA GPU" in machine_refusal(runs, data, "cuda", 10**12, gpus=0)
    assert "needs about" in machine_refusal(runs, data, "cpu", 10**6)
    assert machine_refusal(runs, data, "cpu", 10**6, allow_over_memory=True) is None
    (tmp_path / "r").mkdir()
    (tmp_path / "r/train.json").write_text("{}")  # trained: nothing left to need memory
    assert machine_refusal(runs, data, "cpu", 10**6) is None


def test_a_truncated_json_file_is_one_paragraph_naming_it(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"run_id": "x", "status": "o')
    with pytest.raises(BadJson) as err:
        read_json(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not valid JSON") and "\n" not in message
    assert "truncated or damaged" in message and "git checkout --" in message


def test_a_truncated_published_train_json_stops_the_reference_tables_naming_it(tmp_path):
    work = tmp_path / "work"
    published = sorted((ROOT / "results/reference/seed_lstm").glob("*/train.json"))[0]
    copy = work / published.relative_to(ROOT)
    copy.parent.mkdir(parents=True)
    for name in ("train.json", "eval.json"):
        (copy.parent / name).write_text((published.parent / name).read_text())
    copy.write_text(published.read_text()[:200])  # truncated
    result = snakemake(work, "-n", "--cores", "1", "--config",
                       "source=reference", configfile=ROOT / "config/reproduce.yaml")
    assert result.returncode != 0
    text = " ".join((result.stdout + result.stderr).split())
    assert f"{copy.relative_to(work)} is not valid JSON" in text
    assert "JSONDecodeError" not in text and "Traceback" not in text


def test_a_killed_writer_leaves_a_temp_file_that_the_next_write_removes(tmp_path):
    target = tmp_path / "figure.png"
    stale = tmp_path / ".figure.png.abcd1234.tmp"  # what a SIGKILL mid-write leaves
    stale.write_bytes(b"half a figure")
    others = [".other.png.abcd1234.tmp", ".figure.png.svg.abcd1234.tmp"]  # other targets'
    for name in others:
        (tmp_path / name).write_bytes(b"x")
    write_atomic(target, lambda tmp: tmp.write_bytes(b"png"))
    assert target.read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, "figure.png"])


def test_a_figure_job_cancelled_with_sigterm_leaves_no_temp_file(tmp_path):
    # what every figure command does first (figstyle.start_job), then a write stopped by
    # SIGTERM (Snakemake cancelling the job)
    code = ("import time, pathlib, rnnbench.figures.figstyle as fs, rnnbench.io as io; "
            "fs.start_job(); "
            "io.write_atomic(pathlib.Path(r'%s'), lambda tmp: (tmp.write_bytes(b'x'), "
            "print('writing', flush=True), time.sleep(30)))" % (tmp_path / "fig.png"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert any(p.suffix == ".tmp" for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_failed_training_job_prints_its_paragraph_on_the_terminal(tmp_path, ptb_mirror):
    from rnnbench.training.checkpoint import exclusive

    work = tmp_path / "work"
    config = quick_cut(tmp_path / "tiny.yaml", ["gru"])
    run = "results/runs/ptb/quick/gru-h32-l1-s1"
    # another trainer of this run holds its lock: the job stops at once with a paragraph
    with exclusive(work / "results/checkpoints/ptb/quick/gru-h32-l1-s1.pt"):
        result = snakemake(work, "--cores", "1", "--config", f"mirror={ptb_mirror}",
                           "--", f"{run}/train.json", configfile=config)
    assert result.returncode != 0
    assert "another trainer of this run is running" in result.stderr
    assert "rerun." in result.stderr  # the whole paragraph, not a pointer to the log


@pytest.mark.slow
def test_overflowing_test_perplexity_is_a_diverged_run_in_the_tables(tmp_path, ptb_mirror):
    # issue #22 case 3, through real Snakemake: eval.json valid JSON, the tables build
    config = quick_cut(tmp_path / "overflow.yaml", ["rnn_relu"], init="uniform",
                         init_scale=0.5901, lr=1.0e-12, max_batches=1, max_eval_batches=20)
    tables = "results/studies/overflow/tables"
    result = snakemake(tmp_path, "--cores", "2", "--config", f"mirror={ptb_mirror}",
                       "--", f"{tables}/runs.csv", f"{tables}/summary.md", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    ev = json.loads((tmp_path / "results/runs/ptb/quick/rnn_relu-h32-l1-s1/eval.json")
                    .read_text(), parse_constant=lambda c: pytest.fail(f"{c} in eval.json"))
    assert ev["status"] == "diverged" and ev["diverged_split"] == "test"
    runs = pd.read_csv(tmp_path / tables / "runs.csv")
    assert runs["status"].tolist() == ["diverged"] and runs["test_ppl"].isna().all()
    summary = pd.read_csv(tmp_path / tables / "summary.csv")
    assert summary["n"].tolist() == [0] and summary["n_diverged"].tolist() == [1]


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_finished_runs_survive_a_refused_request_and_a_deleted_file_comes_back(quick_pipeline,
                                                                             tmp_path,
                                                                             ptb_mirror):
    assert quick_pipeline.run.returncode == 0, quick_pipeline.run.stderr[-3000:]
    work = quick_pipeline.copy(tmp_path / "work")  # the session's finished quick grid
    config, mirror = ROOT / "config/quick.yaml", f"mirror={ptb_mirror}"
    evals = sorted(work.glob("results/runs/ptb/quick/*/eval.json"))
    assert len(evals) == 4
    before = {p: p.read_text() for p in evals}

    # issue #22 case 7: device=cuda without a GPU runs nothing and deletes nothing
    cuda = snakemake(work, "--cores", "2", "--config", mirror, "device=cuda", env=NO_GPU,
                     configfile=config)
    assert cuda.returncode != 0 and "has no CUDA GPU" in cuda.stderr
    assert {p: p.read_text() for p in evals} == before

    # case 9/6: a deleted eval.json is rebuilt, and the tables built from it with it
    runs_csv = work / "results/studies/quick/tables/runs.csv"
    built = runs_csv.stat().st_mtime
    evals[0].unlink()
    time.sleep(1)  # a coarse file system clock must still see the rebuilt files as newer
    again = snakemake(work, "--cores", "2", "--config", mirror, configfile=config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert evals[0].exists() and runs_csv.stat().st_mtime > built
    assert "evaluate_model" in again.stderr and "train_model" not in again.stderr
    done = snakemake(work, "-n", "--cores", "2", "--config", mirror, configfile=config)
    assert "Nothing to be done" in done.stdout + done.stderr
