"""An experiment against its published baseline (rnnbench.analysis.baseline): means over
finished runs, the relative difference and its CI, undefined (not 0) when a side has nothing
finished."""

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from rnnbench.analysis import baseline
from rnnbench.analysis.aggregate import run_record

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def _runs(experiment, precision, ppls, tokens_per_s=1000.0, status="ok", cell="rnn_tanh"):
    return pd.DataFrame([{"experiment": experiment, "cell": cell, "hidden": 150, "layers": 1,
                          "precision": precision, "status": status, "test_ppl": p,
                          "tokens_per_s": tokens_per_s, "gpu": None, "cpu": "AMD EPYC",
                          "torch": "2.13.0+cpu"} for p in ppls])


def test_difference_and_speedup_of_the_means_over_finished_runs():
    ours = pd.concat([_runs("rnn_bf16", "bf16", [101.0, 103.0], 1500.0),
                      _runs("rnn_bf16", "bf16", [math.nan], status="diverged")])
    base = _runs("rnn", "fp32", [99.0, 100.0, 101.0], 1000.0)
    (row,) = baseline.compare(ours, {"rnn_bf16": "rnn"}, base).to_dict("records")
    assert (row["n"], row["baseline_n"]) == (2, 3)  # the diverged seed is not in the mean
    assert row["test_ppl_mean"] == pytest.approx(102.0)
    assert row["test_ppl_sd"] == pytest.approx(math.sqrt(2.0))
    assert row["delta_pct"] == pytest.approx(2.0)
    # the CI is Welch's interval of the difference over the baseline mean (here 100)
    welch = sps.ttest_ind([101.0, 103.0], [99.0, 100.0, 101.0], equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert (row["delta_pct_ci_low"], row["delta_pct_ci_high"]) == pytest.approx((low, high))
    assert row["welch_df"] == pytest.approx(welch.df) and row["p_value"] == pytest.approx(
        welch.pvalue)
    assert row["speedup"] == pytest.approx(1.5)
    assert (row["precision"], row["baseline_precision"]) == ("bf16", "fp32")
    md = baseline.markdown(pd.DataFrame([row]))
    assert "| Δ% [Welch 95% CI] |" in md
    assert "| rnn → rnn_bf16 | rnn_tanh+bf16-h150-l1 | 100.0 ± 1.0 (n=3) (fp32) | " \
           "102.0 ± 1.4 (n=2) (bf16) | +2.00 [" in md
    assert "| 1,000 | 1,500 | 1.50x | CPU (AMD EPYC), torch 2.13.0+cpu |" in md


def test_a_model_with_no_finished_run_has_no_difference():
    ours = _runs("rnn_bf16", "bf16", [math.nan], status="diverged")
    base = _runs("rnn", "fp32", [100.0])
    (row,) = baseline.compare(ours, {"rnn_bf16": "rnn"}, base).to_dict("records")
    assert row["n"] == 0 and math.isnan(row["delta_pct"]) and math.isnan(row["speedup"])
    assert math.isnan(row["p_value"]) and math.isnan(row["delta_pct_ci_low"])
    assert "| – (bf16) | – |" in baseline.markdown(pd.DataFrame([row]))


def test_models_are_matched_by_cell_and_size_not_merged():
    ours = pd.concat([_runs("x", "bf16", [110.0]), _runs("x", "bf16", [90.0], cell="lstm")])
    base = pd.concat([_runs("y", "fp32", [100.0]), _runs("y", "fp32", [80.0], cell="lstm")])
    table = baseline.compare(ours, {"x": "y"}, base).set_index("cell")
    assert table.loc["rnn_tanh", "delta_pct"] == pytest.approx(10.0)
    assert table.loc["lstm", "delta_pct"] == pytest.approx(12.5)


def test_cli_reads_the_published_fp32_runs_as_the_baseline(tmp_path):
    dirs = sorted((REFERENCE / "seed_rnn").glob("*/train.json"))
    assert len(dirs) == 3
    base = pd.DataFrame([run_record(d.parent) for d in dirs])
    assert set(base["precision"]) == {"fp32"}  # published before the key existed
    runs = _runs("seed_rnn_bf16", "bf16", [155.0, 154.0, 156.0])
    runs.to_csv(tmp_path / "runs.csv", index=False)
    assert baseline.main(["--runs", str(tmp_path / "runs.csv"), "--baselines",
                          '{"seed_rnn_bf16": "seed_rnn"}', "--out-dir", str(tmp_path),
                          *[str(d.parent) for d in dirs]]) == 0
    table = pd.read_csv(tmp_path / "precision.csv")
    assert table.loc[0, "baseline_n"] == 3
    assert table.loc[0, "baseline_test_ppl_mean"] == pytest.approx(base["test_ppl"].mean())
    assert "seed_rnn → seed_rnn_bf16" in (tmp_path / "precision.md").read_text()


def test_results_page_precision_table_is_the_published_bf16_runs():
    """docs/results.md's bf16 perplexity table is what the committed runs give: the runs of
    config/precision.yaml (results/reference/seed_*_bf16/, seed_*_fp32/) against the published
    fp32 ones they name as their baseline."""
    import re

    import yaml

    config = yaml.safe_load((REFERENCE.parents[1] / "config" / "precision.yaml").read_text())
    pairs = {name: e["baseline"] for name, e in config["experiments"].items()}
    ours = sorted(p.parent for e in pairs for p in (REFERENCE / e).glob("*/train.json"))
    if not ours:
        pytest.skip("the runs of config/precision.yaml are not published yet")
    theirs = sorted({p.parent for b in set(pairs.values())
                     for p in (REFERENCE / b).glob("*/train.json")})
    runs = pd.DataFrame([run_record(d) for d in ours])
    assert set(runs["experiment"]) == set(pairs)  # every experiment published
    bf16 = {name for name, e in config["experiments"].items()
            if (e.get("overrides") or {}).get("precision") == "bf16"}
    assert bf16 and bf16 == set(runs.loc[runs["precision"] == "bf16", "experiment"])
    table = baseline.compare(runs, pairs, pd.DataFrame([run_record(d) for d in theirs]))
    text = (REFERENCE.parents[1] / "docs" / "results.md").read_text()
    match = re.search(r"<!-- precision-table -->\n(.*?)<!-- /precision-table -->", text, re.S)
    assert match, "docs/results.md lacks the precision-table markers"
    assert match.group(1) == baseline.markdown(table)
    assert not [p for e in pairs for p in (REFERENCE / e).rglob("*") if p.suffix in (".pt", ".gz")]
