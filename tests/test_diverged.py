"""A config whose runs diverge still gives every table, figure and the report (real Snakemake,
real PTB): first every run diverges, then a finished experiment joins them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import diverging_config, snakemake

FIGURES = ["perplexity_vs_hidden", "perplexity_vs_params", "learning_curves", "grad_norms",
           "grad_vs_lag", "grad_norm_distribution", "grad_spectra", "grad_decay_rate_vs_hidden"]
TABLES = ["runs.csv", "summary.csv", "summary.md", "epochs.csv", "learning_curves.csv",
          "grad_norms.csv", "grad_through_time.csv", "grad_decay.csv", "spectra.csv",
          "grad_steps.csv"]


def check_outputs(study: Path) -> pd.DataFrame:
    """Every table and figure of the study folder exists; returns runs.csv."""
    for name in TABLES:
        assert (study / "tables" / name).exists(), name
    for name in FIGURES:
        for ext in ("png", "svg"):
            assert (study / f"figures/{name}.{ext}").stat().st_size > 1000, (name, ext)
    return pd.read_csv(study / "tables/runs.csv")


@pytest.mark.slow
def test_diverged_runs_give_every_table_figure_and_the_report(tmp_path, ptb_mirror):
    mirror = f"mirror={ptb_mirror}"
    config = diverging_config(tmp_path / "boom.yaml", finished=False)
    result = snakemake(tmp_path, "--cores", "2", "--config", mirror, "--show-failed-logs",
                       configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results"
    runs = check_outputs(results / "studies/boom")
    assert (runs["status"] == "diverged").all() and runs["diverged_step"].notna().all()
    # really a non-finite loss, caught by training, not a huge finite one marked ok
    for meta in results.rglob("boom/*/train.json"):
        assert '"status": "diverged"' in meta.read_text()
    summary = pd.read_csv(results / "studies/boom/tables/summary.csv")
    assert (summary["n"] == 0).all() and (summary["n_diverged"] == 1).all()
    figures = {n: (results / f"studies/boom/figures/{n}.svg").read_text() for n in FIGURES}
    for name, svg in figures.items():  # each figure names every run with its step
        for _, run in runs.iterrows():
            assert f"{run['run_id']}" in svg, (name, run["run_id"])
        assert f"diverged at step {int(runs['diverged_step'].iloc[0])}" in svg, name
    assert "No finished run to plot" in figures["perplexity_vs_hidden"]
    report = snakemake(tmp_path, "--report", str(results / "report.html"), configfile=config)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "perplexity_vs_hidden.png" in (results / "report.html").read_text()

    # some diverge, one finishes: the finished run is plotted, the others named
    boom_runs = (results / "studies/boom/tables/runs.csv").read_text()
    config = diverging_config(tmp_path / "mixed.yaml", finished=True)
    result = snakemake(tmp_path, "--cores", "2", "--config", mirror, "--show-failed-logs",
                       configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = check_outputs(results / "studies/mixed")
    assert sorted(runs["status"]) == ["diverged"] * 3 + ["ok"]
    # each config has its own tables: the first config's are untouched by the second
    assert (results / "studies/boom/tables/runs.csv").read_text() == boom_runs
    hidden = (results / "studies/mixed/figures/perplexity_vs_hidden.svg").read_text()
    assert "No finished run" not in hidden and "fine: layers 1" in hidden
    assert "boom/lstm-h32-l1-s1: diverged at step" in hidden
    report = snakemake(tmp_path, "--report", str(results / "report.html"), configfile=config)
    assert report.returncode == 0, report.stderr[-3000:]
