"""Resume first (issue #33, item 2): a run with a checkpoint is scheduled before new runs, the
plan says how many resume, and the stop line counts this invocation's checkpoints only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rnnbench.config import RunConfig
from rnnbench.experiment.grid import Run
from rnnbench.workflow.progress import UserStop
from rnnbench.workflow.wiring import resume_note

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkpointed_run_trains_first_and_the_plan_says_so(tmp_path, ptb_mirror):
    saved = tmp_path / "results/checkpoints/ptb/quick/lstm-h32-l1-s1.pt"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(b"")
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "-n", "--cores", "2", "--configfile", str(ROOT / "config/quick.yaml"), "--config",
         f"mirror={ptb_mirror}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = out.stdout.split("rule ")
    trains = [j for j in jobs if j.startswith("train_model:")]
    assert len(trains) == 4
    first = [j for j in trains if "run=lstm-h32-l1-s1" in j]
    assert "priority: 5" in first[0]
    assert all("priority: 5" not in j for j in trains if j not in first)
    assert "Resume: 1 runs to resume from checkpoints, before any new run: " \
           "quick/lstm-h32-l1-s1." in " ".join(out.stderr.split())


def test_resume_note_names_runs_with_a_checkpoint_and_no_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [Run("e", f"lstm-h8-l1-s{s}", RunConfig("lstm", 8, seed=s)) for s in (1, 2, 3)]
    for run in runs[:2]:
        Path(f"ck/ptb/e/{run.run_id}.pt").parent.mkdir(parents=True, exist_ok=True)
        Path(f"ck/ptb/e/{run.run_id}.pt").write_bytes(b"")
    Path(runs[1].path).mkdir(parents=True)
    Path(runs[1].path, "train.json").write_text("{}")  # finished: its checkpoint is stale
    assert "Resume: 1 runs" in resume_note(runs, "ck") and "e/lstm-h8-l1-s1" in resume_note(
        runs, "ck")
    assert resume_note(runs[2:], "ck") == ""


def test_the_stop_line_counts_only_the_checkpoints_this_invocation_wrote(tmp_path):
    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    old.write_bytes(b"")
    past = time.time() - 3600
    os.utime(old, (past, past))  # left by an earlier stop
    stop = UserStop([old, new])
    assert stop.checkpointed() == 0
    new.write_bytes(b"")
    assert stop.checkpointed() == 1
