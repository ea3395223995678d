"""Gradient diagnostics per run (rnnbench.diagnostics.gradients) and across runs: the tables
(rnnbench.analysis.gradtables) and the figures drawn from them (rnnbench.figures.gradplots)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from rnnbench.analysis.gradtables import LABELS, STEP_QUANTILES
from rnnbench.analysis.gradtables import main as gradtables_main
from rnnbench.diagnostics.gradients import DECAY_COLUMNS, GRAD_COLUMNS, decay_rows, held_out_windows
from rnnbench.diagnostics.gradients import main as gradients_main
from rnnbench.figures.draw import main as draw_main
from rnnbench.figures.registry import names
from rnnbench.io import read_json
from rnnbench.training.train import main as train_main

MAX_LAG = 12
SETTINGS = ["--max-lag", str(MAX_LAG), "--windows", "2", "--batch", "3", "--warmup", "4",
            "--device", "cpu", "--threads", "1"]
TINY_RUNS = {
    "lstm-h8-l2-s1": ["--cell", "lstm", "--hidden", "8", "--layers", "2"],
    "rnn_tanh-h8-l1-s1": ["--cell", "rnn_tanh", "--hidden", "8"],
    # no W_hh: no spectra rows, a gradient through time of h alone
    "min_lstm-h8-l2-s1": ["--cell", "min_lstm", "--hidden", "8", "--layers", "2"],
    # lr 1e30 without normalising: non-finite loss in the first epoch, before any validation
    "rnn_relu-h8-l1-s1": ["--cell", "rnn_relu", "--hidden", "8", "--lr", "1e30", "--grad",
                          "none"],
    # issue #32 (c): non-finite from its very first minibatch, so no step has a finite norm
    "rnn_relu-h8-l1-init_scale1e20-s1": ["--cell", "rnn_relu", "--hidden", "8", "--init",
                                         "uniform", "--init-scale", "1e20", "--lr", "1e-12"],
}


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """Four one-epoch runs of the tiny corpus (one diverged), measured with small settings."""
    root = tmp_path_factory.mktemp("grad")
    dirs = {}
    for run_id, args in TINY_RUNS.items():
        run = root / "results/runs/tiny" / run_id
        assert train_main([*args, "--epochs", "1", "--batch-size", "4", "--bptt", "5",
                           "--device", "cpu", "--data-dir", str(tiny_data), "--run-dir",
                           str(run), "--run-id", run_id, "--checkpoint",
                           str(root / f"{run_id}.pt"), "--threads", "1"]) == 0
        assert gradients_main(["--run-dir", str(run), "--data-dir", str(tiny_data), "--out",
                               str(run / "gradients.csv"), *SETTINGS]) == 0
        dirs[run_id] = run
    return dirs


def test_cli_writes_every_lag_per_layer_and_state_for_trained_and_init(runs):
    grads = pd.read_csv(runs["lstm-h8-l2-s1"] / "gradients.csv")
    assert list(grads.columns) == GRAD_COLUMNS
    assert len(grads) == 2 * 2 * 2 * (MAX_LAG + 1)  # kinds x layers x states (h, c) x lags
    for _, curve in grads.groupby(["kind", "layer", "state"]):
        assert curve["lag"].tolist() == list(range(MAX_LAG + 1))
    assert set(grads["kind"]) == {"trained", "init"} and set(grads["state"]) == {"h", "c"}
    assert (grads[["run_id", "cell", "hidden", "layers", "seed"]].drop_duplicates().values
            .tolist() == [["lstm-h8-l2-s1", "lstm", 8, 2, 1]])
    assert (grads["grad_norm"] > 0).all() and grads["log_grad_norm"].notna().all()
    tanh = pd.read_csv(runs["rnn_tanh-h8-l1-s1"] / "gradients.csv")
    assert set(tanh["state"]) == {"h"} and len(tanh) == 2 * (MAX_LAG + 1)


def test_decay_rates_are_finite_one_per_kind_layer_and_state(runs):
    decay = pd.read_csv(runs["lstm-h8-l2-s1"] / "decay.csv")
    assert list(decay.columns) == DECAY_COLUMNS
    assert len(decay) == 2 * 2 * 2
    assert decay["decay_rate"].map(math.isfinite).all()
    assert (decay["lags_fitted"] == MAX_LAG).all()  # lags 1..K, none floored
    assert decay["per_step_factor"].tolist() == pytest.approx(decay["decay_rate"].map(math.exp))
    meta = read_json(runs["lstm-h8-l2-s1"] / "gradients.json")
    assert meta["status"] == "ok" and meta["measured"] == ["trained", "init"]
    assert meta["num_columns"] == 6 and meta["dtype"] == "float64"


def test_run_without_best_weights_still_gets_its_init_rows(runs):
    run = runs["rnn_relu-h8-l1-s1"]
    assert read_json(run / "train.json")["status"] == "diverged"
    meta = read_json(run / "gradients.json")
    assert meta["status"] == "partial" and meta["measured"] == ["init"]
    step = read_json(run / "train.json")["diverged_step"]
    assert meta["diverged_step"] == step
    assert f"diverged at step {step} before any validation" in meta["skipped"]["trained"]
    grads = pd.read_csv(run / "gradients.csv")
    assert set(grads["kind"]) == {"init"} and grads["lag"].tolist() == list(range(MAX_LAG + 1))
    assert pd.read_csv(run / "decay.csv")["kind"].tolist() == ["init"]


def test_decay_fit_is_the_exact_slope_and_skips_lag_zero_and_floored_lags():
    records = [{"layer": 0, "state": "h", "lag": k, "log_grad_norm": 2.0 - 0.3 * k,
                "frac_floored": 0.0} for k in range(8)]
    records[0]["log_grad_norm"] = 50.0  # lag 0: not on the exponential, left out
    records[5].update(log_grad_norm=-700.0, frac_floored=0.25)  # an underflow: left out
    (row,) = decay_rows(records)
    assert row["decay_rate"] == pytest.approx(-0.3)
    assert row["per_step_factor"] == pytest.approx(math.exp(-0.3))
    assert (row["min_lag"], row["max_lag"], row["lags_fitted"]) == (1, 7, 6)
    (short,) = decay_rows(records[:2])
    assert math.isnan(short["decay_rate"]) and short["lags_fitted"] == 1


def test_held_out_windows_are_deterministic_and_shaped_for_the_lags():
    stream = torch.arange(1000)
    first = held_out_windows(stream, max_lag=10, warmup=3, windows=2, batch=5)
    assert first.shape == (2, 3 + 10 + 2, 5)
    assert torch.equal(first, held_out_windows(stream, 10, 3, 2, 5))
    assert torch.equal(first[1, :, 4], torch.arange(985, 1000))  # last start: T - length


def test_collect_tables_and_every_figure_from_them(runs, tmp_path, tiny_data):
    tables = tmp_path / "tables"
    assert gradtables_main(["--out-dir", str(tables), *map(str, runs.values())]) == 0
    grads = pd.read_csv(tables / "grad_through_time.csv")
    assert list(grads.columns[:len(LABELS)]) == LABELS and set(grads["experiment"]) == {"tiny"}
    assert len(grads) == sum(len(pd.read_csv(r / "gradients.csv")) for r in runs.values())
    spectra = pd.read_csv(tables / "spectra.csv")
    assert {"epoch", "layer", "gate", "sigma_max"} <= set(spectra.columns)
    assert spectra["epoch"].min() == -1
    assert "min_lstm-h8-l2-s1" not in set(spectra["run_id"])  # no W_hh, no rows
    steps = pd.read_csv(tables / "grad_steps.csv")
    assert steps.groupby("run_id").size().tolist() == [STEP_QUANTILES + 1] * len(TINY_RUNS)
    first = steps[steps["run_id"] == "rnn_relu-h8-l1-init_scale1e20-s1"]
    assert first["grad_norm"].isna().all() and (first["n_steps"] == 0).all()
    ok = steps[steps["run_id"] == "rnn_tanh-h8-l1-s1"]
    assert ok["grad_norm"].is_monotonic_increasing and (ok["n_nonfinite"] == 0).all()
    decay = pd.read_csv(tables / "grad_decay.csv")
    # undefined (NaN) only where the norms overflow: the 1e20 initialisation
    overflow = decay["run_id"] == "rnn_relu-h8-l1-init_scale1e20-s1"
    assert decay.loc[~overflow, "decay_rate"].notna().all()
    for name in names("gradients"):
        png = tmp_path / "figures" / f"{name}.png"
        assert draw_main([name, "--tables", str(tables), "--out", str(png)]) == 0
        assert png.stat().st_size > 10_000 and png.with_suffix(".svg").exists()
    # and it is published as the other runs are (publish_run reduces steps.csv.gz the same way)
    from rnnbench.analysis.publish import copy_run
    from rnnbench.diagnostics.evaluate import main as evaluate_main

    run = runs["rnn_relu-h8-l1-init_scale1e20-s1"]
    assert evaluate_main(["--run-dir", str(run), "--data-dir", str(tiny_data),
                          "--out", str(run / "eval.json"), "--device", "cpu"]) == 0
    copy_run(run, tmp_path / "published")
    assert (tmp_path / "published/grad_quantiles.csv").exists()


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_a_bf16_run_is_measured_with_bf16_products(cell):
    from rnnbench.diagnostics.gradients import measure
    from rnnbench.model.model import RNNModel

    torch.manual_seed(0)
    model = RNNModel(cell, 30, 8).eval()
    windows = held_out_windows(torch.randint(0, 30, (400,)), 6, 2, 2, 3)
    fp64 = measure(model, windows, 6, 2, torch.float64)  # casts the model to float64
    bf16 = measure(model, windows, 6, 2, torch.float64, "bf16")  # and back to fp32
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32
    norms = [(a["grad_norm"], b["grad_norm"]) for a, b in zip(fp64, bf16, strict=True)]
    assert any(a != b for a, b in norms)  # the products really ran in bf16
    for a, b in norms:
        assert b == pytest.approx(a, rel=0.1)


def test_a_run_with_no_finite_step_still_gets_its_step_quantiles(tmp_path):
    # issue #32 (c): diverged at its first minibatch, steps.csv.gz holds the header alone
    import gzip

    from rnnbench.analysis.gradtables import step_quantiles

    with gzip.open(tmp_path / "steps.csv.gz", "wt") as f:
        f.write("epoch,batch,step,loss,grad_norm,grad_norm.embedding\n")
    table = step_quantiles(tmp_path)
    assert table["grad_norm"].isna().all() and (table["n_steps"] == 0).all()
