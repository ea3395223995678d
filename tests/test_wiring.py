"""The workflow's wiring (rnnbench.workflow.wiring): trial groups, entrants and planned
trials of a tuned experiment, the flags of a selection, published runs and baselines."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from helpers import tuned_config

from rnnbench.config import TRAINING_KEYS, RunConfig
from rnnbench.experiment.grid import expand
from rnnbench.experiment.tuning import Tuning
from rnnbench.workflow import wiring


@pytest.fixture(scope="module")
def tuned():
    """fairtiny: rnn_tanh and lstm at one budget, 3 lr points, rungs [3, 2], seeds 1 and 2."""
    config = tuned_config()
    runs, _ = expand(config)
    spec = config["experiments"]["fairtiny"]
    tuning = Tuning.from_spec("fairtiny", spec["tuning"], TRAINING_KEYS, spec["seeds"])
    return config, runs, tuning


def test_trials_group_per_model_and_rung_in_point_order(tuned):
    _, runs, tuning = tuned
    groups = wiring.trial_groups([r for r in runs if r.role == "trial"])
    assert len(groups) == 2 and {g for _, _, g in groups} == {"rnn_tanh-p3k-l1", "lstm-p3k-l1"}
    for (corpus, experiment, group), rungs in groups.items():
        assert (corpus, experiment) == ("ptb", "fairtiny") and sorted(rungs) == [0, 1]
        for trials in rungs.values():
            assert [dict(t.point) for t in trials] == tuning.points()
            assert {t.group for t in trials} == {group}


def test_planned_trials_follow_the_plan_then_a_finished_selection(tuned, tmp_path):
    _, runs, tuning = tuned
    groups = wiring.trial_groups([r for r in runs if r.role == "trial"])
    planned = wiring.planned_trials(groups, lambda e: tuning, root=str(tmp_path))
    assert tuning.planned() == [3, 2] and len(planned) == 2 * (3 + 2)
    # once rung 0 of the lstm has run, its rung 1 is the points that rung promoted
    done = tmp_path / "ptb/fairtiny/lstm-p3k-l1/rung0.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"promoted": [{"lr": 8.0}]}))
    planned = wiring.planned_trials(groups, lambda e: tuning, root=str(tmp_path))
    lstm1 = [t for t in planned if t.group == "lstm-p3k-l1" and t.rung == 1]
    assert [dict(t.point) for t in lstm1] == [{"lr": 8.0}] and len(planned) == 3 + 2 + 3 + 1
    assert wiring.promoted(groups[("ptb", "fairtiny", "lstm-p3k-l1")][1], done) == lstm1


def test_selection_flags_name_the_entrants_and_keep_one_at_the_last_rung(tuned):
    _, runs, tuning = tuned
    groups = wiring.trial_groups([r for r in runs if r.role == "trial"])
    rungs = groups[("ptb", "fairtiny", "lstm-p3k-l1")]
    labels = {"corpus": "ptb", "experiment": "fairtiny", "model": "lstm-p3k-l1"}
    first = wiring.selection_flags(rungs[0], tuning, labels, rung=0, last_rung=1)
    assert shlex.split(first["dirs"]) == [t.path for t in rungs[0]]
    assert json.loads(first["points"]) == tuning.points() and first["rungs"] == 2
    assert first["keep"] == tuning.promoted_count(3) == 2
    assert json.loads(first["labels"]) == {**labels, "cell": "lstm", "budget": 3000,
                                           "budget_kind": None,
                                           "hidden": rungs[0][0].config.hidden, "layers": 1}
    assert wiring.selection_flags(rungs[1][:2], tuning, labels, rung=1, last_rung=1)["keep"] == 1
    assert json.loads(wiring.selection_flags([], tuning, labels, 1, 1)["labels"]) == labels


def test_published_runs_leave_out_the_unpublished_and_say_so(tuned, tmp_path):
    _, runs, _ = tuned
    finals = [r for r in runs if r.role == "final"]
    with pytest.raises(ValueError, match="no run of this config is published under"):
        wiring.published_runs(finals, reference=str(tmp_path))
    (tmp_path / finals[0].experiment / finals[0].run_id).mkdir(parents=True)
    (tmp_path / finals[0].experiment / finals[0].run_id / "train.json").write_text("{}")
    published, note = wiring.published_runs(finals, reference=str(tmp_path))
    assert published == finals[:1]
    assert note.startswith(f"source: reference: {len(finals) - 1} of {len(finals)} runs")
    assert f"fairtiny/{finals[1].run_id}" in note and finals[0].run_id not in note
    assert wiring.run_dirs(published, True, str(tmp_path)) == [
        f"{tmp_path}/fairtiny/{finals[0].run_id}"]
    assert wiring.run_dirs(published, False) == [finals[0].path]


def test_a_fresh_checkout_resumes_only_published_runs_of_its_commit_and_config(
        tuned, tmp_path, monkeypatch):
    _, runs, tuning = tuned
    monkeypatch.chdir(tmp_path)
    final = next(r for r in runs if r.role == "final")
    trial = next(r for r in runs if r.role == "trial")
    files = ("train.json", "eval.json")

    def publish(run, commit="abc", changes=(), **config):
        copy = tmp_path / wiring.published_dir(run)
        copy.mkdir(parents=True, exist_ok=True)
        for name in files + wiring.TRIAL_FILES:
            (copy / name).write_text("x")
        (copy / "train.json").write_text(json.dumps(
            {"code_version": commit, "code_changes": list(changes),
             "config": {**run.config.to_dict(), **config}}))
        return copy

    tuned_keys = {"fairtiny": set(tuning.space)}
    assert wiring.published_dir(trial).endswith(f"fairtiny/trials/{trial.run_id}")
    publish(trial)
    copy = publish(final, lr=8.0)  # the tuned lr of a final run is its selection's
    resumed, stale = wiring.resumed_runs([final, trial], "abc", files, tuned_keys)
    assert resumed == {final.path, trial.path} and stale == []
    assert wiring.run_dirs([final], False, resumed=resumed) == [wiring.published_dir(final)]
    # nothing from a checkout of uncommitted training code (commit None); another commit,
    # uncommitted training code or another configuration is stale
    assert wiring.resumed_runs([final], None, files, tuned_keys) == (set(), [])
    assert wiring.resumed_runs([final], "def", files, tuned_keys)[1] == [
        f"fairtiny/{final.run_id}"]
    publish(final, commit="abc+dirty", lr=8.0)  # a change outside src/: the same training code
    assert wiring.resumed_runs([final], "abc", files, tuned_keys)[0] == {final.path}
    publish(final, commit="abc+dirty", changes=["src/rnnbench/training/train.py"])
    assert wiring.resumed_runs([final], "abc", files, tuned_keys)[0] == set()
    publish(trial, max_batches=99)
    assert wiring.resumed_runs([trial], "abc", files, tuned_keys) == (
        set(), [f"fairtiny/{trial.run_id}"])
    # an incomplete copy is stale; a run trained here is read from here
    (copy / "eval.json").unlink()
    assert wiring.resumed_runs([final], "abc", files, tuned_keys)[0] == set()
    publish(final)
    (tmp_path / final.path).mkdir(parents=True)
    (tmp_path / final.path / "train.json").write_text("{}")
    assert wiring.resumed_runs([final], "abc", files, tuned_keys) == (set(), [])
    note = wiring.resumed_note({"a", "b"}, [f"x/r{i}" for i in range(7)])
    assert "Resumed: 2 runs are taken from their published copies" in note
    assert "Stale: 7 published runs" in note and "x/r4 and 2 more" in note
    assert wiring.resumed_note(set(), []) == ""


def test_a_baseline_without_a_published_run_is_named(tmp_path):
    (tmp_path / "seed_rnn/rnn_tanh-h150-l1-s1").mkdir(parents=True)
    (tmp_path / "seed_rnn/rnn_tanh-h150-l1-s1/train.json").write_text("{}")
    assert wiring.baseline_dirs({"bf16": "seed_rnn"}, str(tmp_path)) == [
        f"{tmp_path}/seed_rnn/rnn_tanh-h150-l1-s1"]
    with pytest.raises(ValueError, match="experiment 'bf16_lstm': baseline 'seed_lstm' has no"):
        wiring.baseline_dirs({"bf16": "seed_rnn", "bf16_lstm": "seed_lstm"}, str(tmp_path))
    config = {"experiments": {"a": {"baseline": "seed_rnn"}, "b": {}, "c": {"baseline": ""}}}
    assert wiring.experiments_with(config, "baseline") == {"a": "seed_rnn"}


def test_job_flags_and_resources_follow_the_run():
    assert wiring.eval_flags({}) == "--weights best"
    assert wiring.eval_flags({"eval_weights": "final", "stream_test": True}) == (
        "--weights final --stream-test")
    small, big = RunConfig(cell="rnn_tanh", hidden=150, epochs=2), RunConfig(
        cell="lstm", hidden=650, layers=2, epochs=2)
    assert wiring.train_mem_mb(small) == 2600 < wiring.train_mem_mb(big)
    assert wiring.train_runtime(small, 1) == 10 + 2 * 5
    assert wiring.train_runtime(small, 2) == 2 * wiring.train_runtime(small, 1)
    assert wiring.train_runtime(big, 1) > wiring.train_runtime(small, 1)


def test_tuning_flags_carry_space_trial_seed_and_final_seeds(tuned):
    config, _, tuning = tuned
    flags = json.loads(wiring.tuning_flags({"fairtiny": tuning}, config))
    assert flags == {"fairtiny": {"space": {"lr": [0.5, 2.0, 8.0]},
                                  "trial_seed": tuning.trial_seed, "seeds": [1, 2]}}


def test_wiring_imports_no_torch():
    # Snakemake imports it to build the job graph
    code = "import sys, rnnbench.workflow.wiring; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_experiments_marked_later_are_planned_not_trained_unless_asked():
    from rnnbench.config import RunConfig
    from rnnbench.experiment.grid import Run
    from rnnbench.workflow.wiring import later_note, split_later

    runs = [Run("now", "lstm-h8-l1-s1", RunConfig("lstm", 8)),
            Run("big", "lstm-h80-l1-s1", RunConfig("lstm", 80)),
            Run("big", "lstm-h80-l1-lr1-rung0-s0", RunConfig("lstm", 80), role="trial")]
    config = {"experiments": {"now": {}, "big": {"later": True}}}
    train, later = split_later(runs, config)
    assert [r.experiment for r in train] == ["now"] and len(later) == 2
    assert split_later(runs, {**config, "run_later": True}) == (runs, [])
    note = later_note(later, "about 3 hours on 2 core(s)")
    assert "big, 2 final runs" not in note and "big, 1 final runs and 1 tuning trials" in note
    assert "about 3 hours" in note and "--config run_later=True" in note
    assert later_note([], "") == ""
