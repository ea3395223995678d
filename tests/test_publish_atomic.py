"""Publishing a run or a trial is all or nothing (issue #32 e): a publish killed half way
leaves the older copy, or no copy, never a folder with some of the new files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnbench.analysis import publish
from rnnbench.diagnostics.evaluate import main as evaluate_main
from rnnbench.diagnostics.gradients import main as gradients_main
from rnnbench.training.train import main as train_main


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory) -> Path:
    """One trained, evaluated and measured tiny run."""
    root = tmp_path_factory.mktemp("pub")
    run = root / "runs/tiny/lstm-h8-l1-s1"
    assert train_main(["--cell", "lstm", "--hidden", "8", "--epochs", "1", "--batch-size", "4",
                       "--bptt", "5", "--device", "cpu", "--data-dir", str(tiny_data),
                       "--run-dir", str(run), "--run-id", run.name, "--checkpoint",
                       str(root / "c.pt"), "--threads", "1"]) == 0
    assert evaluate_main(["--run-dir", str(run), "--data-dir", str(tiny_data), "--out",
                          str(run / "eval.json"), "--device", "cpu"]) == 0
    assert gradients_main(["--run-dir", str(run), "--data-dir", str(tiny_data), "--out",
                           str(run / "gradients.csv"), "--max-lag", "4", "--windows", "1",
                           "--batch", "2", "--warmup", "2", "--device", "cpu"]) == 0
    return run


def _kill_at_the_last_file(monkeypatch):
    real = publish.write_csv

    def killed(frame, path):
        if Path(path).name == "grad_quantiles.csv":
            raise KeyboardInterrupt  # as a kill between two files of the folder
        return real(frame, path)

    monkeypatch.setattr(publish, "write_csv", killed)


def test_a_run_killed_while_publishing_leaves_no_half_copy(run, tmp_path, monkeypatch):
    dest = tmp_path / "reference/tiny" / run.name
    _kill_at_the_last_file(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        publish.copy_run(run, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    monkeypatch.undo()
    publish.copy_run(run, dest)
    names = {p.name for p in dest.iterdir()}
    assert {"train.json", "eval.json", "grad_quantiles.csv", "grad_bins.csv"} <= names
    # a second publish killed half way keeps the first copy whole
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    _kill_at_the_last_file(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        publish.copy_run(run, dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert [p.name for p in dest.parent.iterdir()] == [run.name]


def test_a_trial_is_published_whole(run, tmp_path, monkeypatch):
    dest = tmp_path / "reference/tiny/trials" / run.name
    real = publish.shutil.copyfile
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("no space left on device")
        return real(src, dst)

    monkeypatch.setattr(publish.shutil, "copyfile", second_fails)
    with pytest.raises(OSError):
        publish.copy_trial(run, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
