"""The throughput benchmark: FLOP counts, exactness against the naive loop, the CLI end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rnnbench import bench, stepprofile
from rnnbench.bench import (
    COLUMNS,
    BenchConfig,
    Pair,
    grid_configs,
    matmul_flops_per_token,
    naive_step,
    parse_configs,
)
from rnnbench.model import RNNModel
from rnnbench.train import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on one thread: fast, and immune to a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("cell, hidden, expected", [("rnn_tanh", 150, 9.27e6),
                                                    ("lstm", 300, 22.3e6)])
def test_matmul_flops_per_token_of_the_issue_configurations(cell, hidden, expected):
    assert matmul_flops_per_token(cell, hidden, 1, 10_000) == pytest.approx(expected, rel=1e-3)


def test_matmul_flops_count_gates_and_deeper_layers():
    v, h = 100, 8
    decoder = 3 * 2 * h * v
    assert matmul_flops_per_token("gru", h, 1, v) == decoder + 3 * 2 * (h + h) * 3 * h
    assert matmul_flops_per_token("rnn_relu", h, 2, v, embedding=4) == (
        decoder + 3 * 2 * (4 + h) * h + 3 * 2 * (h + h) * h)


def test_configurations_parse_and_the_grid_is_the_default_grid():
    assert parse_configs("rnn_tanh:150:1, lstm:300") == [BenchConfig("rnn_tanh", 150, 1),
                                                         BenchConfig("lstm", 300, 1)]
    with pytest.raises(ValueError, match="cell:hidden"):
        parse_configs("transformer:150:1")
    grid = grid_configs()
    assert len(grid) == 4 * 3 * 2 and len(set(grid)) == len(grid)
    assert {c.hidden for c in grid} == {150, 300, 650} and {c.layers for c in grid} == {1, 2}


def test_naive_step_zeroes_a_vanishing_gradient():
    torch.manual_seed(0)
    model = RNNModel("rnn_tanh", 20, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 20, (5, 2))
    _, loss = naive_step(model, x, x, model.init_hidden(2), lr=1.0, eps=1e9)
    assert isinstance(loss, float)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("cell, layers", [("rnn_tanh", 1), ("lstm", 2)])
def test_naive_loop_and_trainer_step_agree_within_float32_rounding(cell, layers, tiny_data,
                                                                   tmp_path):
    pair = Pair(BenchConfig(cell, 16, layers), tiny_data, torch.device("cpu"), 4, 10, tmp_path)
    diff = pair.loss_difference(6)
    assert diff["loss_max_rel_diff"] < 1e-5
    assert diff["update_max_rel_diff"] < 1e-5
    assert diff["loss_drift_rel_diff"] < 1e-5


def test_ours_is_the_real_trainer_step(tiny_data, tmp_path, monkeypatch):
    calls = []
    real = Trainer.step

    def counting(self, *args):
        calls.append(self)
        return real(self, *args)

    monkeypatch.setattr(Trainer, "step", counting)
    pair = Pair(BenchConfig("gru", 8, 1), tiny_data, torch.device("cpu"), 4, 10, tmp_path)
    pair.our_steps(3)
    assert len(calls) == 3 and all(c is pair.trainer for c in calls)


def test_cli_writes_the_table_and_csv(tiny_data, tmp_path, capsys):
    out = tmp_path / "bench" / "b.csv"
    argv = ["--configs", "rnn_tanh:16:1", "--data-dir", str(tiny_data), "--device", "cpu",
            "--threads", "1", "--batch-size", "4", "--bptt", "10", "--warmup", "1",
            "--steps", "2", "--repeats", "2", "--loss-steps", "2", "--peak-size", "128",
            "--memory", "--memory-steps", "2", "--out", str(out)]
    assert bench.main(argv) == 0
    assert "| rnn_tanh:16:1 |" in capsys.readouterr().out
    with out.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS and len(rows) == 1
    row = rows[0]
    assert (row["cell"], row["hidden"], row["layers"], row["device"]) == ("rnn_tanh", "16", "1",
                                                                          "cpu")
    for key in ("naive_tokens_per_s", "ours_tokens_per_s", "ratio", "peak_gflops",
                "naive_peak_rss_mb", "ours_peak_rss_mb"):
        assert float(row[key]) > 0, key
    assert float(row["loss_max_rel_diff"]) < 1e-5
    assert not list(Path(out.parent).glob("*.tmp"))


def test_profile_categories_follow_the_ops_and_their_shapes():
    vocab = 37
    h = torch.randn(5, 6)
    w = torch.randn(vocab, 6)
    small = torch.randn(6, 6)
    emb = torch.randn(vocab, 6)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        logits = torch.mm(h, w.t())  # (5, V): decoder GEMM
        torch.log_softmax(logits, dim=1)  # (5, V): softmax + CE
        torch.mm(h, small)  # no V: recurrence
        torch.nn.functional.embedding(torch.tensor([1, 2]), emb)  # embedding
        torch._foreach_norm([h, small])  # norm + SGD
    totals = stepprofile.categorize(prof.events(), vocab)
    assert set(totals) == set(stepprofile.CATEGORIES[:-1])
    assert all(v > 0 for v in totals.values()), totals
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        torch.mm(h, small)
    only = stepprofile.categorize(prof.events(), vocab)
    assert only["recurrence"] > 0
    assert only["decoder GEMM"] == only["softmax + CE"] == 0


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_profile_pair_accounts_for_the_whole_step(cell, tiny_data, tmp_path):
    pair = Pair(BenchConfig(cell, 13, 1), tiny_data, torch.device("cpu"), 3, 7, tmp_path)
    rows = stepprofile.profile_pair(pair, 2)
    assert [r["loop"] for r in rows] == ["naive", "ours"]
    for r in rows:
        parts = [r[stepprofile.COLUMN[c]] for c in stepprofile.CATEGORIES]
        assert sum(parts) == pytest.approx(r["wall_ms"], rel=1e-6)
        for c in ("decoder GEMM", "softmax + CE", "recurrence", "norm + SGD"):
            assert r[stepprofile.COLUMN[c]] > 0, (r["loop"], c)
        assert r["decoder_gemm_gflops"] > 0


def test_cli_profile_writes_the_profile_table(tiny_data, tmp_path, capsys):
    out = tmp_path / "b.csv"
    argv = ["--configs", "rnn_tanh:16:1", "--data-dir", str(tiny_data), "--device", "cpu",
            "--threads", "1", "--batch-size", "4", "--bptt", "10", "--warmup", "1",
            "--steps", "2", "--repeats", "1", "--loss-steps", "0", "--peak-size", "128",
            "--profile", "--profile-steps", "2", "--out", str(out)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| rnn_tanh:16:1 | naive |" in printed and "| rnn_tanh:16:1 | ours |" in printed
    assert "Ceiling" in printed
    with (tmp_path / "b-profile.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["loop"] for r in rows] == ["naive", "ours"]
    assert float(rows[0]["decoder_gemm_ms"]) > 0
