"""The throughput benchmark: the naive loop, the harness, FLOPs and peak, tables, the CLI."""

from __future__ import annotations

import copy
import csv
import math
import time
from pathlib import Path

import pytest
import torch

from rnnbench.bench import bench, stepprofile
from rnnbench.bench.benchtable import COLUMNS, ceiling_lines, profile_table, table, write_csv
from rnnbench.bench.harness import BenchConfig, GlobalNormOnly, Pair, grid_configs, parse_configs
from rnnbench.bench.naive import NaiveLoop, naive_step
from rnnbench.bench.peak import MatmulPeak, ceiling, matmul_flops_per_token, timed
from rnnbench.config import RunConfig
from rnnbench.data.batching import get_batch, num_batches
from rnnbench.model.model import RNNModel
from rnnbench.training.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_naive_step_moves_the_weights_by_lr_along_the_unit_norm_gradient():
    torch.manual_seed(0)
    model = RNNModel("lstm", 20, 4)
    ref = copy.deepcopy(model)
    x, y = torch.randint(0, 20, (5, 2)), torch.randint(0, 20, (5, 2))
    out, _ = ref(x, ref.init_hidden(2))  # (seq, batch, vocab)
    loss = torch.nn.functional.cross_entropy(out.reshape(-1, 20), y.reshape(-1))
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    _, got = naive_step(model, x, y, model.init_hidden(2), lr=0.5)
    assert got == pytest.approx(loss.item(), rel=1e-6)
    moved = 0.0
    for p, r, g in zip(model.parameters(), ref.parameters(), grads, strict=True):
        torch.testing.assert_close(p.detach(), r.detach() - 0.5 * g / norm)
        moved += float((p.detach() - r.detach()).square().sum())
    assert math.sqrt(moved) == pytest.approx(0.5, rel=1e-4)


def test_naive_loop_walks_the_stream_and_restarts_each_pass_from_a_zero_state():
    torch.manual_seed(0)
    data = torch.randint(0, 20, (23, 3))  # (rows, batch): minibatches of 10, 10 and 2 rows
    n = num_batches(data, 10)
    model = RNNModel("gru", 20, 4)
    loop = NaiveLoop(model, data, 10, n, lr=1.0, eps=1e-4)
    assert n == 3 and len(loop.steps(n)) == 3
    assert loop.pos == 3 and loop.tokens == 22 * 3
    fresh = copy.deepcopy(model)
    x, y = get_batch(data, 0, 10)
    _, first_of_pass = naive_step(fresh, x, y, fresh.init_hidden(3), lr=1.0)
    assert loop.steps(1) == [first_of_pass] and loop.pos == 1


@pytest.mark.parametrize("cell, layers", [("rnn_tanh", 1), ("lstm", 2), ("min_gru", 2),
                                         ("min_lstm", 1)])
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
    pair.bf16_steps(2)
    assert len(calls) == 5 and all(c is pair.trainer16 for c in calls[3:])
    assert pair.trainer16.cfg.precision == "bf16" and pair.trainer.cfg.precision is None


def test_bf16_arm_starts_from_the_same_weights_and_differs_by_its_arithmetic(tiny_data,
                                                                             tmp_path):
    pair = Pair(BenchConfig("lstm", 16, 1), tiny_data, torch.device("cpu"), 4, 10, tmp_path)
    for k, v in pair.trainer.model.state_dict().items():
        assert torch.equal(v, pair.trainer16.model.state_dict()[k]), k
    diff = pair.precision_difference(4)
    # bf16 keeps ~3 significant digits: the loss moves, but by well under a percent
    assert 0 < diff["bf16_loss_max_rel_diff"] < 1e-2
    assert 0 < diff["bf16_loss_last_rel_diff"] < 1e-2
    for k, v in pair.trainer.model.state_dict().items():  # reset afterwards
        assert torch.equal(v, pair.trainer.init_state[k]), k


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
                "naive_peak_rss_mb", "ours_peak_rss_mb", "bf16_tokens_per_s", "bf16_ratio",
                "bf16_vs_fp32", "bf16_peak_gflops", "bf16_peak_rss_mb"):
        assert float(row[key]) > 0, key
    assert float(row["loss_max_rel_diff"]) < 1e-5
    assert 0 < float(row["bf16_loss_max_rel_diff"]) < 1e-2
    assert row["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
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
        h.to(torch.bfloat16)  # casts
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
    assert [r["loop"] for r in rows] == ["naive", "ours", "ours bf16"]
    # fp32 casts a scalar or two; bf16 its weights and activations
    assert rows[2]["casts_ms"] > max(rows[0]["casts_ms"], rows[1]["casts_ms"])
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
    assert [r["loop"] for r in rows] == ["naive", "ours", "ours bf16"]
    assert float(rows[0]["decoder_gemm_ms"]) > 0
    with out.open() as f:
        (main,) = list(csv.DictReader(f))
    # each loop's GEMM rate is against the peak of the precision it computes in
    assert [float(r["peak_gflops"]) for r in rows] == [float(main["peak_gflops"])] * 2 + [
        float(main["bf16_peak_gflops"])]


@pytest.mark.parametrize("grad", ["normalize", "clip"])
def test_global_norm_only_treats_the_gradients_as_our_full_treatment(grad, tiny_data, tmp_path):
    cfg = RunConfig(cell="lstm", hidden=8, batch_size=4, bptt=6, grad=grad, clip_norm=0.1)
    trainer = Trainer(cfg, tiny_data, tmp_path / "c.pt", torch.device("cpu"))
    x, y = get_batch(trainer.train_data, 0, cfg.bptt)
    out, _ = trainer.model(x, trainer.model.init_hidden(cfg.batch_size))
    torch.nn.functional.cross_entropy(out.reshape(-1, trainer.vocab_size), y.reshape(-1)).backward()
    raw = [p.grad.clone() for p in trainer.treat.params]
    norms = trainer.treat()  # (1 + groups,): [global, *group]
    full = [p.grad.clone() for p in trainer.treat.params]
    for p, g in zip(trainer.treat.params, raw, strict=True):
        p.grad.copy_(g)
    total = GlobalNormOnly(trainer.treat)()
    assert total.shape == norms.shape and total[0] == pytest.approx(float(norms[0]), rel=1e-5)
    for p, g in zip(trainer.treat.params, full, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert not torch.equal(full[0], raw[0])  # the treatment did scale the gradients


def test_timed_covers_the_call_and_the_peak_is_a_real_product():
    assert timed(lambda: time.sleep(0.02), torch.device("cpu")) >= 0.02
    peak = MatmulPeak(torch.device("cpu"), 64)
    torch.testing.assert_close(peak.out, peak.a @ peak.b)
    gflops = peak.measure(3)
    assert math.isfinite(gflops) and gflops > 0
    assert ceiling(2e6, 100.0) == pytest.approx(5e4)  # 100 GFLOP/s / 2 MFLOP per token


def _result(**changes):
    """One configuration's row as the benchmark builds it (what the tables read)."""
    row = {"cell": "lstm", "hidden": 300, "layers": 1, "naive_tokens_per_s": 5596.4,
           "ours_tokens_per_s": 6046.0, "ratio": 1.0804, "naive_peak_share": 0.665,
           "ours_peak_share": 0.728, "loss_max_rel_diff": math.nan,
           "update_max_rel_diff": 3.2e-7, "loss_drift_rel_diff": math.nan,
           "stats_overhead_pct": 1.26, "naive_peak_rss_mb": math.nan,
           "ours_peak_rss_mb": math.nan, "naive_cuda_peak_mb": math.nan,
           "ours_cuda_peak_mb": math.nan, "ceiling_tokens_per_s": 8167.0,
           "bf16_tokens_per_s": 9100.2, "bf16_ratio": 1.626, "bf16_vs_fp32": 1.505,
           "bf16_loss_max_rel_diff": 2.04e-3, "bf16_loss_last_rel_diff": math.nan,
           "bf16_ceiling_tokens_per_s": 20000.0}
    return {**row, **changes}


def test_table_rounds_each_column_and_shows_what_was_not_measured_as_a_dash():
    lines = table([_result(), _result(naive_peak_rss_mb=602.4, ours_peak_rss_mb=440.0,
                                      naive_cuda_peak_mb=120.4, ours_cuda_peak_mb=80.6)])
    lines = lines.splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[1].count("|") == 16
    assert lines[2] == ("| lstm:300:1 | 5,596 | 6,046 | 1.08x | 9,100 | 1.63x | 1.50x | 66.5 | "
                        "72.8 | - | 3.2e-07 | - | 2.0e-03 / - | +1.3 | - / - / - |")
    assert lines[3].endswith("| 602 / 440 / - (GPU 120 / 81 / -) |")
    assert ceiling_lines([_result()]) == ("  lstm:300:1  8,167 tok/s = 1.46x the naive loop; "
                                          "bf16 20,000 tok/s = 3.57x")


def test_profile_table_gives_each_category_its_share_of_the_step():
    row = {"config": "rnn_tanh:150:1", "loop": "naive", "wall_ms": 40.0,
           "decoder_gemm_gflops": 50.0, "peak_gflops": 200.0}
    row |= {stepprofile.COLUMN[c]: ms for c, ms in
            zip(stepprofile.CATEGORIES, (20.0, 10.0, 4.0, 2.0, 2.0, 0.0, 2.0), strict=True)}
    last = profile_table([row]).splitlines()[-1]
    assert last == ("| rnn_tanh:150:1 | naive | 40.0 | 20.0 (50%) | 10.0 (25%) | 4.0 (10%) "
                    "| 2.0 (5%) | 2.0 (5%) | 0.0 (0%) | 2.0 (5%) | 50 (25%) |")


def test_write_csv_writes_the_columns_in_order_atomically(tmp_path):
    path = tmp_path / "new" / "t.csv"
    write_csv(path, [{"a": 1, "b": "x"}, {"a": math.nan, "b": ""}], ["b", "a"])
    assert path.read_text() == "b,a\nx,1\n,nan\n"
    assert [p.name for p in path.parent.iterdir()] == ["t.csv"]


def test_step_counts_are_smaller_for_the_grid_and_a_given_flag_wins():
    parse = bench.build_parser().parse_args
    assert bench.step_counts(parse([])) == {"warmup": 5, "steps": 10, "repeats": 7,
                                            "loss_steps": 20}
    assert bench.step_counts(parse(["--grid", "--steps", "9", "--loss-steps", "0"])) == {
        "warmup": 2, "steps": 9, "repeats": 3, "loss_steps": 0}


def test_min_cell_forms_are_timed_side_by_side_and_tabled():
    from rnnbench.bench.minscan import compare, table

    row = compare("min_lstm", 8, 2, 5, steps=1, repeats=3)
    assert row["scan_tok_s"] > 0 and row["loop_tok_s"] > 0 and row["scan_over_loop"] > 0
    text = table([row])
    assert text.splitlines()[2].startswith("| min_lstm | 8 | 1 | 2 | 5 |") and "×" in text
