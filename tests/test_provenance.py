"""Where and with which code a run was made."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rnnbench import provenance
from rnnbench.publish import reference_markdown, reference_table


def test_cpu_model_is_the_model_name_not_the_architecture():
    name = provenance.cpu_model()
    assert name
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "model name" in cpuinfo.read_text():
        assert name in cpuinfo.read_text() and name not in ("x86_64", "aarch64")


def test_code_version_is_the_checkout_commit_or_none_outside_git(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("no git")
    version = provenance.code_version()
    if version is not None:  # running from a git checkout
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", version), version
    monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path)
    assert provenance.code_version() is None


def test_reference_table_names_the_cpu_and_the_code_versions():
    runs = pd.DataFrame({
        "experiment": ["seed_rnn"] * 3, "status": ["ok", "ok", "diverged"],
        "test_ppl": [150.0, 160.0, float("nan")], "valid_ppl": [160.0, 170.0, float("nan")],
        "train_ppl": [110.0, 112.0, float("nan")], "seconds_per_epoch": [100.0, 120.0, 90.0],
        "gpu": [None] * 3, "cpu": ["AMD EPYC"] * 3, "torch": ["2.13.0+cpu"] * 3,
        "code_version": ["a" * 40, "a" * 40 + "+dirty", None],
    })
    table = reference_table(runs, {"seed_rnn": {"test_ppl": 155.5}})
    row = table.iloc[0]
    assert (row["n"], row["n_runs"], row["test_ppl_mean"]) == (2, 3, 155.0)
    assert row["delta_pct"] == pytest.approx(100 * (155 / 155.5 - 1))
    assert row["code_version"] == "aaaaaaa, aaaaaaa+dirty"
    line = reference_markdown(table).splitlines()[2]
    assert "CPU (AMD EPYC) (2.13.0+cpu, aaaaaaa, aaaaaaa+dirty)" in line
    assert "155.0 ± 7.1 (n=2) | -0.3 | – |" in line  # no stream test asked for


def test_reference_table_shows_one_seed_diverged_seeds_and_capped_evaluations():
    nan = float("nan")
    runs = pd.DataFrame({
        "corpus": ["ptb"] * 3, "experiment": ["one", "lost", "lost"],
        "status": ["ok", "diverged", "diverged"], "test_ppl": [150.0, nan, nan],
        "valid_ppl": [160.0, nan, nan], "train_ppl": [110.0, nan, nan],
        "seconds_per_epoch": [100.0, 90.0, 80.0], "gpu": [None] * 3, "cpu": ["AMD EPYC"] * 3,
        "torch": ["2.13.0+cpu"] * 3, "code_version": ["a" * 40] * 3,
        "eval_capped": [True, False, False], "max_eval_batches": [20, 20, 20],
        "valid_tokens": [14000, nan, nan], "valid_tokens_total": [73760, nan, nan],
        "test_tokens": [14000, nan, nan], "test_tokens_total": [82430, nan, nan],
    })
    table = reference_table(runs, {"one": {"test_ppl": 150.0}, "lost": {"test_ppl": 100.0}})
    lost = table.set_index("experiment").loc["lost"]
    assert lost["n"] == 0 and pd.isna(lost["test_ppl_mean"]) and pd.isna(lost["delta_pct"])
    lines = reference_markdown(table).splitlines()
    assert "| one | 150.0 | 150.0 † (n=1) | +0.0 | – |" in lines[2]  # no "± nan" for one seed
    assert "| lost | 100.0 | all 2 diverged (n=0) | – | – | – / – |" in lines[3]
    assert lines[-1] == ("† evaluated on 14,000 of 73,760 valid and 14,000 of 82,430 test "
                         "tokens only (max_eval_batches: 20): not comparable with perplexities "
                         "of the whole split.")
    assert "nan" not in "\n".join(lines)
