"""The session a Snakemake run opens (rnnbench.workflow.session): the plan with its notes,
and the refusal of what this machine cannot run, before any job."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rnnbench.config import RunConfig
from rnnbench.workflow import session

ROOT = Path(__file__).resolve().parents[1]


def _runs(n: int) -> list[SimpleNamespace]:
    cfg = RunConfig(cell="lstm", hidden=32, epochs=2, max_batches=30)
    return [SimpleNamespace(config=cfg, path=f"results/runs/x/r{i}") for i in range(n)]


def _open(tmp_path: Path, runs, **config) -> session.Session:
    quick = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    return session.open_session(
        runs, {**quick, "device": "cpu", **config}, data_dir=tmp_path / "data",
        reference_root=ROOT / "results/reference", cores=2, jobs=None,
        notes=["\n  Resumed: 3 runs are taken from their published copies.", "",
               "Tuning x: 2 models."],
        checkpoints=[f"results/checkpoints/{r.path}.pt" for r in runs],
        is_dry_run=lambda: False, logger=logging.getLogger("test-session"))


def test_the_plan_comes_first_then_each_note_on_its_own_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opened = _open(tmp_path, _runs(2))
    lines = opened.text.splitlines()
    assert lines[0].startswith("rnnbench plan: 2 training runs (0 done, 2 to train) on the CPU")
    assert lines[-2:] == ["  Resumed: 3 runs are taken from their published copies.",
                          "  Tuning x: 2 models."]
    assert opened.checkpoints == ["results/checkpoints/results/runs/x/r0.pt",
                                  "results/checkpoints/results/runs/x/r1.pt"]


def test_nothing_left_to_train_prints_no_plan_and_no_notes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = _runs(1)
    Path(runs[0].path).mkdir(parents=True)
    Path(runs[0].path, "train.json").write_text("{}")
    assert _open(tmp_path, runs).text == ""


def test_a_run_this_machine_cannot_hold_stops_with_the_plan_printed(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(session, "machine_memory_bytes", lambda: 1_000_000)  # 1 MB
    with pytest.raises(ValueError, match="run r0 needs about .* of memory to train"):
        _open(tmp_path, _runs(1))
    assert "rnnbench plan: 1 training runs" in capsys.readouterr().err
    assert _open(tmp_path, _runs(1), allow_over_memory=True).text  # allowed: planned


def test_the_progress_line_counts_the_trials_each_rung_promoted(tmp_path, monkeypatch):
    # issue #32 i: the plan counted a later rung's first points; the rung trains the promoted
    from rnnbench.config import TRAINING_KEYS
    from rnnbench.experiment.grid import expand
    from rnnbench.experiment.tuning import Tuning
    from rnnbench.workflow import wiring

    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    spec = {"space": {"lr": [0.5, 2.0, 8.0]}, "keep": 0.5,
            "rungs": [{"epochs": 1, "max_batches": 4}, {"epochs": 1, "max_batches": 8}]}
    config["experiments"] = {"t": {"cells": ["lstm"], "budgets": [3000], "layers": [1],
                                   "seeds": [1], "recipe": "quick", "tuning": spec}}
    runs, _ = expand(config, 10_000)
    trials = [r for r in runs if r.role == "trial"]
    finals = [r for r in runs if r.role != "trial"]
    groups = wiring.trial_groups(trials)

    def replan():
        return finals + wiring.planned_trials(
            groups, lambda e: Tuning.from_spec(e, spec, TRAINING_KEYS, [1]))

    opened = session.open_session(
        replan(), {**config, "device": "cpu"}, data_dir=tmp_path / "data",
        reference_root=ROOT / "results/reference", cores=2, jobs=None, notes=[],
        checkpoints=[], is_dry_run=lambda: False, logger=logging.getLogger("test-session"),
        replan=replan, candidates=trials)
    assert opened.text.startswith("rnnbench plan: 6 training runs")  # 3 + 2 trials, 1 final

    def finish(lr: float, rung: int) -> str | None:
        trial = next(t for t in trials if t.rung == rung and dict(t.point)["lr"] == lr)
        Path(trial.path).mkdir(parents=True)
        Path(trial.path, "train.json").write_text('{"train_seconds": 1.0}')
        return opened.progress.update()

    for lr in (0.5, 2.0, 8.0):
        line = finish(lr, 0)
    assert line.startswith("[rnnbench] 3/6 runs done")
    # rung 0 promotes lr 2 and 8, not the first two points the plan counted at the start
    selection = Path(wiring.TUNING, "ptb/t/lstm-p3k-l1/rung0.json")
    selection.parent.mkdir(parents=True)
    selection.write_text('{"promoted": [{"lr": 2.0}, {"lr": 8.0}]}')
    assert finish(8.0, 1).startswith("[rnnbench] 4/6 runs done")
    assert finish(2.0, 1).startswith("[rnnbench] 5/6 runs done")
    # then the final run, on the selected point
    Path(finals[0].path).mkdir(parents=True)
    Path(finals[0].path, "train.json").write_text('{"train_seconds": 1.0}')
    assert opened.progress.update().startswith("[rnnbench] 6/6 runs done")


def test_a_tuned_grid_ends_with_every_run_of_its_plan_counted(tmp_path):
    # the rung promotes lr 2 and 0.5; the plan at the start counted lr 0.5 and 1 at rung 1
    import subprocess
    import sys

    from helpers import write_corpus

    write_corpus(tmp_path / "mine")
    configfile = tmp_path / "tune.yaml"
    configfile.write_text(yaml.safe_dump({
        "corpus": {"name": "mine", "max_vocab": None,
                   "files": {s: {"url": f"mine/{s}.txt"} for s in ("train", "valid", "test")}},
        "context": False,
        "recipes": {"tiny": {"epochs": 1, "lr": 1.0, "batch_size": 4, "bptt": 5,
                             "max_batches": 4, "max_eval_batches": 2}},
        "experiments": {"tiny": {
            "cells": ["rnn_relu"], "hidden": [8], "layers": [1], "seeds": [1], "recipe": "tiny",
            "tuning": {"space": {"lr": [0.5, 1.0, 2.0]}, "keep": 0.5,
                       "rungs": [{"epochs": 1, "max_batches": 3},
                                 {"epochs": 1, "max_batches": 5}]}}}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--cores", "1", "results/runs/mine/tiny/rnn_relu-h8-l1-s1/train.json",
         "--configfile", str(configfile)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "runs done" in line]
    trained = list((tmp_path / "results/runs/mine/tiny").glob("*/train.json"))
    assert len(trained) == 6 and lines[-1] == "[rnnbench] 6/6 runs done", lines
