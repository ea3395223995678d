"""Tuning: equal trial points per model, successive halving on validation only, final seeds."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT, TUNING_SPEC, job_counts, snakemake, tuned_config

from rnnbench.config import TRAINING_KEYS, ConfigError, RunConfig
from rnnbench.config.schema import check_config
from rnnbench.experiment.grid import Run, expand
from rnnbench.experiment.trials import annotate, edge_flags, with_edges
from rnnbench.experiment.tuning import Tuning, main, score, select, selected_config


def test_points_are_the_full_grid_unless_a_sample_is_asked_for():
    whole = Tuning.from_spec("x", TUNING_SPEC, TRAINING_KEYS)
    assert whole.points() == [{"lr": 0.5}, {"lr": 2.0}, {"lr": 8.0}]
    space = {"lr": [1, 2, 3, 4], "clip_norm": [1, 5]}
    full = Tuning.from_spec("x", {**TUNING_SPEC, "space": space}, TRAINING_KEYS)
    assert full.trials is None and len(full.points()) == 8 == len(full.grid())
    assert {(p["lr"], p["clip_norm"]) for p in full.points()} == {
        (lr, c) for lr in (1, 2, 3, 4) for c in (1, 5)}  # every point, lr 1 with both
    assert "the full grid" in full.describe("x", 2, 3)
    asked = Tuning.from_spec("x", {**TUNING_SPEC, "space": space, "trials": 8}, TRAINING_KEYS)
    assert asked.points() == full.points()  # a sample as big as the grid is the grid
    big = Tuning.from_spec("x", {**TUNING_SPEC, "space": space, "trials": 5}, TRAINING_KEYS)
    assert "a random sample of 5 of the 8 grid points" in big.describe("x", 2, 3)
    assert len(big.points()) == 5 and big.points() == big.points()  # drawn once, fixed seed
    assert len({json.dumps(p, sort_keys=True) for p in big.points()}) == 5
    assert big.planned() == [5, 3] and whole.planned() == [3, 2]
    with pytest.raises(ConfigError, match="learning_rate, which is not a training key"):
        Tuning.from_spec("x", {**TUNING_SPEC, "space": {"learning_rate": [1]}}, TRAINING_KEYS)


def test_a_tuned_experiment_expands_into_trials_per_rung_and_final_seeds():
    config = tuned_config()
    check_config(config, ROOT / "config/schema/config.schema.yaml")
    runs, _ = expand(config)
    trials = [r for r in runs if r.role == "trial"]
    finals = [r for r in runs if r.role == "final"]
    assert len(trials) == 2 * 3 * 2 and len(finals) == 2 * 2
    by_id = {r.run_id: r for r in runs}
    t = by_id["lstm-p3k-l1-lr8-rung1-s0"]
    assert (t.config.lr, t.config.max_batches, t.config.seed, t.rung) == (8.0, 8, 0, 1)
    assert t.group == "lstm-p3k-l1" and dict(t.point) == {"lr": 8.0}
    assert by_id["lstm-p3k-l1-s2"].role == "final" and by_id["lstm-p3k-l1-s2"].config.seed == 2


def test_an_option_axis_with_null_keeps_the_plain_id():
    config = tuned_config()
    config["experiments"]["fairtiny"]["cell_overrides"] = {"lstm": {"forget_bias": [None, 1.0]}}
    ids = {r.run_id for r in expand(config)[0] if r.role == "final"}
    assert {"lstm-p3k-l1-s1", "lstm-p3k-l1-forget_bias1-s1", "rnn_tanh-p3k-l1-s1"} <= ids


def _trial(folder: Path, run_id: str, valid: list[float], status: str = "ok",
           test_ppl: float | None = None, vocab_size: int = 10_000) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.json").write_text(json.dumps({
        "run_id": run_id, "status": status, "vocab_size": vocab_size, "config": {"lr": 1.0},
        "diverged_step": 7 if status == "diverged" else None}))
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
    config.write_text(yaml.safe_dump(tuned_config()))
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config), "-q", "rules")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "Tuning fairtiny: 2 models x 3 trials each" in out and "trials per rung [3, 2]" in out
    assert "select_trials" in out and "checkpoint jobs" in out


@pytest.mark.slow
def test_tiny_tuned_experiment_selects_trains_final_seeds_and_compares(tmp_path, ptb_mirror):
    config = tmp_path / "tiny.yaml"
    # allow_edge: the publish step below must not depend on where 10 batches put the best lr
    config.write_text(yaml.safe_dump(tuned_config(allow_edge=True)))
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
        edge = edge_flags({"lr": chosen["lr"].iloc[0]}, TUNING_SPEC["space"])
        marked = chosen["edge"].iloc[0]  # read back: NaN when no model's is on an edge
        assert (marked if isinstance(marked, str) else "") == "; ".join(edge), model
        assert (block["trial_seed"] == 0).all() and not block["shared_seed"].any()
        assert (block["underfilled"] == (block["finished_in_rung"]
                                         < block["planned_promotions"])).all()
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
    # Each trial is published too. A replaced machine (only the committed reference files)
    # resumes from them: its plan trains nothing (a dry run: the tables it would build are
    # the reference rebuild's, checked just above).
    copies = (reference / "fairtiny/trials").glob("*/train.json")
    assert sorted(p.parent.name for p in copies) == sorted(trials["run_id"])
    fresh = tmp_path / "fresh"
    shutil.copytree(reference, fresh / "results/reference")
    resumed = snakemake(fresh, "-n", *args, "publish=True")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert "Resumed: 14 runs are taken from their published copies" in " ".join(out.split())
    assert "train_model" not in job_counts(resumed) and "collect_trials" in resumed.stdout
    # the runs in flight when the machine went (never published) train alone: a final run,
    # and a rung-1 trial (its selection is redone, the same; its model's final runs are kept).
    # A real run: a dry run cannot see past the redone selection (a checkpoint job).
    shutil.rmtree(fresh / "results/reference/fairtiny/lstm-p3k-l1-s2")
    trial = trials[(trials["rung"] == 1) & (trials["model"] == "rnn_tanh-p3k-l1")]["run_id"].iloc[0]
    shutil.rmtree(fresh / "results/reference/fairtiny/trials" / trial)
    partial = snakemake(fresh, *args, "publish=True")
    assert partial.returncode == 0, partial.stderr[-3000:]
    assert sorted(p.name for p in (fresh / "results/runs/ptb/fairtiny").iterdir()) == [
        "lstm-p3k-l1-s2", trial]
    assert pd.read_csv(fresh / "results/studies/tiny/tables/trials.csv").equals(trials)
    assert (fresh / "results/studies/tiny/tables/comparisons.md").read_text() == text


def test_the_trial_seed_is_one_no_final_run_uses_unless_explicitly_shared():
    assert Tuning.from_spec("x", TUNING_SPEC, TRAINING_KEYS, seeds=[0, 1, 3]).trial_seed == 2
    assert Tuning.from_spec("x", TUNING_SPEC, TRAINING_KEYS, seeds=[1, 2]).trial_seed == 0
    mine = Tuning.from_spec("x", {**TUNING_SPEC, "trial_seed": 9}, TRAINING_KEYS, seeds=[1, 2])
    assert (mine.trial_seed, mine.shared_seed) == (9, False)
    with pytest.raises(ConfigError, match=r"fair\.tuning\.trial_seed is 2, which is also one "
                       r"of its final seeds \(\[1, 2\]\).*allow_shared_seed: true"):
        Tuning.from_spec("fair", {**TUNING_SPEC, "trial_seed": 2}, TRAINING_KEYS, seeds=[1, 2])
    shared = Tuning.from_spec("x", {**TUNING_SPEC, "trial_seed": 1, "allow_shared_seed": True},
                              TRAINING_KEYS, seeds=[1, 2])
    assert shared.shared_seed and "shared with the final runs" in shared.describe("x", 1, 2)


def test_a_shared_trial_seed_stops_the_workflow_before_any_job(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tuned_config(trial_seed=1)))
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config))
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "fairtiny.tuning.trial_seed is 1" in out
    assert "select_trials" not in out and not (tmp_path / "results").exists()


def test_fair_keeps_its_published_trials_with_the_shared_seed_opt_in():
    """fair.yaml asks for its 8 of 14 points and its shared seed: its trials are exactly the
    published ones (results/reference/fair/trials.csv), so its numbers stay reproducible."""
    config = yaml.safe_load((ROOT / "config/fair.yaml").read_text())
    check_config(config, ROOT / "config/schema/config.schema.yaml")
    trials = [r for r in expand(config)[0] if r.role == "trial" and r.rung == 0]
    published = pd.read_csv(ROOT / "results/reference/fair/trials.csv")
    assert sorted(r.run_id for r in trials) == sorted(published[published["rung"] == 0]["run_id"])
    assert {r.config.seed for r in trials} == {1}
    del config["experiments"]["fair"]["tuning"]["allow_shared_seed"]
    with pytest.raises(ConfigError, match="trial_seed is 1, which is also one of its final"):
        expand(config)


def test_a_trial_worse_than_a_uniform_guess_or_not_finite_is_diverged_never_promoted(tmp_path):
    points = [{"lr": x} for x in (0.25, 0.5, 1.0, 2.0, 4.0)]
    dirs = [_trial(tmp_path / "a", "a", [3.3e137]),  # "ok" in training, worse than uniform
            _trial(tmp_path / "b", "b", [10_001.0]),  # just worse than a uniform guess
            _trial(tmp_path / "c", "c", [math.inf, math.nan]),
            _trial(tmp_path / "d", "d", [9_000.0, 10_000.0]),  # best 9000: finished
            _trial(tmp_path / "e", "e", [math.nan], status="diverged")]
    scored = [score(d) for d in dirs]
    assert [s["status"] for s in scored] == ["diverged", "diverged", "diverged", "ok", "diverged"]
    assert "3.3e+137 is worse than a uniform guess over the 10000-word vocabulary" in (
        scored[0]["reason"])
    assert scored[2]["reason"] == "no finite validation perplexity"
    assert scored[4]["reason"] == "training diverged at step 7"
    result = select(scored, points, keep_count=3)
    assert result["promoted"] == [{"lr": 2.0}] and result["selected"] == {"lr": 2.0}
    first = result["trials"][0]
    assert (first["run_id"], first["rank"], first["valid_ppl"]) == ("d", 1, 9_000.0)
    assert all(t["valid_ppl"] is None and not t["promoted"] for t in result["trials"][1:])


def test_an_underfilled_rung_says_so_in_its_log_and_in_trials_csv(tmp_path, caplog):
    dirs = [_trial(tmp_path / "a", "a", [400.0]), _trial(tmp_path / "b", "b", [300.0]),
            _trial(tmp_path / "c", "c", [math.nan], status="diverged"),
            _trial(tmp_path / "d", "d", [5e20])]
    points = [{"lr": x} for x in (0.5, 1.0, 2.0, 4.0)]
    out = tmp_path / "rung0.json"
    argv = ["select", *map(str, dirs), "--points", json.dumps(points), "--labels",
            json.dumps({"corpus": "ptb", "experiment": "x", "model": "m"}), "--rung", "0",
            "--rungs", "2", "--keep-count", "3", "--out", str(out)]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert "rung 0 is under-filled: 2 finished trial(s), fewer than the 3 it should promote" in (
        caplog.text)
    assert "d diverged: validation perplexity 5e+20 is worse than a uniform guess" in caplog.text
    table = tmp_path / "trials.csv"
    assert main(["collect", str(out), "--out", str(table)]) == 0
    rows = pd.read_csv(table)
    assert list(rows["status"]) == ["ok", "ok", "diverged", "diverged"]
    assert rows["underfilled"].all() and set(rows["finished_in_rung"]) == {2}
    assert set(rows["planned_promotions"]) == {3} and rows["promoted"].sum() == 2
    assert rows["reason"].fillna("").str.contains("uniform guess").sum() == 1
    full = select([score(d) for d in dirs[:2]], points[:2], keep_count=2)
    assert (full["finished"], full["underfilled"]) == (2, False)


def test_edges_of_the_space_are_flagged_on_selected_points_only():
    space = {"lr": [0.25, 0.5, 1.0], "clip_norm": [5], "grad": ["normalize", "clip"]}
    assert edge_flags({"lr": 0.25, "clip_norm": 5, "grad": "clip"}, space) == ["lr=min"]
    assert edge_flags({"lr": 1.0}, space) == ["lr=max"]
    assert edge_flags({"lr": 0.5, "grad": "normalize"}, space) == []  # inside; text keys none
    assert edge_flags({"lr": "0.25", "x": "1"}, {**space, "x": [1, 2]}) == ["lr=min", "x=min"]
    tunings = {"e": {"space": space, "trial_seed": 1, "seeds": [1, 2]}}
    rows = [{"experiment": "e", "lr": 0.25, "grad": "clip", "selected": False},
            {"experiment": "e", "lr": "1.0", "grad": "clip", "selected": "True"},  # read back
            {"experiment": "other", "lr": 0.25, "selected": True}]  # not tuned by this config
    out = annotate(rows, tunings)
    assert [r.get("edge") for r in out] == ["", "lr=max", None]
    assert out[0]["trial_seed"] == 1 and out[0]["shared_seed"] is True


def test_an_edge_selection_is_marked_in_the_model_table(tmp_path):
    from rnnbench.analysis.compare import markdown, models
    from rnnbench.analysis.pairs import comparisons

    trials = pd.DataFrame([
        {"experiment": "e", "model": "rnn_tanh-p3k-l1", "selected": True, "edge": "lr=min"},
        {"experiment": "e", "model": "lstm-p3k-l1", "selected": True, "edge": None},
        {"experiment": "e", "model": "lstm-p3k-l1", "selected": False, "edge": "lr=max"}])
    runs = pd.DataFrame([
        {"corpus": "ptb", "experiment": "e", "run_id": f"{cell}-p3k-l1-s{seed}", "seed": seed,
         "cell": cell, "hidden": 10, "layers": 1, "budget": 3000, "lr": lr, "grad": "clip",
         "recurrent_params": 3000, "status": "ok", "test_ppl": 100.0 + seed}
        for cell, lr in (("rnn_tanh", 0.25), ("lstm", 2.0)) for seed in (1, 2)])
    marked = with_edges(runs, trials)
    assert list(marked["tuning_edge"].fillna("")) == ["lr=min", "lr=min", "", ""]
    text = markdown(models(marked), comparisons(marked, resamples=200))
    assert "| 0.25 (clip) [edge: lr min] |" in text and "| 2 (clip) |" in text


def test_a_publishing_config_refuses_to_train_on_an_edge_selection_unless_allowed(tmp_path):
    run = Run("fair", "lstm-p3k-l1-s1", RunConfig(cell="lstm", hidden=19, lr=1.0), "ptb",
              "final", "lstm-p3k-l1")
    chosen = tmp_path / "rung1.json"
    chosen.write_text(json.dumps({"selected": {"lr": 8.0}}))
    tuning = Tuning.from_spec("fair", TUNING_SPEC, TRAINING_KEYS, seeds=[1])
    assert selected_config(run, chosen, tuning).lr == 8.0  # not publishing: flagged only
    with pytest.raises(ConfigError, match=r"selected \{'lr': 8.0\}.*on the edge of its "
                       r"search space \(lr=max\).*Widen experiments\.fair\.tuning\.space"):
        selected_config(run, chosen, tuning, refuse_edge=True)
    allowed = Tuning.from_spec("fair", {**TUNING_SPEC, "allow_edge": True}, TRAINING_KEYS,
                               seeds=[1])
    assert selected_config(run, chosen, allowed, refuse_edge=True).lr == 8.0
    chosen.write_text(json.dumps({"selected": {"lr": 2.0}}))
    assert selected_config(run, chosen, tuning, refuse_edge=True).lr == 2.0
