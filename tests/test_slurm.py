"""Runs on a real SLURM cluster through workflow/profiles/slurm, and the time limit they live by.

The `slurm` tests need a controller that `squeue` reaches (CI: .ci/slurm-ci.sh brings up a
one-node cluster with 2 fake GPUs); elsewhere they are skipped, or fail where
RNNBENCH_REQUIRE_SLURM=1. One SLURM run of the quick grid plus one longer run (`preempt`)
that cannot finish inside its first job's 1-minute limit, and the same grid run locally at the
same time, feed every `slurm` test: 3.5 minutes on 2 cores (5 when other work shares them).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from rnnbench.io import read_json

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow/profiles/slurm/config.yaml"
TARGET = "results/studies/config/tables/runs.csv"
# SLURM runs cannot finish in 60 s (default Snakemake runs wait for SLURM much longer)
SNAKEMAKE_TIMEOUT_S = 540
# the long run: 2 epochs of 700 minibatches, 40-50 s of training on one idle core, longer
# beside the local run; its first job gets SIGTERM 15-45 s after it starts
PREEMPT_BATCHES = 700
PREEMPT_RUN = "ptb/preempt/gru-h32-l1-s1"


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """Snakemake on the repository's Snakefile, killed if it hangs (a hung status query
    ignores SIGTERM, hence -k)."""
    return ["timeout", "-k", "10", str(SNAKEMAKE_TIMEOUT_S), sys.executable, "-m", "snakemake",
            "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]


def slurm_missing() -> str | None:
    """Why SLURM tests cannot run here, or None."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "no sbatch/squeue on PATH"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e .[slurm])"
    try:
        probe = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                               timeout=15)
    except subprocess.TimeoutExpired:
        return "squeue timed out"
    if probe.returncode != 0:
        return f"squeue cannot reach a SLURM controller: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """Skip (or fail, with RNNBENCH_REQUIRE_SLURM=1) where no SLURM controller answers."""
    reason = slurm_missing()
    if reason and os.environ.get("RNNBENCH_REQUIRE_SLURM") == "1":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


def write_config(path: Path, mirror: Path) -> Path:
    """The quick grid plus one GRU run too long for a 1-minute job."""
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    config["mirror"] = str(mirror)
    config["recipes"]["preempt"] = {**config["recipes"]["quick"], "max_batches": PREEMPT_BATCHES}
    config["experiments"]["preempt"] = {"cells": ["gru"], "hidden": [32], "layers": [1],
                                        "seeds": [1], "recipe": "preempt"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_profile(folder: Path) -> Path:
    """The repository's SLURM profile, with test-only changes: status checks every 5 s, and
    a 1-minute first job for the preempt run. SLURM sends --signal up to 30 s before it is due
    (its checks run every 30 s), so TERM@15 comes 15-45 s into the job: after the trainer has
    started (5-10 s in), before the run can end."""
    profile = yaml.safe_load(PROFILE.read_text())
    profile["slurm-init-seconds-before-status-checks"] = 5
    profile["seconds-between-status-checks"] = 5
    train = profile["set-resources"]["train_model"]
    train["runtime"] = "1 if attempt == 1 and wildcards.experiment == 'preempt' else 10"
    train["slurm_extra"] = "'--signal=TERM@15'"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


@dataclass(frozen=True)
class Runs:
    """The same grid run locally and through SLURM."""

    local: Path
    slurm: Path
    slurm_log: str
    gpu_locks: Path


def finish(proc: subprocess.Popen, what: str) -> str:
    """Wait for a Snakemake run and return its log; fail with its tail if it failed."""
    out, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT_S + 30)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ptb_mirror, slurm_cluster) -> Runs:
    """Tokenize once, then run the grid locally and through SLURM at the same time."""
    base = tmp_path_factory.mktemp("slurm")
    config = write_config(base / "config.yaml", ptb_mirror)
    profile = write_profile(base / "profile")
    # targets first: --configfile takes every word after it
    prep = subprocess.run(snakemake_cmd(base / "prep", "results/data/ptb/stats.json",
                                        "--cores", "2", "--configfile", str(config)),
                          capture_output=True, text=True)
    assert prep.returncode == 0, prep.stderr[-3000:]
    for name in ("local", "slurm"):  # the data with its Snakemake metadata: nothing reruns
        shutil.copytree(base / "prep", base / name, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["RNNBENCH_GPU_LOCK_DIR"] = str(base / "gpu-locks")  # must stay unused under SLURM
    # the long run first: its retry then overlaps the quick runs
    first = ["--prioritize", f"results/runs/{PREEMPT_RUN}/train.json"]
    started = {
        name: subprocess.Popen(snakemake_cmd(base / name, TARGET, "--configfile", str(config),
                                             *args), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, args in (("slurm", ["--workflow-profile", str(profile), *first]),
                           ("local", ["--cores", "2", *first]))
    }
    try:
        slurm_log = finish(started["slurm"], "Snakemake through SLURM")
        finish(started["local"], "local Snakemake")
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    return Runs(base / "local", base / "slurm", slurm_log, base / "gpu-locks")


def run_dirs(workdir: Path) -> list[Path]:
    """Every run folder of a workdir."""
    return sorted((workdir / "results/runs").glob("*/*/*"))


def untimed(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop wall-clock and machine columns, which differ between any two runs, and the
    resume count (one SLURM job is stopped by its time limit on purpose)."""
    drop = [c for c in frame.columns if "second" in c or c.endswith("_per_s")
            or c in ("hostname", "slurm_job_id", "cuda_visible_devices", "resumes")]
    return frame.drop(columns=drop)


@pytest.mark.slurm
def test_every_training_job_ran_as_a_slurm_job_holding_a_gpu(runs):
    dirs = run_dirs(runs.slurm)
    assert len(dirs) == 5
    metas = [read_json(d / "train.json") for d in dirs]
    job_ids = [m["slurm_job_id"] for m in metas]
    assert all(j and j.isdigit() for j in job_ids) and len(set(job_ids)) == 5
    # device auto asks SLURM for gpu=1 (sbatch --gpus=1): SLURM set CUDA_VISIBLE_DEVICES to
    # one of the 2 fake GPUs; torch (no CUDA here) then trained on the CPU
    assert {m["cuda_visible_devices"] for m in metas} <= {"0", "1"}
    assert {m["device"] for m in metas} == {"cpu"}
    for d in run_dirs(runs.local):
        assert read_json(d / "train.json")["slurm_job_id"] is None
    # inside SLURM the trainer keeps SLURM's GPU and takes no slot of the local pool
    assert not runs.gpu_locks.exists()
    assert not list((runs.slurm / "results/checkpoints").rglob("*.pt"))


@pytest.mark.slurm
def test_slurm_results_equal_the_local_run_exactly(runs):
    local = untimed(pd.read_csv(runs.local / TARGET))
    slurm = untimed(pd.read_csv(runs.slurm / TARGET))
    assert len(slurm) == 5 and (slurm["status"] == "ok").all()
    pd.testing.assert_frame_equal(local, slurm, check_exact=True)
    for a, b in zip(run_dirs(runs.local), run_dirs(runs.slurm), strict=True):
        assert a.relative_to(runs.local) == b.relative_to(runs.slurm)
        pd.testing.assert_frame_equal(untimed(pd.read_csv(a / "history.csv")),
                                      untimed(pd.read_csv(b / "history.csv")), check_exact=True)
        assert gzip.decompress((a / "steps.csv.gz").read_bytes()) == \
            gzip.decompress((b / "steps.csv.gz").read_bytes())
        ea, eb = (json.loads((d / "eval.json").read_text()) for d in (a, b))
        assert {k: v for k, v in ea.items() if "second" not in k} == \
            {k: v for k, v in eb.items() if "second" not in k}


@pytest.mark.slurm
def test_job_stopped_before_its_time_limit_is_retried_and_resumes(runs):
    # Snakemake keeps the SLURM logs of failed jobs only (and deletes the rule's log of a
    # failed attempt before the retry): the first job of the long run failed,
    kept = sorted((runs.slurm / ".snakemake/slurm_logs/rule_train_model").glob(
        f"{PREEMPT_RUN.replace('/', '_')}/*.log"), key=lambda p: int(p.stem))
    assert kept, runs.slurm_log[-3000:]
    failed = kept[0].stem
    assert f"SLURM-job '{failed}' failed" in runs.slurm_log
    # with the trainer's status for "checkpoint written, try again" (EX_TEMPFAIL)...
    assert "returned non-zero exit status 75" in kept[0].read_text()
    # ...and a second job resumed from the checkpoint the first one wrote mid-epoch; only a
    # signal or the time limit writes one there (the periodic one comes every 10 minutes)
    meta = read_json(runs.slurm / f"results/runs/{PREEMPT_RUN}/train.json")
    assert meta["status"] == "ok" and meta["slurm_job_id"] not in (None, failed)
    assert meta["resumes"] == 1 and meta["wall_seconds"] > meta["train_seconds"] > 0
    log = (runs.slurm / f"results/logs/train_model/{PREEMPT_RUN}.log").read_text()
    resumed = re.search(r"resuming from results/checkpoints/\S+ at epoch (\d+), minibatch (\d+)",
                        log)
    assert resumed and resumed.groups() != ("0", "0"), log[:3000]
    history = pd.read_csv(runs.slurm / f"results/runs/{PREEMPT_RUN}/history.csv")
    assert (history["tokens"] == PREEMPT_BATCHES * 35 * 20).all() and len(history) == 2


# -- the profiles, without a cluster -------------------------------------------------------

def dry_run(profile: Path, tmp_path: Path, mirror: Path) -> str:
    """What Snakemake would run for the quick grid with this profile (no job runs)."""
    result = subprocess.run(snakemake_cmd(tmp_path, "-n", "--workflow-profile", str(profile),
                                          "--configfile", str(ROOT / "config/quick.yaml"),
                                          "--config", f"mirror={mirror}"),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def resources_of(plan: str, rule: str) -> str:
    """The `resources:` line of the first job of a rule in a dry run."""
    block = plan[plan.index(f"rule {rule}:"):]
    return re.search(r"resources: (.*)", block).group(1)


@pytest.mark.slurm
def test_slurm_profile_asks_training_for_a_gpu_and_a_signal_before_its_limit(tmp_path,
                                                                              ptb_mirror):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    profile = yaml.safe_load(PROFILE.read_text())
    # squeue, not sacct (no slurmdbd needed); squeue forgets jobs MinJobAge (300 s) after
    # they end, and the plugin goes back to sacct unless MinJobAge >= 3x the first wait
    assert profile["slurm-status-command"] == "squeue"
    assert 3 * profile["slurm-init-seconds-before-status-checks"] <= 300
    assert profile["retries"] >= 1
    # `gpus` reaches srun but not sbatch, and the job step then fails
    assert all("gpus" not in res for res in profile["set-resources"].values())
    plan = dry_run(PROFILE.parent, tmp_path, ptb_mirror)
    train = resources_of(plan, "train_model")
    assert "gpu=1" in train and "slurm_extra=--signal=TERM@120" in train
    assert "gpu=1" in resources_of(plan, "evaluate_model")
    assert "gpu" not in resources_of(plan, "download_corpus")


def test_local_profile_runs_the_quick_grid_dry(tmp_path, ptb_mirror):
    plan = dry_run(ROOT / "workflow/profiles/local", tmp_path, ptb_mirror)
    assert re.search(r"train_model\s+4", plan)


# -- the time limit itself, without SLURM --------------------------------------------------

def _train_cmd(data: Path, run_dir: Path, ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnnbench.training.train", "--cell", "gru", "--hidden", "24",
            "--layers", "2", "--epochs", "3", "--batch-size", "4", "--bptt", "10",
            "--device", "cpu", "--data-dir", str(data), "--run-dir", str(run_dir),
            "--checkpoint", str(ckpt), "--threads", "1", *extra]


def test_time_limit_checkpoints_exits_for_a_retry_and_the_rerun_ends_identical(
        tiny_data, tmp_path):
    ref = tmp_path / "ref"
    assert subprocess.run(_train_cmd(tiny_data, ref, tmp_path / "ref.pt"),
                          capture_output=True).returncode == 0
    run, ckpt = tmp_path / "run", tmp_path / "run.pt"
    # stop 10 ms after the start: already past when the trainer is built, so it stops after
    # its first minibatch (a real job passes its SLURM limit, and stops minutes before it)
    first = subprocess.run(_train_cmd(tiny_data, run, ckpt, "--time-limit-s", "0.02",
                                      "--time-limit-margin-s", "0.01"),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 75, first.stderr
    assert "of the 0.02 s time limit used: checkpointing" in first.stderr
    state = torch.load(ckpt, weights_only=True)
    assert (state["epoch"], state["batch"]) == (0, 1)
    assert not (run / "train.json").exists()
    # the retry resumes, and ends where the uninterrupted run did
    second = subprocess.run(_train_cmd(tiny_data, run, ckpt), capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stderr
    pd.testing.assert_frame_equal(untimed(pd.read_csv(ref / "history.csv")),
                                  untimed(pd.read_csv(run / "history.csv")), check_exact=True)
    assert gzip.decompress((ref / "steps.csv.gz").read_bytes()) == \
        gzip.decompress((run / "steps.csv.gz").read_bytes())
