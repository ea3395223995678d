"""A config's tables, figures and report belong to its study (results/studies/{study}/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, one_run_config, snakemake, write_corpus

from rnnbench.workflow.study import check_report_ready, study_name


def test_study_is_the_key_else_the_last_config_file_name():
    assert study_name({}, ["config/grid.yaml", "config/fair.yaml"]) == "fair"
    assert study_name({"study": "mine"}, ["config/fair.yaml"]) == "mine"
    assert study_name({}, [Path("/x/reproduce-capped.yaml")]) == "reproduce-capped"


def test_a_config_file_name_that_is_no_folder_name_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="set `study: NAME`"):
        study_name({}, [f"/x/{'a' * 70}.yaml"])
    with pytest.raises(ValueError, match="--config study=NAME"):
        study_name({}, [])


def test_report_of_a_study_without_tables_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no report yet for study 'quick'"):
        check_report_ready("quick", [str(tmp_path / "runs.csv")])
    (tmp_path / "runs.csv").write_text("run_id\n")
    check_report_ready("quick", [str(tmp_path / "runs.csv")])


def test_targets_are_in_the_study_folder_and_another_configs_tables_are_not_reported(tmp_path):
    quick = str(ROOT / "config/quick.yaml")
    plan = snakemake(tmp_path, "-n", "--configfile", quick, "--config", "mirror=/nowhere")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "results/studies/quick/tables/runs.csv" in plan.stdout
    assert "results/tables/" not in plan.stdout and "results/figures/" not in plan.stdout
    # another study's tables on disk do not make this one's report
    other = tmp_path / "results/studies/fair/tables"
    other.mkdir(parents=True)
    (other / "runs.csv").write_text("run_id\n")
    report = snakemake(tmp_path, "--configfile", quick, "--report", str(tmp_path / "r.html"))
    assert report.returncode != 0
    assert "no report yet for study 'quick'" in report.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_second_config_of_the_same_file_name_is_refused_before_any_job(tmp_path):
    # issue #32 d: other/quick.yaml and quick.yaml, each with its own grid, one study 'quick'
    write_corpus(tmp_path / "mine")
    first, second = tmp_path / "quick.yaml", tmp_path / "other/quick.yaml"
    second.parent.mkdir()
    base = one_run_config({"max_batches": 2})
    first.write_text(yaml.safe_dump(base))
    base["experiments"]["tiny"]["hidden"] = [6]
    second.write_text(yaml.safe_dump(base))
    tables = "results/studies/quick/tables/runs.csv"
    made = snakemake(tmp_path, "--cores", "1", tables, "--configfile", str(first))
    assert made.returncode == 0, made.stderr[-3000:]
    owner = json.loads((tmp_path / "results/studies/quick/study.json").read_text())
    assert owner["configs"] == ["quick.yaml"]
    before = (tmp_path / tables).read_text()
    for args in (["--cores", "1", tables], ["-n"], ["--report", str(tmp_path / "r.html")]):
        refused = snakemake(tmp_path, *args, "--configfile", str(second))
        assert refused.returncode != 0
        text = refused.stdout + refused.stderr
        assert "study 'quick' belongs to another config" in text, text[-2000:]
        assert "quick.yaml" in text and "other/quick.yaml" in text
        assert "`study: NAME`" in text and "--config study=NAME" in text
    assert (tmp_path / tables).read_text() == before
    assert not (tmp_path / "results/runs/mine/tiny/lstm-h6-l1-s1").exists()
    # its own study name, and the first config grown by a seed, both go on
    own = snakemake(tmp_path, "-n", "--configfile", str(second), "--config", "study=other")
    assert own.returncode == 0, own.stderr[-2000:]
    base["experiments"]["tiny"].update(hidden=[8], seeds=[1, 2])
    first.write_text(yaml.safe_dump(base))
    grown = snakemake(tmp_path, "-n", "--configfile", str(first))
    assert grown.returncode == 0, grown.stderr[-2000:]


def test_the_report_of_a_grown_grid_names_the_runs_its_tables_lack(tmp_path):
    # issue #32 h: seeds added to a finished config, the report built before training them
    write_corpus(tmp_path / "mine")
    configfile = tmp_path / "grown.yaml"
    spec = one_run_config({"max_batches": 2})
    configfile.write_text(yaml.safe_dump(spec))
    made = snakemake(tmp_path, "--cores", "1", "--configfile", str(configfile))
    assert made.returncode == 0, made.stderr[-3000:]
    spec["experiments"]["tiny"]["seeds"] = [1, 2, 3]
    configfile.write_text(yaml.safe_dump(spec))
    report = tmp_path / "report.html"
    built = snakemake(tmp_path, "--configfile", str(configfile), "--report", str(report))
    assert built.returncode == 0, built.stderr[-3000:]
    assert "has 1 of the 3 runs of its config; missing: tiny/lstm-h8-l1-s2, " \
           "tiny/lstm-h8-l1-s3" in built.stderr
    html = report.read_text()
    assert "1 of the 3 runs of this config" in html and "2 are missing" in html
    assert "tiny/lstm-h8-l1-s2, tiny/lstm-h8-l1-s3" in html
