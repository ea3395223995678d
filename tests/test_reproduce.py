"""Named reproduction experiments: exact recipes, a capped end-to-end run, the reference."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import snakemake

from rnnbench.analysis.publish import reference_markdown, reference_table
from rnnbench.experiment.grid import expand

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results/reference"


def reproduce_config() -> dict:
    return yaml.safe_load((ROOT / "config/reproduce.yaml").read_text())


def test_named_recipes_resolve_to_the_published_settings():
    runs, _ = expand(reproduce_config())
    by_exp = {}
    for r in runs:
        by_exp.setdefault(r.experiment, []).append(r.config)
    assert {k: sorted(c.seed for c in v) for k, v in by_exp.items()} == {
        "seed_rnn": [1, 2, 3], "seed_lstm": [1, 2, 3], "zaremba_small": [1, 2, 3]}
    rnn, lstm, zar = (by_exp[k][0] for k in ("seed_rnn", "seed_lstm", "zaremba_small"))
    # every source tests the weights after its last epoch
    experiments = reproduce_config()["experiments"]
    assert {k: v.get("eval_weights") for k, v in experiments.items()} == dict.fromkeys(
        experiments, "final")
    assert (rnn.cell, rnn.hidden, rnn.layers, rnn.batch_size, rnn.bptt) == \
        ("rnn_tanh", 150, 1, 20, 35)
    assert (rnn.grad, rnn.loss_reduction, rnn.init, rnn.init_scale) == \
        ("normalize", "mean", "seed", 0.1)
    assert [round(rnn.lr_at(e), 6) for e in range(10)] == \
        [1, 1, 1, 1] + [round(1.1 ** -k, 6) for k in range(1, 7)]
    assert (lstm.cell, lstm.hidden, lstm.layers, lstm.epochs, lstm.grad) == \
        ("lstm", 300, 1, 8, "normalize")
    assert [round(lstm.lr_at(e), 6) for e in range(8)] == \
        [5, 5] + [round(5 / 3**k, 6) for k in range(1, 7)]
    assert (zar.cell, zar.hidden, zar.layers, zar.embedding_size, zar.epochs) == \
        ("lstm", 200, 2, 200, 13)
    assert (zar.batch_size, zar.bptt, zar.grad, zar.clip_norm) == (20, 20, "clip", 5.0)
    assert (zar.loss_reduction, zar.init, zar.init_scale, zar.dropout) == \
        ("sum_time", "uniform", 0.1, 0.0)
    assert [zar.lr_at(e) for e in range(13)] == [1, 1, 1, 1] + [0.5**k for k in range(1, 10)]


@pytest.mark.slow
def test_each_named_experiment_runs_end_to_end_with_a_minibatch_cap(tmp_path, ptb_mirror):
    config = reproduce_config()
    for spec in config["experiments"].values():
        spec["seeds"] = [1, 2]
        spec["overrides"] = {"max_batches": 4, "max_eval_batches": 3, "epochs": 2}
    config["mirror"] = str(ptb_mirror)
    config["context"] = {"targets": 20, "prefix": 100, "resamples": 100}  # cheap, still real
    path = tmp_path / "reproduce-capped.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(path), "--show-failed-logs")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results/reference/reference.csv")
    assert list(table["experiment"]) == ["seed_rnn", "seed_lstm", "zaremba_small"]
    assert list(table["published_test_ppl"]) == [155.5, 106.9, 114.5]
    assert (table["n"] == 2).all()
    evals = list((tmp_path / "results/runs").glob("*/*/*/eval.json"))
    assert len(evals) == 6
    assert all(json.loads(p.read_text())["weights"] == "final" for p in evals)
    # the tables and figures rebuild from the published files alone, with no training;
    # a run not (yet) published is left out, and said so
    for d in ("runs", "studies"):
        shutil.rmtree(tmp_path / "results" / d)
    shutil.rmtree(tmp_path / "results/reference/zaremba_small/lstm-h200-l2-s2")
    again = snakemake(tmp_path, "--cores", "1", "--configfile", str(path), "--config",
                      "source=reference", "--show-failed-logs")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "train_model" not in again.stdout + again.stderr
    assert "1 of 6 runs of this config are not published" in again.stderr
    assert "zaremba_small/lstm-h200-l2-s2" in again.stderr
    for figure in ("learning_curves", "reproduction"):
        assert (tmp_path / f"results/studies/reproduce-capped/figures/{figure}.png").exists()
    runs = pd.read_csv(tmp_path / "results/studies/reproduce-capped/tables/runs.csv")
    assert len(runs) == 5 and runs["test_ppl"].notna().all()
    # the effective context, published with the runs, rebuilt from the published files
    context = pd.read_csv(tmp_path / "results/studies/reproduce-capped/tables/context.csv")
    assert context["run_id"].nunique() == 5 and (context["status"] == "ok").all()
    assert (tmp_path / "results/studies/reproduce-capped/figures/context_vs_k.png").exists()
    # zaremba_small asks for the test set as one stream too
    zaremba = runs[runs["experiment"] == "zaremba_small"]
    assert zaremba["test_stream_ppl"].notna().all()
    assert runs.loc[runs["experiment"] != "zaremba_small", "test_stream_ppl"].isna().all()


def _results_page_table() -> str:
    text = (ROOT / "docs" / "results.md").read_text()
    match = re.search(r"<!-- reference-table -->\n(.*?)<!-- /reference-table -->", text, re.S)
    assert match, "docs/results.md lacks the reference table markers"
    return match.group(1)


def test_committed_reference_files_agree_with_the_results_page_table():
    if not (REFERENCE / "reference.md").exists():
        pytest.skip("no committed reference results yet")
    from rnnbench.analysis.aggregate import run_record

    published = {k: v.get("published") for k, v in reproduce_config()["experiments"].items()}
    order = list(published)
    dirs = sorted(p.parent for e in order for p in REFERENCE.glob(f"{e}/*/train.json"))
    runs = pd.DataFrame([run_record(d) for d in dirs])
    runs = runs.sort_values("experiment", key=lambda s: s.map(order.index), kind="stable")
    regenerated = reference_markdown(reference_table(runs, published))
    assert regenerated == (REFERENCE / "reference.md").read_text()
    assert regenerated == _results_page_table()


def test_published_runs_carry_what_the_issue_asks_for_and_no_weights():
    runs = sorted(p for e in reproduce_config()["experiments"]
                  for p in REFERENCE.glob(f"{e}/*/train.json"))
    if not runs:
        pytest.skip("no committed reference results yet")
    for path in runs:
        meta = json.loads(path.read_text())
        assert meta["status"] in ("ok", "diverged"), path
        assert meta["device"] and (meta["gpu"] or meta["cpu"]), path
        assert meta["torch"] and meta["code_version"], path
        assert meta["config"]["seed"] >= 1 and meta["command"].startswith(
            ("python -m rnnbench.training.train ", "python -m rnnbench.train ", "/")), path
        # runs published before the stage packages name the old module; older ones argv[0]
        assert meta["wall_seconds"] > 0 and meta["train_seconds"] > 0, path
        assert (path.parent / "history.csv").exists() and (path.parent / "eval.json").exists()
    assert not [p for p in REFERENCE.rglob("*") if p.suffix in (".pt", ".gz")]


def test_reproduction_figure_shows_every_published_experiment_and_names_a_missing_one(tmp_path):
    from rnnbench.figures.plots import reproduction

    runs = pd.DataFrame({"experiment": ["a", "a", "b", "c"], "status": ["ok"] * 4,
                         "test_ppl": [101.0, 99.0, 212.0, 50.0]})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    ax = reproduction(tmp_path, {"a": {"test_ppl": 100}, "b": {"test_ppl": 200}}).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["a\npublished 100\nours 100.0 (n=2)", "b\npublished 200\nours 212.0 (n=1)"]
    from matplotlib.collections import PathCollection  # the seeds' dots, not the CI bars

    dots = sorted(y for c in ax.collections if isinstance(c, PathCollection)
                  for _, y in c.get_offsets())
    assert dots[:3] == pytest.approx([-1.0, 1.0, 6.0]) and ax.get_ylim()[1] >= 6.0
    # the same figure every build: the seeds' spread is fixed, not random jitter
    from rnnbench.figures.cli import save

    for name in ("one.png", "two.png"):
        save(reproduction(tmp_path, {"a": {"test_ppl": 100}, "b": {"test_ppl": 200}}),
             tmp_path / name)
    for suffix in (".png", ".svg"):  # the SVG too: no date, fixed element ids
        one, two = (tmp_path / f"{n}{suffix}" for n in ("one", "two"))
        assert one.read_bytes() == two.read_bytes()
    # nothing to compare: a figure that says so (the report still builds), not a crash
    empty = reproduction(tmp_path, {"zzz": {"test_ppl": 1}})
    text = " ".join(" ".join(t.get_text().split()) for t in empty.findobj(
        lambda o: hasattr(o, "get_text")))
    assert "No finished run to plot: no finished run of an experiment with a published number" \
        " (zzz)" in text
