"""Where and with which code a run was made."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from rnnbench.analysis.publish import reference_markdown, reference_table
from rnnbench.training import provenance


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


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A real git repository with a committed src/rnnbench package, which provenance reads."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    root = tmp_path / "repo"
    package = root / "src/rnnbench"
    package.mkdir(parents=True)
    (package / "train.py").write_text("LR = 1\n")
    (root / "README.md").write_text("readme\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", package)
    monkeypatch.setattr(provenance, "CODE_DIR", root / "src")
    return root


def test_code_changes_are_the_uncommitted_files_under_src(repo):
    assert provenance.code_version().endswith("+dirty") is False
    assert provenance.code_changes() == []
    clean_hash = provenance.code_sha256()
    (repo / "README.md").write_text("edited\n")  # dirty, but not training code
    assert provenance.code_version().endswith("+dirty") and provenance.code_changes() == []
    assert provenance.code_sha256() == clean_hash
    (repo / "src/rnnbench/train.py").write_text("LR = 2\n")
    (repo / "src/rnnbench/new module.py").write_text("\n")  # untracked, a space in its name
    assert provenance.code_changes() == ["src/rnnbench/new module.py", "src/rnnbench/train.py"]
    assert provenance.code_sha256() != clean_hash
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "two")
    assert provenance.code_changes() == [] and not provenance.code_version().endswith("+dirty")
    _git(repo, "mv", "src/rnnbench/train.py", "src/rnnbench/loop.py")  # a staged rename
    assert provenance.code_changes() == ["src/rnnbench/loop.py"]


def test_unpublishable_runs_are_dirty_training_code_unknown_changes_or_no_commit():
    sha = "a" * 40
    assert provenance.unpublishable({"code_version": sha}) is None
    assert provenance.unpublishable({"code_version": sha + "+dirty", "code_changes": []}) is None
    why = provenance.unpublishable({"code_version": sha + "+dirty",
                                    "code_changes": ["src/rnnbench/train.py"]})
    assert why == "trained from aaaaaaa with uncommitted changes to src/rnnbench/train.py"
    assert "did not record" in provenance.unpublishable({"code_version": sha + "+dirty"})
    assert "no git commit" in provenance.unpublishable({"code_version": None})


def _published_copy(tmp_path: Path, **meta) -> Path:
    """A committed reference run (real files) as a run folder, its train.json edited."""
    source = Path(__file__).resolve().parents[1] / "results/reference/seed_rnn"
    run = tmp_path / "runs/seed_rnn/rnn_tanh-h150-l1-s1"
    shutil.copytree(source / run.name, run)
    data = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**data, **meta}))
    return run


def test_publish_refuses_a_run_of_uncommitted_training_code_before_copying(tmp_path, capsys):
    from rnnbench.analysis.publish import main

    run = _published_copy(tmp_path, code_version="b" * 40 + "+dirty",
                          code_changes=["src/rnnbench/train.py"], code_sha256="c" * 64)
    out = tmp_path / "reference"
    published = json.dumps({"seed_rnn": {"test_ppl": 155.5, "source": "x"}})
    with pytest.raises(SystemExit) as err:
        main(["--out", str(out), "--published", published, str(run)])
    message = str(err.value)
    assert "seed_rnn/rnn_tanh-h150-l1-s1: trained from bbbbbbb with uncommitted changes to " \
        "src/rnnbench/train.py" in message
    assert "RNNBENCH_PUBLISH_DIRTY=1" in message and "git worktree" in message
    assert not out.exists()  # nothing published
    # the override publishes, and says so with the files and the hash of the code that ran
    assert main(["--out", str(out), "--published", published, "--allow-dirty", str(run)]) == 0
    record = json.loads((out / "seed_rnn/provenance.json").read_text())
    assert record["override"] == "--allow-dirty"
    assert record["commits"] == {"b" * 40 + "+dirty": ["rnn_tanh-h150-l1-s1"]}
    assert record["uncommitted_code"]["rnn_tanh-h150-l1-s1"]["code_sha256"] == "c" * 64
    assert "bbbbbbb+dirty" in (out / "reference.md").read_text()  # the table names the commit


def test_publish_of_committed_code_names_the_commit_and_no_override(tmp_path, monkeypatch):
    from rnnbench.analysis.publish import main

    run = _published_copy(tmp_path, code_version="d" * 40 + "+dirty", code_changes=[])
    monkeypatch.setenv("RNNBENCH_PUBLISH_DIRTY", "1")  # given, but nothing needs it
    assert main(["--out", str(tmp_path / "ref"), str(run)]) == 0
    record = json.loads((tmp_path / "ref/seed_rnn/provenance.json").read_text())
    assert record == {"experiment": "seed_rnn", "commits": {"d" * 40 + "+dirty":
                      ["rnn_tanh-h150-l1-s1"]}, "uncommitted_code": {}, "override": None}
    assert (tmp_path / "ref/seed_rnn/rnn_tanh-h150-l1-s1/train.json").exists()
