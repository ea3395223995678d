"""The study as the workflow sees it (rnnbench.workflow.pipeline.Study), without Snakemake:
its runs, trials, later and published runs, `source: reference`, targets and code inputs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from helpers import tuned_config

from rnnbench.workflow.codedeps import module_sources
from rnnbench.workflow.jobs import pattern, rule_code
from rnnbench.workflow.pipeline import Study

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
QUICK = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working directory; the environment the study sets is restored after."""
    monkeypatch.chdir(tmp_path)
    for name in ("RNNBENCH_MIRROR", *(f"RNNBENCH_SHA256_{s}" for s in ("train", "valid", "test"))):
        monkeypatch.setenv(name, "")
    return tmp_path


def build(config: dict, lines: list[str] | None = None, **kwargs) -> Study:
    """The study of ``config`` as config/quick.yaml would make it (its terminal lines to
    ``lines``)."""
    said = lines if lines is not None else []
    return Study.from_config(copy.deepcopy(config), ROOT, [ROOT / "config/quick.yaml"],
                             say=said.append, warn=said.append, info=said.append, **kwargs)


def publish_copy(root: Path, experiment: str, run_id: str, names=("train.json", "eval.json")):
    folder = root / "results/reference" / experiment / run_id
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("{}")


def test_the_quick_study_trains_each_cell_once_in_its_own_folder(here):
    study = build(QUICK)
    assert study.name == "quick" and not study.from_reference and not study.publish
    assert sorted(r.run_id for r in study.runs) == sorted(f"{c}-h32-l1-s1" for c in CELLS)
    assert study.trials == [] and study.later == [] and study.skipped == []
    assert study.run_dirs() == [f"results/runs/ptb/quick/{r.run_id}" for r in study.runs]
    assert study.run_files("steps.csv.gz", published="grad_bins.csv") == [
        f"results/runs/ptb/quick/{r.run_id}/steps.csv.gz" for r in study.runs]
    # every run measures its effective context (quick.yaml's `context`)
    assert study.context_dirs == study.run_dirs() and study.context.flags()


def test_the_quick_study_targets_its_tables_figures_and_run_files(here):
    study = build(QUICK)
    targets = study.targets(["results/runs/ptb/quick/x/eval.json"])
    assert targets[:2] == ["results/runs/ptb/quick/x/eval.json", "results/data/ptb/stats.json"]
    tables, figures = "results/studies/quick/tables", "results/studies/quick/figures"
    assert {f"{tables}/summary.html", f"{tables}/grad_decay.html", f"{tables}/context.csv",
            f"{figures}/perplexity_vs_hidden.png", f"{figures}/grad_vs_lag.png",
            f"{figures}/context_vs_k.png", f"{figures}/learning_curves.png"} <= set(targets)
    # one size, no tuning, nothing published nor compared with a baseline
    assert not any(re.search(r"sizes|trials|tuning|reproduction|precision|reference", t)
                   for t in targets)
    # 5 tables and figure, 3 report tables, 4 figures, 4 gradient figures and a table, context 4
    assert len(targets) == len(set(targets)) == 2 + 5 + 3 + 4 + 5 + 4


def test_a_tuned_study_groups_its_trials_per_model_and_rung(here):
    study = build(tuned_config())
    assert len(study.runs) == 4 and {r.role for r in study.runs} == {"final"}
    assert len(study.trials) == 2 * (3 + 3) and study.tuned == ["fairtiny"]
    key = ("ptb", "fairtiny", "lstm-p3k-l1")
    assert sorted(study.trial_groups) == [("ptb", "fairtiny", "lstm-p3k-l1"),
                                          ("ptb", "fairtiny", "rnn_tanh-p3k-l1")]
    assert sorted(study.trial_groups[key]) == [0, 1]
    assert study.tuning_targets()[0] == "results/studies/quick/tables/trials.csv"
    assert study.tuning_targets()[0] in study.targets([])


def test_later_rungs_enter_what_the_selection_before_promoted(here):
    study = build(tuned_config())
    key = ("ptb", "fairtiny", "lstm-p3k-l1")
    chosen = here / "rung0.json"
    chosen.write_text(json.dumps({"promoted": [{"lr": 8.0}]}))
    asked = []

    def selection(corpus, experiment, group, rung):
        asked.append((group, rung))
        return [str(chosen)]

    assert study.entrants(key, 0, selection) == study.trial_groups[key][0] and asked == []
    later = study.entrants(key, 1, selection)
    assert [dict(t.point) for t in later] == [{"lr": 8.0}] and asked == [("lstm-p3k-l1", 0)]
    assert study.trial_files(later) == [f"{later[0].path}/{n}" for n in
                                        ("train.json", "history.csv")]
    asked.clear()
    assert len(study.all_selections(selection)) == 4 and len(asked) == 4
    final = next(r for r in study.runs if r.group == "lstm-p3k-l1")
    wildcards = type("W", (), {"corpus": "ptb", "experiment": "fairtiny", "run": final.run_id})
    asked.clear()
    assert study.final_selection(wildcards, selection) == [str(chosen)]
    assert asked == [("lstm-p3k-l1", 1)]


def test_a_publishing_study_copies_its_runs_and_first_rung_trials(here):
    study = build({**tuned_config(), "publish": True})
    files = study.reference_files()
    runs = [f"results/reference/fairtiny/{r.run_id}/train.json" for r in study.runs]
    first = [f"results/reference/fairtiny/trials/{t.run_id}/train.json"
             for t in study.trials if t.rung == 0]
    assert files == runs + first + ["results/reference/fairtiny/provenance.json",
                                    "results/reference/fairtiny/trials.csv"]
    assert sorted(study.published_runs) == sorted(f"fairtiny/{r.run_id}" for r in study.runs)
    assert len(study.published_trials) == len(study.trials)
    assert "context.json" in study.published_files


def test_a_resumed_run_is_read_from_its_copy_and_not_published_again(here):
    study = build({**QUICK, "publish": True})
    resumed = study.runs[0]
    study.resumed = {resumed.path}
    assert study.run_dirs()[0] == f"results/reference/quick/{resumed.run_id}"
    assert study.run_files("steps.csv.gz", published="grad_bins.csv")[0].endswith(
        f"quick/{resumed.run_id}/grad_bins.csv")
    assert f"quick/{resumed.run_id}" not in study.published_runs
    assert len(study.published_runs) == len(study.runs) - 1


def test_the_published_run_pattern_matches_those_runs_alone():
    names = ["quick/lstm-h32-l1-s1", "quick/gru-h32-l1-s1"]
    assert re.fullmatch(pattern(names), "quick/gru-h32-l1-s1")
    assert not re.fullmatch(pattern(names), "quick/lstm-h32-l1-s10")
    assert not re.fullmatch(pattern([]), "") and not re.fullmatch(pattern([]), "quick/x")


def test_reference_mode_reads_only_the_published_runs_and_says_which_are_left_out(here):
    with pytest.raises(ValueError, match="no run of this config is published"):
        build({**QUICK, "source": "reference"})
    publish_copy(here, "quick", "lstm-h32-l1-s1")
    lines = []
    study = build({**QUICK, "source": "reference"}, lines)
    assert [r.run_id for r in study.runs] == ["lstm-h32-l1-s1"] and study.trials == []
    assert study.run_dirs() == ["results/reference/quick/lstm-h32-l1-s1"]
    assert any("3 of 4 runs of this config are not published" in line for line in lines)
    # its copy has no context.json: no context table, said
    assert study.context_dirs == [] and study.context_targets() == []
    assert any("which is not built" in line for line in lines)
    assert "results/data/ptb/stats.json" not in study.targets([]) and study.reference_files() == []


def test_a_truncated_published_file_stops_reference_mode(here):
    publish_copy(here, "quick", "lstm-h32-l1-s1")
    (here / "results/reference/quick/lstm-h32-l1-s1/eval.json").write_text('{"test_ppl": ')
    with pytest.raises(ValueError, match="eval.json"):
        build({**QUICK, "source": "reference"})


def test_later_experiments_are_planned_not_trained_unless_asked(here):
    config = copy.deepcopy(QUICK)
    config["experiments"]["next"] = {**config["experiments"]["quick"], "hidden": [64],
                                     "later": True}
    study = build(config)
    assert {r.experiment for r in study.runs} == {"quick"} and len(study.later) == 4
    assert {r.experiment for r in build({**config, "run_later": True}).runs} == {"quick", "next"}


def test_a_baseline_without_published_runs_stops_the_study(here):
    config = copy.deepcopy(QUICK)
    config["experiments"]["quick"]["baseline"] = "nowhere"
    with pytest.raises(ValueError, match="baseline 'nowhere' has no published run"):
        build(config)


def test_another_configs_study_is_refused_in_the_main_process_only(here):
    folder = here / "results/studies/quick"
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps({"configs": ["other/quick.yaml"],
                                                   "sha256": "0" * 64}))
    with pytest.raises(ValueError):
        build(QUICK)
    assert build(QUICK, main=False).name == "quick"


def test_a_rules_code_is_every_module_its_command_runs_and_their_imports():
    shell = ("python -m rnnbench.figures.curves learning_curves --tables t > log 2>&1"
             " && python -m rnnbench.analysis.tables learning_curves t.csv >> log 2>&1")
    files = rule_code(shell, SRC)
    assert files == sorted(set(module_sources("rnnbench.figures.curves", SRC))
                           | set(module_sources("rnnbench.analysis.tables", SRC)))
    names = {Path(f).relative_to(SRC / "rnnbench").as_posix() for f in files}
    assert {"figures/curves.py", "analysis/tables.py", "analysis/render.py",
            "figures/palette.py"} <= names
    assert "training/train.py" not in names and rule_code("echo nothing", SRC) == []


def test_compare_models_code_reaches_what_it_imports_on_the_way():
    names = {Path(f).relative_to(SRC / "rnnbench").as_posix()
             for f in rule_code("python -m rnnbench.analysis.compare --runs r", SRC)}
    assert {"analysis/compare.py", "analysis/pairs.py", "analysis/stats.py",
            "experiment/trials.py", "diagnostics/context_stats.py"} <= names


def test_no_rule_file_writes_its_code_inputs_by_hand():
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        assert "code=[" not in text and "module_sources(" not in text, smk.name
        assert all(line.strip().startswith("code=code(")
                   for line in text.splitlines() if line.strip().startswith("code=")), smk.name
