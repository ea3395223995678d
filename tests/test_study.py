"""A config's tables, figures and report belong to its study (results/studies/{study}/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.experiment.study import check_report_ready, study_name

ROOT = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


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
