"""rnnbench.analysis.gridtable on hand-made run folders, and the CPU dry run of .ci/gpu-grid.sh."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from rnnbench.analysis.gridtable import collect, main, markdown


def make_run(root: Path, cell: str, hidden: int, seed: int, status: str = "ok",
             test_ppl: float | None = 100.0, seconds: tuple[float, ...] = (2.0, 1.0),
             layers: int = 1) -> Path:
    """A run folder with train.json, history.csv and (if test_ppl) eval.json."""
    run = root / f"{cell}-h{hidden}-l{layers}-s{seed}"
    run.mkdir(parents=True)
    config = {"cell": cell, "hidden": hidden, "layers": layers, "seed": seed}
    (run / "train.json").write_text(json.dumps({"status": status, "config": config}))
    rows = [f"{e},{s},1000" for e, s in enumerate(seconds)]
    (run / "history.csv").write_text("\n".join(["epoch,seconds,tokens", *rows]) + "\n")
    if test_ppl is not None:
        (run / "eval.json").write_text(json.dumps({"status": status, "test_ppl": test_ppl}))
    return run


def test_mean_sd_and_n_over_seeds(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "lstm", 300, s, test_ppl=p) for s, p in ((1, 110), (2, 120),
                                                                         (3, 130))]
    (row,) = collect(runs)
    assert (row.cell, row.hidden, row.layers, row.test_ppl) == ("lstm", 300, 1, [110, 120, 130])
    assert f"120.0 ± {statistics.stdev([110, 120, 130]):.1f} (3)" in markdown([row], "GPU X")


def test_diverged_and_unevaluated_runs_are_left_out(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "rnn_relu", 150, 1, test_ppl=150.0),
            make_run(tmp_path, "rnn_relu", 150, 2, status="diverged", test_ppl=float("nan"),
                     seconds=(99.0,)),
            make_run(tmp_path, "rnn_relu", 150, 3, test_ppl=None, seconds=(3.0,))]
    (row,) = collect(runs)
    assert row.test_ppl == [150.0] and row.diverged == 1 and row.runs == 3
    assert "| rnn_relu | 150 | 1 | 150.0 (1; 1 diverged) |" in markdown([row], "GPU X")


def test_seconds_per_epoch_is_the_median_of_ok_epochs(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "gru", 650, 1, seconds=(10.0, 2.0, 2.0)),
            make_run(tmp_path, "gru", 650, 2, seconds=(3.0, 3.0)),
            make_run(tmp_path, "gru", 650, 3, status="diverged", test_ppl=None, seconds=(50.0,))]
    text = markdown(collect(runs), "NVIDIA H200")
    assert "s/epoch on NVIDIA H200 |" in text.splitlines()[0]
    assert text.splitlines()[2].endswith("| 3.0 |")  # median of 10, 2, 2, 3, 3


def test_rows_in_cell_order_and_no_run_is_a_dash(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "gru", 150, 1), make_run(tmp_path, "rnn_tanh", 300, 1),
            make_run(tmp_path, "rnn_tanh", 150, 1, layers=2),
            make_run(tmp_path, "lstm", 150, 1, status="diverged", test_ppl=None)]
    rows = collect(runs)
    assert [(r.cell, r.hidden, r.layers) for r in rows] == [
        ("rnn_tanh", 150, 2), ("rnn_tanh", 300, 1), ("lstm", 150, 1), ("gru", 150, 1)]
    assert "| lstm | 150 | 1 | – (0; 1 diverged) | – |" in markdown(rows, "GPU")


def test_cli_skips_folders_without_train_json(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "lstm", 150, 1, test_ppl=90.0)
    (tmp_path / "runs" / "half-copied").mkdir()
    out = tmp_path / "table.md"
    dirs = [str(p) for p in sorted((tmp_path / "runs").iterdir())] + [str(tmp_path / "none")]
    assert main([*dirs, "--gpu-name", "GPU", "--out", str(out)]) == 0
    assert "| lstm | 150 | 1 | 90.0 (1) | 1.5 |" in out.read_text()
    assert main(["--gpu-name", "GPU", "--out", str(out)]) == 0  # no run yet: headers only
    assert "0 evaluated ok runs of 0 read" in out.read_text()


@pytest.mark.slow
def test_gpu_grid_dry_run(repo_root: Path, ptb_mirror: Path, tmp_path: Path) -> None:
    """The whole script on the CPU (DRY=1): sharing table, copied grid runs, grid table."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = tmp_path / "out"
    env = {**os.environ, "DRY": "1", "OUT": str(out), "PTB": str(ptb_mirror),
           "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", ".ci/gpu-grid.sh"], cwd=repo_root, env=env, timeout=400,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sharing = (out / "sharing.md").read_text()
    assert "| 2 | no |" in sharing and "4/4" in sharing
    assert len(list(out.glob("grid/*/eval.json"))) == 4
    table = (out / "grid_table.md").read_text()
    assert "| rnn_tanh | 16 | 1 |" in table and "(2) |" in table
