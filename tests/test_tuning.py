"""Tuning: equal trial points per model, successive halving on validation only, final seeds."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_pipeline import ROOT, snakemake

from rnnbench.config import TRAINING_KEYS, RunConfig
from rnnbench.grid import Run, expand
from rnnbench.schema import ConfigError, check_config
from rnnbench.tuning import Tuning, score, select, selected_config

SPEC = {"space": {"lr": [0.5, 2.0, 8.0]}, "trials": 3, "keep": 0.5,
        "rungs": [{"epochs": 1, "max_batches": 4}, {"epochs": 1, "max_batches": 8}]}


def tiny_config(**tuning) -> dict:
    """quick.yaml as a tuned experiment: two cells at one recurrent budget, two seeds."""
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    config["recipes"]["quick"].update(epochs=1, max_batches=10, max_eval_batches=5)
    config["experiments"] = {"fairtiny": {
        "cells": ["rnn_tanh", "lstm"], "budgets": [3000], "layers": [1], "seeds": [1, 2],
        "recipe": "quick", "tuning": {**SPEC, **tuning}}}
    return config


def test_points_are_the_whole_grid_or_a_fixed_sample_the_same_for_every_model():
    whole = Tuning.from_spec("x", SPEC, TRAINING_KEYS)
    assert whole.points() == [{"lr": 0.5}, {"lr": 2.0}, {"lr": 8.0}]
    big = Tuning.from_spec("x", {**SPEC, "space": {"lr": [1, 2, 3, 4], "clip_norm": [1, 5]},
                                 "trials": 5}, TRAINING_KEYS)
    assert len(big.points()) == 5 and big.points() == big.points()  # drawn once, fixed seed
    assert len({json.dumps(p, sort_keys=True) for p in big.points()}) == 5
    assert big.planned() == [5, 3] and whole.planned() == [3, 2]
    with pytest.raises(ConfigError, match="learning_rate, which is not a training key"):
        Tuning.from_spec("x", {**SPEC, "space": {"learning_rate": [1]}}, TRAINING_KEYS)


def test_a_tuned_experiment_expands_into_trials_per_rung_and_final_seeds():
    config = tiny_config()
    check_config(config, ROOT / "config/schema/config.schema.yaml")
    runs, _ = expand(config)
    trials = [r for r in runs if r.role == "trial"]
    finals = [r for r in runs if r.role == "final"]
    assert len(trials) == 2 * 3 * 2 and len(finals) == 2 * 2
    by_id = {r.run_id: r for r in runs}
    t = by_id["lstm-p3k-l1-lr8-rung1-s1"]
    assert (t.config.lr, t.config.max_batches, t.config.seed, t.rung) == (8.0, 8, 1, 1)
    assert t.group == "lstm-p3k-l1" and dict(t.point) == {"lr": 8.0}
    assert by_id["lstm-p3k-l1-s2"].role == "final" and by_id["lstm-p3k-l1-s2"].config.seed == 2


def test_an_option_axis_with_null_keeps_the_plain_id():
    config = tiny_config()
    config["experiments"]["fairtiny"]["cell_overrides"] = {"lstm": {"forget_bias": [None, 1.0]}}
    ids = {r.run_id for r in expand(config)[0] if r.role == "final"}
    assert {"lstm-p3k-l1-s1", "lstm-p3k-l1-forget_bias1-s1", "rnn_tanh-p3k-l1-s1"} <= ids


def _trial(folder: Path, run_id: str, valid: list[float], status: str = "ok",
           test_ppl: float | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.json").write_text(json.dumps({"run_id": run_id, "status": status,
                                                   "config": {"lr": 1.0}}))
    pd.DataFrame({"epoch": range(len(valid)), "valid_ppl": valid}).to_csv(
        folder / "history.csv", index=False)
    if test_ppl is not None:  # a trial never has one; a poisoned one must change nothing
        (folder / "eval.json").write_text(json.dumps({"test_ppl": test_ppl}))
    return folder


def test_selection_ranks_on_validation_and_never_reads_a_test_metric(tmp_path):
    points = [{"lr": 0.5}, {"lr": 2.0}, {"lr": 8.0}, {"lr": 32.0}]
    dirs = [_trial(tmp_path / "a", "a", [300.0, 250.0], test_ppl=1.0),  # poisoned: best test
            _trial(tmp_path / "b", "b", [260.0, 200.0]),
            _trial(tmp_path / "c", "c", [280.0], test_ppl=1.0),
            _trial(tmp_path / "d", "d", [math.nan], status="diverged", test_ppl=1.0)]
    result = select([score(d) for d in dirs], points, keep_count=2)
    assert result["promoted"] == [{"lr": 2.0}, {"lr": 0.5}]  # best validation 200, then 250
    assert result["selected"] == {"lr": 2.0}
    ranks = {t["run_id"]: (t["rank"], t["status"], t["promoted"]) for t in result["trials"]}
    assert ranks["d"] == (4, "diverged", False)  # a row with its status, ranked last
    (tmp_path / "a" / "eval.json").write_text("{not json")  # never opened
    assert select([score(d) for d in dirs], points, 2)["selected"] == {"lr": 2.0}


def test_a_final_run_takes_the_selected_point_or_says_why_it_cannot(tmp_path):
    run = Run("fair", "lstm-p3k-l1-s1", RunConfig(cell="lstm", hidden=19, lr=1.0), "ptb",
              "final", "lstm-p3k-l1")
    chosen = tmp_path / "rung1.json"
    chosen.write_text(json.dumps({"selected": {"lr": 8.0}}))
    assert selected_config(run, [str(chosen)]).lr == 8.0
    chosen.write_text(json.dumps({"selected": None}))
    with pytest.raises(ConfigError, match="No trial of fair/lstm-p3k-l1 finished its last"):
        selected_config(run, str(chosen))


def test_dry_run_shows_the_tuning_plan(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config), "-q", "rules")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "Tuning fairtiny: 2 models x 3 trials each" in out and "trials per rung [3, 2]" in out
    assert "select_trials" in out and "checkpoint jobs" in out


@pytest.mark.slow
def test_tiny_tuned_experiment_selects_trains_final_seeds_and_compares(tmp_path, ptb_mirror):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    args = ["--cores", "2", "--configfile", str(config), "--config", f"mirror={ptb_mirror}"]
    result = snakemake(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results"
    trials = pd.read_csv(results / "studies/tiny/tables/trials.csv")
    assert len(trials) == 2 * (3 + 2)  # every point at rung 0, the better half at rung 1
    for model, block in trials.groupby("model"):
        first = block[block["rung"] == 0].sort_values("valid_ppl")
        promoted = set(block[block["rung"] == 1]["lr"])
        assert promoted == set(first["lr"].iloc[:2]), model  # the two best on validation
        chosen = block[block["selected"]]
        assert len(chosen) == 1 and chosen["rung"].iloc[0] == 1
        best = block[block["rung"] == 1].sort_values("valid_ppl")["lr"].iloc[0]
        assert chosen["lr"].iloc[0] == best
        for seed in (1, 2):  # the final runs train the selected point, and only they test
            final = results / f"runs/ptb/fairtiny/{model}-s{seed}"
            assert json.loads((final / "train.json").read_text())["config"]["lr"] == best
            assert (final / "eval.json").exists()
    trial_dirs = [results / "runs/ptb/fairtiny" / r for r in trials["run_id"]]
    assert all((d / "train.json").exists() and not (d / "eval.json").exists()
               for d in trial_dirs)
    text = (results / "studies/tiny/tables/comparisons.md").read_text()
    assert "| rnn_tanh |" in text and "Δ vs lstm" in text and "(n = 2)" in text
    runs = pd.read_csv(results / "studies/tiny/tables/runs.csv")
    assert sorted(runs["run_id"]) == ["lstm-p3k-l1-s1", "lstm-p3k-l1-s2", "rnn_tanh-p3k-l1-s1",
                                      "rnn_tanh-p3k-l1-s2"]
    assert (runs["recurrent_params"] == runs["params"] - runs["embedding_decoder_params"]).all()
    assert (results / "studies/tiny/figures/tuning_curve.png").stat().st_size > 1000
    again = snakemake(tmp_path, "-n", *args)  # a rerun repeats no finished trial
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # published (small files, trials.csv per experiment) and rebuilt from that alone
    published = snakemake(tmp_path, *args, "publish=True")
    assert published.returncode == 0, published.stderr[-3000:]
    reference = tmp_path / "results/reference"
    assert pd.read_csv(reference / "fairtiny/trials.csv").equals(trials)
    clean = tmp_path / "clean"
    shutil.copytree(reference, clean / "results/reference")
    rebuilt = snakemake(clean, "--cores", "2", "--configfile", str(config), "--config",
                        "source=reference")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert not (clean / "results/runs").exists()  # nothing trained
    assert pd.read_csv(clean / "results/studies/tiny/tables/trials.csv").equals(trials)
    assert len(pd.read_csv(clean / "results/studies/tiny/tables/runs.csv")) == 4
    assert (clean / "results/studies/tiny/figures/tuning_curve.png").exists()
    assert (clean / "results/studies/tiny/tables/comparisons.md").read_text() == text
