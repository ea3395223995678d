"""The plan printed before a run: counts, device, and the training-time estimate."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rnnbench.config import RunConfig
from rnnbench.experiment.grid import expand
from rnnbench.workflow.plan import (
    PTB_TRAIN_TOKENS,
    Estimate,
    Measured,
    basis,
    corpus_size,
    estimate,
    flops_per_token,
    format_plan,
    plan_text,
    read_reference,
    resolve_device,
    tokens_per_epoch,
    visible_gpus,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results/reference"


def test_flops_per_token_counts_decoder_and_gates_forward_and_backward():
    # 3 x (decoder 2*H*V + layer 2*(E_in + H)*gates*H), by hand:
    assert flops_per_token(RunConfig(cell="lstm", hidden=300), 10_000) == 3 * (
        6_000_000 + 1_440_000) == 22_320_000
    assert flops_per_token(RunConfig(cell="rnn_tanh", hidden=150), 10_000) == 9_270_000
    # GRU, 2 layers, embedding 100: layer 1 2*(100+200)*3*200, layer 2 2*(200+200)*3*200.
    gru = RunConfig(cell="gru", hidden=200, layers=2, embedding_size=100)
    assert flops_per_token(gru, 10_000) == 3 * (4_000_000 + 360_000 + 480_000) == 14_520_000


def test_tokens_per_epoch_equals_the_tokens_a_reference_epoch_trained():
    with (REFERENCE / "seed_rnn/rnn_tanh-h150-l1-s1/history.csv").open() as f:
        trained = {int(row["tokens"]) for row in csv.DictReader(f)}
    assert trained == {tokens_per_epoch(RunConfig(cell="rnn_tanh", hidden=150),
                                        PTB_TRAIN_TOKENS)} == {929_560}
    quick = RunConfig(cell="lstm", hidden=32, max_batches=30)  # 30 x bptt 35 x batch 20
    assert tokens_per_epoch(quick, PTB_TRAIN_TOKENS) == 21_000


def _reference_run(root: Path, name: str, rates: list[float], status: str = "ok",
                   max_batches: int | None = None, cpu: str = "Test CPU",
                   precision: str | None = None) -> None:
    folder = root / "exp" / name
    folder.mkdir(parents=True)
    cfg = RunConfig(cell="rnn_tanh", hidden=150, seed=len(list(root.rglob("train.json"))) + 1,
                    max_batches=max_batches, precision=precision)
    (folder / "train.json").write_text(json.dumps(
        {"status": status, "config": cfg.to_dict(), "vocab_size": 10_000, "cpu": cpu}))
    lines = ["epoch,tokens_per_s"] + [f"{i},{r}" for i, r in enumerate(rates)]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")


def test_reference_rate_is_the_median_over_seeds_of_each_runs_median_epoch(tmp_path):
    _reference_run(tmp_path, "a-s1", [100.0, 300.0, 200.0])  # median 200
    _reference_run(tmp_path, "a-s2", [400.0])  # median 400
    _reference_run(tmp_path, "a-s3", [9e9], status="diverged")  # stopped early: left out
    _reference_run(tmp_path, "a-s4", [9e9], max_batches=30)  # capped epochs: left out
    _reference_run(tmp_path, "a-s5", [9e9], precision="bf16")  # not what the FLOP model prices
    (measured,) = read_reference(tmp_path)
    assert (measured.name, measured.cpu, measured.runs) == ("rnn_tanh-h150-l1", "Test CPU", 2)
    assert measured.tokens_per_s == 300.0
    assert measured.flops_per_s == 300.0 * 9_270_000


def test_basis_prefers_runs_on_this_cpu_model_and_says_when_there_are_none():
    epyc = Measured("lstm-h300-l1", "AMD EPYC", 3, 3000.0, 22_320_000)
    other = Measured("rnn_tanh-h150-l1", "x86_64", 1, 4000.0, 9_270_000)
    assert basis([epyc, other], "AMD EPYC") == ([epyc], "lstm-h300-l1 x3; AMD EPYC, like this CPU")
    used, note = basis([epyc, other], "Intel Xeon")
    assert used == [epyc, other]
    assert note == ("lstm-h300-l1 x3, rnn_tanh-h150-l1 x1; AMD EPYC, x86_64, "
                    "not this CPU (Intel Xeon)")


def test_estimate_scales_by_flops_and_tokens_and_spreads_runs_over_cores():
    rate = 9_270_000 * 1000  # rnn_tanh-h150 at 1,000 tokens/s
    ref = Measured("rnn_tanh-h150-l1", "cpu", 1, 1000.0, 9_270_000)
    run = RunConfig(cell="rnn_tanh", hidden=150, epochs=2)
    # 2,020 tokens: 101 rows of 20, 100 rows of targets: 2,000 tokens/epoch, 4,000 in all: 4 s.
    assert estimate([run], [ref], 2020, 10_000, cores=2) == Estimate(4.0, 4.0, 1, rate)
    assert estimate([run, run], [ref], 2020, 10_000, cores=2).wall_seconds == 4.0
    assert estimate([run, run], [ref], 2020, 10_000, cores=1).wall_seconds == 8.0
    # An LSTM-300 has 22,320,000 / 9,270,000 times the FLOPs per token: that much slower.
    lstm = RunConfig(cell="lstm", hidden=300, epochs=2)
    assert estimate([lstm], [ref], 2020, 10_000, 1).core_seconds == pytest.approx(
        4.0 * 22_320_000 / 9_270_000)
    # Jobs are not split: a long run bounds the wall time even with cores to spare.
    short = RunConfig(cell="rnn_tanh", hidden=150, epochs=1)
    assert estimate([run, short, short], [ref], 2020, 10_000, cores=3).wall_seconds == 4.0


def test_default_grid_estimate_agrees_with_the_benchmarked_37_hours():
    # README "Running it": about 37 hours on 2 cores; docs/performance.md: `rnnbench.bench.bench
    # --grid` gave the same, a measurement independent of the reference runs' histories.
    config = yaml.safe_load((ROOT / "config/grid.yaml").read_text())
    runs, _ = expand(config)
    refs = [m for m in read_reference(REFERENCE) if m.cpu == "AMD EPYC"]
    assert sorted(m.name for m in refs) == ["lstm-h200-l2", "lstm-h300-l1", "rnn_tanh-h150-l1"]
    est = estimate([r.config for r in runs], refs, PTB_TRAIN_TOKENS, 10_000, cores=2)
    assert 33 * 3600 < est.wall_seconds < 41 * 3600


def test_visible_gpus_reads_the_driver_and_respects_cuda_visible_devices(tmp_path, monkeypatch):
    proc = tmp_path / "gpus"
    for bus in ("0000:01:00.0", "0000:02:00.0"):
        (proc / bus).mkdir(parents=True)
    assert visible_gpus({}, proc) == 2
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1"}, proc) == 1
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, proc) == 0
    monkeypatch.setenv("PATH", str(tmp_path))  # no driver folder and no nvidia-smi
    assert visible_gpus({}, tmp_path / "none") == 0


def test_resolve_device_says_why():
    assert resolve_device("cpu", 4) == ("cpu", "device cpu")
    assert resolve_device("auto", 0) == ("cpu", "device auto: no CUDA GPU here")
    assert resolve_device("auto", 2) == ("cuda", "device auto: 2 CUDA GPUs here")
    assert resolve_device("cuda", 1) == ("cuda", "device cuda: 1 CUDA GPU here")


def test_corpus_size_reads_stats_json_else_assumes_ptb(tmp_path):
    assert corpus_size(tmp_path / "stats.json", None) == (929_589, 10_000, False)
    assert corpus_size(tmp_path / "stats.json", 5000) == (929_589, 5000, False)
    (tmp_path / "stats.json").write_text(json.dumps(
        {"vocab_size": 123, "splits": {"train": {"tokens": 4567}}}))
    assert corpus_size(tmp_path / "stats.json", 5000) == (4567, 123, True)


def test_plan_is_one_short_block_and_names_the_quick_config_when_long():
    long = format_plan(72, 0, ("cpu", "device auto: no CUDA GPU here"),
                       Estimate(3 * 86400, 37 * 3600, 2, 65e9), "r x3; AMD EPYC, like this CPU")
    lines = long.splitlines()
    assert len(lines) <= 6 and all(len(line) <= 100 for line in lines)
    assert lines[0] == ("rnnbench plan: 72 training runs (0 done, 72 to train) on the CPU "
                        "(device auto: no CUDA GPU here).")
    text = " ".join(long.split())
    assert "about 37.0 hours on 2 cores" in text and "one 1-thread job per core" in text
    assert "AMD EPYC" in text and "config/quick.yaml" in text
    short = format_plan(4, 0, ("cpu", "device cpu"), Estimate(20, 10, 2, 65e9), "r")
    assert "under a minute on 2 cores" in short and "quick.yaml" not in short
    cluster = format_plan(72, 0, ("cpu", "device cpu"), Estimate(3 * 86400, 7200, 36, 65e9), "r",
                          jobs=True)
    assert "about 2.0 hours with 36 jobs at a time" in " ".join(cluster.split())
    gpu = format_plan(4, 0, ("cuda", "device cuda: 1 CUDA GPU here"),
                      Estimate(3600, 3600, 1, 65e9), "r")
    assert "on a GPU: not measured yet" in " ".join(gpu.split())


def test_plan_counts_finished_runs_and_is_empty_when_none_is_left(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(cell="lstm", hidden=32, epochs=2, max_batches=30)
    runs = [SimpleNamespace(config=cfg, path=f"results/runs/x/r{i}") for i in range(3)]
    Path(runs[0].path).mkdir(parents=True)
    Path(runs[0].path, "train.json").write_text("{}")
    text = plan_text(runs, tmp_path / "data", REFERENCE, "cpu", cores=2)
    assert text.startswith("rnnbench plan: 3 training runs (1 done, 2 to train) on the CPU")
    for run in runs[1:]:
        Path(run.path).mkdir(parents=True)
        Path(run.path, "train.json").write_text("{}")
    assert plan_text(runs, tmp_path / "data", REFERENCE, "cpu", cores=2) == ""


def _committed_run(root: Path, name: str, cfg: RunConfig, tokens_per_s: float, epochs: int,
                   stopped: str = "max_epochs") -> None:
    """A committed run of ``cfg`` on this CPU: train.json and a history of ``epochs`` rows."""
    from rnnbench.training.provenance import cpu_model

    folder = root / "exp" / name
    folder.mkdir(parents=True)
    (folder / "train.json").write_text(json.dumps({
        "status": "ok", "config": cfg.to_dict(), "vocab_size": 10_000, "cpu": cpu_model(),
        "stopped": stopped}))
    rows = "\n".join(f"{e},{tokens_per_s}" for e in range(epochs))
    (folder / "history.csv").write_text(f"epoch,tokens_per_s\n{rows}\n")


def test_bf16_and_plateau_runs_are_priced_from_the_committed_runs(tmp_path, monkeypatch):
    from rnnbench.workflow.calibration import flops_per_token
    from rnnbench.workflow.pricing import read_pricing

    fp32 = RunConfig(cell="lstm", hidden=32, epochs=40)
    bf16 = RunConfig(cell="lstm", hidden=32, epochs=40, precision="bf16")
    plateau = RunConfig(cell="lstm", hidden=32, epochs=40, schedule="plateau",
                        plateau_patience=0)
    root = tmp_path / "reference"
    _committed_run(root, "a", fp32, 1000.0, 3)
    _committed_run(root, "b", bf16, 1500.0, 3)
    for i, n in enumerate([8, 9, 10]):
        _committed_run(root, f"p{i}", plateau, 1000.0, n, stopped="plateau_decays")
    from rnnbench.training.provenance import cpu_model

    rate = 1000.0 * flops_per_token(fp32, 10_000)
    pricing = read_pricing(root, cpu_model(), rate)
    assert pricing.bf16_speedup == pytest.approx(1.5) and pricing.bf16_runs == 1
    assert pricing.speed(bf16) == pytest.approx(1.5) and pricing.speed(fp32) == 1.0
    assert pricing.planned_epochs(plateau) == 9  # the median of 8, 9, 10
    # patience 1 against their 0: one more epoch at each of 3 decays and the stop
    patient = RunConfig(**{**plateau.to_dict(), "plateau_patience": 1})
    assert pricing.planned_epochs(patient) == 13
    assert pricing.planned_epochs(RunConfig(**{**patient.to_dict(), "epochs": 11})) == 11
    assert pricing.planned_epochs(RunConfig(cell="gru", hidden=8, schedule="plateau",
                                            epochs=40)) == 9  # no gru run: every cell's
    assert pricing.planned_epochs(fp32) == 40
    # and the plan says so; on another CPU (no committed bf16 run there) bf16 is fp32 work
    runs = [SimpleNamespace(config=c, path=f"results/runs/x/r{i}")
            for i, c in enumerate([fp32, bf16, patient])]
    monkeypatch.chdir(tmp_path)
    text = " ".join(plan_text(runs, tmp_path / "data", root, "cpu", cores=2).split())
    assert "bf16: 1 of the runs to train are bf16, priced at 1.50x the fp32 rate" in text
    assert "priced at the epochs 3 committed plateau runs took" in text
    assert max(len(line) for line in plan_text(runs, tmp_path / "data", root, "cpu",
                                               cores=2).splitlines()) <= 100
    monkeypatch.setattr("rnnbench.workflow.plan.cpu_model", lambda: "another CPU")
    text = " ".join(plan_text(runs, tmp_path / "data", root, "cpu", cores=2).split())
    assert "priced as fp32 work (no committed bf16 run on this CPU)" in text


def test_without_committed_runs_bf16_and_plateau_are_upper_bounds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "reference"
    _committed_run(root, "a", RunConfig(cell="lstm", hidden=32, epochs=2), 1000.0, 2)
    runs = [SimpleNamespace(config=c, path=f"results/runs/x/r{i}") for i, c in enumerate([
        RunConfig(cell="lstm", hidden=32, epochs=2, max_batches=30, precision="bf16"),
        RunConfig(cell="lstm", hidden=32, epochs=2, max_batches=30, schedule="plateau")])]
    text = " ".join(plan_text(runs, tmp_path / "data", root, "cpu", cores=2).split())
    assert "bf16: 1 of the runs to train are bf16, priced as fp32 work" in text
    assert "priced at their maximum of `epochs`, so this is an upper bound" in text
    assert "bf16" not in plan_text(runs[1:], tmp_path / "data", root, "cpu", cores=2)


def _dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "-n", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_dry_run_prints_the_plan_once_in_the_main_process_only(tmp_path):
    result = _dry_run(tmp_path, "--cores", "2", "--configfile", str(ROOT / "config/grid.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("rnnbench plan:") == 1
    text = " ".join(result.stderr.split())
    assert "rnnbench plan: 72 training runs (0 done, 72 to train) on the CPU" in text
    # On 2 cores (or fewer, where the machine has fewer: one job per core).
    assert re.search(r"Training time: about \d+\.\d (hours|days) on [12] cores?", text), text
    # Calibrated on the published runs of this CPU model where there are any (an AMD EPYC has
    # three LSTM-300 runs, an Intel Xeon one: config/precision.yaml's fp32 control).
    assert re.search(r"lstm-h300-l1 x[13][,;]", text), text
    assert "A few minutes instead: snakemake --cores 2 --configfile config/quick.yaml" in text
    # A cluster job re-parses the Snakefile with --mode remote: it must stay quiet.
    remote = _dry_run(tmp_path, "--cores", "2", "--mode", "remote", "--configfile",
                      str(ROOT / "config/grid.yaml"))
    assert remote.returncode == 0, remote.stderr
    assert "rnnbench plan" not in remote.stderr


def test_dry_run_plan_counts_a_finished_run_of_the_quick_config(tmp_path):
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    runs, _ = expand(config)
    done = tmp_path / runs[0].path / "train.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    result = _dry_run(tmp_path, "--cores", "2", "--configfile", str(ROOT / "config/quick.yaml"))
    assert result.returncode == 0, result.stderr
    assert "rnnbench plan: 4 training runs (1 done, 3 to train)" in result.stderr


def test_dry_run_of_the_reference_prints_no_plan(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results/reference").symlink_to(REFERENCE)
    result = _dry_run(tmp_path, "--cores", "1", "--configfile",
                      str(ROOT / "config/reproduce.yaml"), "--config", "source=reference")
    assert result.returncode == 0, result.stderr
    assert "rnnbench plan" not in result.stderr


def test_only_the_experiments_calibration_txt_lists_calibrate_the_plan(tmp_path):
    from rnnbench.workflow.calibration import calibration_experiments

    assert calibration_experiments(tmp_path) is None  # no list: every experiment counts
    (tmp_path / "calibration.txt").write_text("# trained alone\nseed_rnn\n\nseed_lstm  # x\n")
    assert calibration_experiments(tmp_path) == {"seed_rnn", "seed_lstm"}
    # the committed list leaves out the runs trained beside other work (gradients, fair)
    names = {m.name for m in read_reference(REFERENCE)}
    assert "rnn_relu-h150-l1" not in names and "lstm-h150-l1" not in names


def test_the_fixed_cost_of_a_step_and_an_epoch_is_priced_from_the_committed_runs(tmp_path):
    from rnnbench.training.provenance import cpu_model
    from rnnbench.workflow.calibration import flops_per_token
    from rnnbench.workflow.plan import seconds_each
    from rnnbench.workflow.pricing import read_pricing

    cfg = RunConfig(cell="lstm", hidden=32, epochs=3, batch_size=4, bptt=5)
    rate = 1e9
    step_flops = 20 * flops_per_token(cfg, 10_000) / rate  # seconds of FLOPs per step
    root = tmp_path / "reference"
    # a run whose step took its FLOPs plus 30 ms, and 12 s of wall time beyond its 3 epochs
    tokens_per_s = 20 / (step_flops + 0.030)
    _committed_run(root, "a", cfg, tokens_per_s, 3)
    meta = json.loads((root / "exp/a/train.json").read_text())
    (root / "exp/a/history.csv").write_text(
        "epoch,tokens_per_s,seconds\n" + "".join(f"{e},{tokens_per_s},10\n" for e in range(3)))
    (root / "exp/a/train.json").write_text(json.dumps({**meta, "wall_seconds": 42.0}))
    pricing = read_pricing(root, cpu_model(), rate)
    assert pricing.step_seconds == pytest.approx(0.030)
    assert pricing.epoch_seconds == pytest.approx(4.0)  # (42 - 30) / 3
    each = seconds_each([cfg], rate, 4 * 5 * 100 + 4, 10_000, pricing)[0]
    steps = 100 - 1 // 5  # rows of 4 columns, minus the last target
    assert each == pytest.approx(3 * (steps * 20 / 20 * (step_flops + 0.030) + 4.0), rel=0.02)
