"""Effective context (rnnbench.diagnostics.context and context_stats, the measurement;
rnnbench.analysis.context_tables, the tables; rnnbench.figures.context_figures, the figure):
constructed models whose answer is known, then the command line and the tables on tiny trained
runs."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from rnnbench.analysis.context_tables import main as context_tables_main
from rnnbench.diagnostics.context import COLUMNS, ablation_losses, target_positions
from rnnbench.diagnostics.context import main as context_main
from rnnbench.diagnostics.context_stats import (
    ContextSettings,
    bootstrap,
    context_settings,
    effective_context,
    k_grid,
    seed_effective,
    settings_problem,
)
from rnnbench.diagnostics.evaluate import main as evaluate_main
from rnnbench.figures.draw import main as draw_main
from rnnbench.io import read_json
from rnnbench.model.model import RNNModel
from rnnbench.training.train import main as train_main

SMALL = ContextSettings(targets=40, prefix=200, resamples=200)


def random_stream(vocab: int, length: int = 1500, seed: int = 0, p0: float | None = None):
    """Token ids (length,): uniform, or token 0 with probability ``p0`` and the rest uniform."""
    g = torch.Generator().manual_seed(seed)
    stream = torch.randint(0, vocab, (length,), generator=g)
    if p0 is not None:
        stream[torch.rand(length, generator=g) < p0] = 0
    return stream


def linear_model(vocab: int, hidden: int, decay: float, embedding: torch.Tensor,
                 decoder: torch.Tensor) -> RNNModel:
    """``h_t = decay * h_{t-1} + e(x_t)`` exactly (relu of positive values, biases 0), fp64."""
    model = RNNModel("rnn_relu", vocab, hidden, embedding_size=hidden).double()
    with torch.no_grad():
        model.encoder.weight.copy_(embedding)
        model.rnn.weight_ih_l0.copy_(torch.eye(hidden))
        model.rnn.weight_hh_l0.copy_(decay * torch.eye(hidden))
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.decoder.weight.copy_(decoder)
        model.decoder.bias.zero_()
    return model


def increases(model: RNNModel, stream: torch.Tensor, settings: ContextSettings = SMALL):
    """The grid and the relative loss increase per ablation, (K,) each."""
    ks, fulls, ablated = ablation_losses(model, stream, settings)
    return ks, {name: losses.mean(1) / fulls[name].mean() - 1 for name, losses in ablated.items()}


def test_model_of_the_previous_token_alone_has_effective_context_one():
    torch.manual_seed(0)
    model = RNNModel("rnn_tanh", 7, 5).double()
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()  # no recurrence: h_t depends on x_t alone
    stream = random_stream(7)
    ks, inc = increases(model, stream)
    assert np.abs(inc["truncate"]).max() < 1e-12  # equal up to the GEMMs' rounding
    assert effective_context(ks, inc["truncate"]) == 1
    # the window of k = 1 is the previous token: its loss is the bigram model's
    positions = target_positions(stream.numel(), SMALL)
    full = ablation_losses(model, stream, SMALL)[1]["truncate"]
    h = torch.tanh(model.rnn.weight_ih_l0 @ model.encoder.weight[stream[positions - 1]].T
                   + (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0)[:, None])  # (H, n)
    direct = F.cross_entropy(model.decoder(h.T), stream[positions], reduction="none")
    np.testing.assert_allclose(full, direct.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("decay", [0.5, 0.8])
def test_linear_recurrence_loss_increase_falls_geometrically_at_its_decay(decay):
    vocab = 4
    # every token adds 0.02 to a one-unit state; token 0 (90% of the text) is more likely the
    # larger the state, so forgetting the distant past (a smaller state) costs loss
    decoder = torch.tensor([[5.0], [0.0], [0.0], [0.0]])
    model = linear_model(vocab, 1, decay, torch.full((vocab, 1), 0.02), decoder)
    ks, inc = increases(model, random_stream(vocab, p0=0.9))
    trunc = inc["truncate"]
    # from k = 5 on (the state's perturbation small enough to act linearly on the loss) to
    # where decay^k nears fp64's rounding
    fit = [(k, v) for k, v in zip(ks, trunc, strict=True) if k >= 5 and decay**k > 1e-8]
    assert len(fit) >= 4 and all(v > 0 for _, v in fit) and trunc[-1] == 0.0
    slope = np.polyfit([k for k, _ in fit], [math.log(v) for _, v in fit], deg=1)[0]
    assert math.exp(slope) == pytest.approx(decay, rel=0.01)


def test_the_full_context_is_the_whole_past_read_token_by_token_and_windows_are_cut():
    torch.manual_seed(1)
    model = RNNModel("lstm", 9, 6).double().eval()
    stream = random_stream(9, length=400)
    settings = ContextSettings(targets=5, prefix=60, resamples=10)
    ks, fulls, ablated = ablation_losses(model, stream, settings)
    assert ks[-1] == 60
    np.testing.assert_array_equal(ablated["truncate"][-1], fulls["truncate"])
    np.testing.assert_array_equal(ablated["shuffle"][-1], fulls["shuffle"])

    def read(tokens):  # one column, one token at a time, state carried from zero
        hidden = model.init_hidden(1)
        for token in tokens:
            logits, hidden = model(token.view(1, 1), hidden)
        return logits[-1]

    with torch.no_grad():
        for j, t in enumerate(target_positions(stream.numel(), settings).tolist()):
            for start, losses in ((0, fulls["truncate"]), (t - 60, fulls["shuffle"]),
                                  (t - 3, ablated["truncate"][ks.index(3)])):
                loss = F.cross_entropy(read(stream[start:t]), stream[t:t + 1]).item()
                assert losses[j] == pytest.approx(loss, rel=1e-12), (t, start)


def test_the_full_context_pass_equals_a_long_window_for_a_trained_like_model():
    # a model that forgets (recurrent weights small) loses nothing when only the last 100
    # tokens are read: the one-pass full context is the long window's loss
    torch.manual_seed(3)
    model = RNNModel("lstm", 9, 6).double().eval()
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.1)
    stream = random_stream(9, length=600)
    settings = ContextSettings(targets=50, prefix=100, resamples=10)
    ks, fulls, ablated = ablation_losses(model, stream, settings)
    np.testing.assert_allclose(ablated["truncate"][ks.index(70)], fulls["truncate"], rtol=1e-6)


def test_shuffle_scores_its_own_evenly_spaced_subset_of_the_targets():
    torch.manual_seed(1)
    model = RNNModel("gru", 9, 6).double().eval()
    settings = ContextSettings(targets=40, prefix=30, resamples=10, shuffle_targets=8)
    ks, fulls, ablated = ablation_losses(model, random_stream(9, length=500), settings)
    assert fulls["truncate"].shape == (40,) and ablated["truncate"].shape == (len(ks), 40)
    assert fulls["shuffle"].shape == (8,) and ablated["shuffle"].shape == (len(ks), 8)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_a_bf16_run_is_measured_in_bf16(cell):
    torch.manual_seed(1)
    model = RNNModel(cell, 9, 6).eval()
    stream = random_stream(9, length=300)
    settings = ContextSettings(targets=10, prefix=20, resamples=10)
    _, fp32, _ = ablation_losses(model, stream, settings)
    _, bf16, _ = ablation_losses(model, stream, settings, "bf16")
    assert not np.array_equal(fp32["truncate"], bf16["truncate"])
    np.testing.assert_allclose(fp32["truncate"], bf16["truncate"], rtol=0.05)


def test_shuffling_the_far_past_changes_nothing_for_a_bag_of_words_model():
    vocab, hidden = 8, 3
    g = torch.Generator().manual_seed(2)
    embedding = torch.rand(vocab, hidden, generator=g, dtype=torch.float64) * 0.01
    decoder = torch.randn(vocab, hidden, generator=g, dtype=torch.float64)
    stream = random_stream(vocab)
    _, bag = increases(linear_model(vocab, hidden, 1.0, embedding, decoder), stream)
    assert np.abs(bag["shuffle"]).max() < 1e-12  # a sum of embeddings: order is irrelevant
    assert np.abs(bag["truncate"][:3]).min() > 1e-4  # but the content is not
    _, ordered = increases(linear_model(vocab, hidden, 0.5, embedding, decoder), stream)
    assert np.abs(ordered["shuffle"][:3]).min() > 1e-6  # a decaying sum does see order


def test_effective_context_ignores_a_dip_below_the_line_before_it_stays_there():
    assert effective_context([1, 2, 3, 5], np.array([0.5, 0.005, 0.02, 0.0])) == 5
    assert effective_context([1, 2, 3, 5], np.array([0.5, 0.01, -0.001, 0.0])) == 2
    assert effective_context([1, 2], np.array([0.02, 0.03])) != effective_context(
        [1, 2], np.array([0.0, 0.0]))


def test_bootstrap_interval_holds_the_point_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    full = rng.gamma(5.0, 1.0, 200)
    ablated = full[None] * (1 + np.array([0.3, 0.05, 0.008, 0.0]))[:, None] \
        + rng.normal(0, 0.05, (4, 200))
    ablated[-1] = full
    a = bootstrap(full, ablated, [1, 5, 20, 50], 300, seed=1)
    b = bootstrap(full, ablated, [1, 5, 20, 50], 300, seed=1)
    assert a["effective"] == b["effective"] == 20
    assert (a["ci_low"] <= a["increase"]).all() and (a["increase"] <= a["ci_high"]).all()
    assert a["effective_ci_low"] <= 20 <= a["effective_ci_high"]
    assert a["effective_ci_low"] in (1, 5, 20, 50)


def test_a_models_context_over_seeds_is_a_k_of_the_grid_with_an_interval_that_has_width():
    """Three seeds whose own effective contexts all are 5: the mean of those values has a t
    interval of no width, [5, 5]; the context of the mean curve is 5, and its t band over seeds
    gives the k where the lower and the upper edge stay within 1%, 3 and 7."""
    from rnnbench.analysis.stats import mean_ci

    ks = [1, 2, 3, 5, 7, 10]
    curves = np.array([[0.2, 0.05, 0.015, 0.009, 0.004, 0.0],
                       [0.2, 0.05, 0.012, 0.006, 0.003, 0.0],
                       [0.2, 0.05, 0.018, 0.0095, 0.005, 0.0]])
    assert [effective_context(ks, c) for c in curves] == [5, 5, 5]
    old = mean_ci([5.0, 5.0, 5.0])
    assert old["ci_low"] == old["ci_high"] == 5.0
    pooled = seed_effective(ks, curves)
    assert (pooled["effective_ci_low"], pooled["effective"], pooled["effective_ci_high"]) == (
        3, 5, 7)
    # the seeds share their targets: that sample's bootstrap half-width widens the band
    wider = seed_effective(ks, curves, np.full_like(curves, 0.007))
    assert (wider["effective_ci_low"], wider["effective"], wider["effective_ci_high"]) == (
        3, 5, 10)
    # seeds that disagree (3 and 30 tokens): the t interval of their mean reaches below zero,
    # the band's stays on the grid
    ks = [1, 3, 10, 30, 100]
    curves = np.array([[0.3, 0.008, 0.005, 0.002, 0.0], [0.3, 0.05, 0.02, 0.006, 0.0]])
    assert mean_ci([3.0, 30.0])["ci_low"] < 0
    pooled = seed_effective(ks, curves)
    assert pooled["effective"] == 30 and 1 <= pooled["effective_ci_low"] <= 30
    assert pooled["effective_ci_high"] in ks
    with pytest.raises(ValueError, match="2 or more seeds"):
        seed_effective(ks, curves[:1])
    with pytest.raises(ValueError, match="do not match 4 k"):
        seed_effective(ks[:4], curves)


def _context_rows(run_id: str, increases: list[float], ks: list[int], status: str = "ok",
                  **per_run) -> list[dict]:
    """context.csv rows of one run (truncation only)."""
    return [{"experiment": "e", "run_id": run_id, "status": status, "ablation": "truncate",
             "k": k, "loss_increase": inc, "ci_low": inc - 0.01, "ci_high": inc + 0.01,
             **per_run} for k, inc in zip(ks, increases, strict=True)]


def test_model_context_one_seed_none_and_runs_measured_apart():
    from rnnbench.analysis.context_tables import model_context

    one = pd.DataFrame(_context_rows("a", [0.2, 0.0], [1, 10], effective_context=10.0,
                                     effective_context_ci_low=1.0,
                                     effective_context_ci_high=10.0))
    got = model_context(one)
    assert got["effective_context_n"] == 1 and got["effective_context"] == 10.0
    assert (got["effective_context_ci_low"], got["effective_context_ci_high"]) == (1.0, 10.0)
    assert got["effective_context_censored"]  # 10 is the longest context measured
    skipped = pd.DataFrame([{"experiment": "e", "run_id": "b", "status": "nonfinite",
                             "ablation": math.nan, "k": math.nan, "loss_increase": math.nan,
                             "effective_context": math.nan}])
    none = model_context(skipped)
    assert none["effective_context_n"] == 0 and math.isnan(none["effective_context"])
    apart = pd.DataFrame(_context_rows("a", [0.2, 0.0], [1, 10], effective_context=10.0)
                         + _context_rows("c", [0.2, 0.0], [1, 20], effective_context=20.0))
    with pytest.raises(ValueError, match="a, c: they were measured on different context grids"):
        model_context(apart)


def test_settings_grid_and_a_clear_message_for_a_too_short_split():
    assert context_settings(True) == ContextSettings() and context_settings(False) is None
    assert context_settings({"targets": 10}) == ContextSettings(targets=10)
    assert k_grid(1000)[-1] == 1000 and k_grid(1000)[:3] == [1, 2, 3]
    assert k_grid(60) == [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 60]
    message = settings_problem(ContextSettings(targets=300, prefix=1000), 1200, "valid.pt")
    assert "300 target positions" in message and "1200" in message
    assert "`context: false`" in message and "valid.pt" in message
    assert settings_problem(ContextSettings(targets=200, prefix=1000), 1200, "x") is None


TINY = ["--targets", "20", "--prefix", "50", "--resamples", "100", "--device", "cpu",
        "--threads", "1"]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> list[Path]:
    """Two seeds of a tiny LSTM and one diverged run, each measured with tiny settings."""
    root = tmp_path_factory.mktemp("context")
    specs = {"lstm-h8-l1-s1": ["--cell", "lstm", "--seed", "1"],
             "lstm-h8-l1-s2": ["--cell", "lstm", "--seed", "2"],
             "rnn_relu-h8-l1-s1": ["--cell", "rnn_relu", "--lr", "1e30", "--grad", "none"]}
    dirs = []
    for run_id, args in specs.items():
        run = root / "results/runs/tiny/tiny" / run_id
        assert train_main([*args, "--hidden", "8", "--epochs", "1", "--batch-size", "4",
                           "--bptt", "5", "--device", "cpu", "--data-dir", str(tiny_data),
                           "--run-dir", str(run), "--run-id", run_id, "--checkpoint",
                           str(root / f"{run_id}.pt"), "--threads", "1"]) == 0
        assert evaluate_main(["--run-dir", str(run), "--data-dir", str(tiny_data), "--out",
                              str(run / "eval.json"), "--device", "cpu"]) == 0
        assert context_main(["--run-dir", str(run), "--data-dir", str(tiny_data), "--out",
                             str(run / "context.csv"), *TINY]) == 0
        dirs.append(run)
    return dirs


def test_cli_writes_both_curves_and_the_effective_context(runs):
    table = pd.read_csv(runs[0] / "context.csv")
    assert list(table.columns) == COLUMNS
    assert table.groupby("ablation")["k"].apply(list).to_dict() == {
        "truncate": k_grid(50), "shuffle": k_grid(50)}
    assert (table["ci_low"] <= table["loss_increase"] + 1e-12).all()
    meta = read_json(runs[0] / "context.json")
    assert meta["status"] == "ok" and meta["effective_context"] in k_grid(50)
    assert meta["full_loss"] == pytest.approx(table["full_loss"].iloc[0])
    assert meta["targets"] == 20 and "rnnbench.diagnostics.context" in meta["command"]
    diverged = read_json(runs[2] / "context.json")
    assert diverged["status"] == "skipped" and "effective_context" not in diverged
    assert pd.read_csv(runs[2] / "context.csv").empty


def test_cli_refuses_a_prefix_longer_than_the_split_in_one_paragraph(runs, tiny_data):
    with pytest.raises(SystemExit, match="Lower `prefix` or `targets`"):
        context_main(["--run-dir", str(runs[0]), "--data-dir", str(tiny_data), "--out",
                      str(runs[0] / "never.csv"), "--prefix", "100000"])
    assert not (runs[0] / "never.csv").exists()


def test_collect_tables_and_figure(runs, tmp_path):
    tables = tmp_path / "tables"
    assert context_tables_main(["--out-dir", str(tables), *map(str, runs)]) == 0
    table = pd.read_csv(tables / "context.csv")
    assert set(table["run_id"]) == {"lstm-h8-l1-s1", "lstm-h8-l1-s2", "rnn_relu-h8-l1-s1"}
    skipped = table[table["run_id"] == "rnn_relu-h8-l1-s1"]
    assert len(skipped) == 1 and skipped["effective_context"].isna().all()
    summary = pd.read_csv(tables / "context_summary.csv")
    lstm = summary[summary["cell"] == "lstm"].iloc[0]
    per_seed = table[table["cell"] == "lstm"].drop_duplicates("run_id")["effective_context"]
    assert lstm["effective_context_n"] == 2 and lstm["n"] == 2
    lstm_rows = table[(table["cell"] == "lstm") & (table["ablation"] == "truncate")]
    curves = lstm_rows.pivot(index="run_id", columns="k", values="loss_increase")
    half = (lstm_rows.pivot(index="run_id", columns="k", values="ci_high")
            - lstm_rows.pivot(index="run_id", columns="k", values="ci_low")) / 2
    pooled = seed_effective(list(curves.columns), curves.to_numpy(), half.to_numpy())
    assert [lstm[f"effective_context{s}"] for s in ("_ci_low", "", "_ci_high")] == [
        pooled[f"effective{s}"] for s in ("_ci_low", "", "_ci_high")]
    assert lstm["effective_context_ci_low"] <= lstm["effective_context"] \
        <= lstm["effective_context_ci_high"]
    assert (lstm["effective_context_seed_min"], lstm["effective_context_seed_max"]) == (
        per_seed.min(), per_seed.max())
    relu = summary[summary["cell"] == "rnn_relu"].iloc[0]
    assert relu["effective_context_n"] == 0 and math.isnan(relu["effective_context"])
    png = tmp_path / "figures/context_vs_k.png"
    assert draw_main(["context_vs_k", "--tables", str(tables), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000 and png.with_suffix(".svg").exists()
    assert "rnn_relu-h8-l1-s1: skipped" in png.with_suffix(".svg").read_text()
    # a study whose every run lacks trained weights: the tables, and a figure that says so
    assert context_tables_main(["--out-dir", str(tmp_path / "none"), str(runs[2])]) == 0
    assert draw_main(["context_vs_k", "--tables", str(tmp_path / "none"), "--out",
                              str(tmp_path / "none.png")]) == 0
    assert "no run's effective context" in (tmp_path / "none.svg").read_text()


def test_the_published_context_table_is_the_committed_runs():
    """docs/results.md's gradients table (test perplexity and effective context of each model)
    is what the committed results/reference/gradients/ files give."""
    import re

    from rnnbench.analysis.aggregate import run_record
    from rnnbench.analysis.compare import markdown, models
    from rnnbench.analysis.context_tables import run_rows
    from rnnbench.analysis.pairs import comparisons

    root = Path(__file__).resolve().parents[1]
    dirs = sorted(p.parent for p in (root / "results/reference/gradients").glob("*/context.json"))
    assert len(dirs) == 9  # tanh, relu and LSTM, 3 seeds each
    runs = pd.DataFrame([run_record(d) for d in dirs])
    context = pd.concat([run_rows(d, r) for d, r in zip(dirs, runs.to_dict("records"),
                                                        strict=True)])
    table = markdown(models(runs, context), comparisons(runs))
    text = (root / "docs/results.md").read_text()
    match = re.search(r"<!-- gradients-table -->\n(.*?)<!-- /gradients-table -->", text, re.S)
    assert match, "docs/results.md lacks the gradients-table markers"
    assert match.group(1) == table


def test_the_context_figure_draws_each_model_variant_apart(tmp_path):
    """irnn and lstm+fb1 are models of their own (rnnbench.analysis.labels), not pooled into
    rnn_relu and lstm: one legend entry and one colour each, one panel per size."""
    from rnnbench.figures.context_figures import context_vs_k

    rows = []
    for model, cell in [("rnn_relu", "rnn_relu"), ("irnn", "rnn_relu"), ("lstm", "lstm"),
                        ("lstm+fb1", "lstm")]:
        for seed in (1, 2):
            for (k, inc), ablation in itertools.product([(1, 0.1), (10, 0.005), (100, 0.0)],
                                                        ("truncate", "shuffle")):
                rows.append({"corpus": "ptb", "experiment": "e", "run_id": f"{model}-s{seed}",
                             "model": model, "size": "t4M", "cell": cell,
                             "hidden": 196 if cell == "rnn_relu" else 186, "layers": 1,
                             "seed": seed, "status": "ok", "effective_context": 10.0,
                             "order_context": 10.0,
                             "ablation": ablation, "k": k, "loss_increase": inc,
                             "ci_low": inc, "ci_high": inc, "targets": 300})
    pd.DataFrame(rows).to_csv(tmp_path / "context.csv", index=False)
    fig = context_vs_k(tmp_path)
    (ax,) = [a for a in fig.axes if a.get_legend() is not None]  # one panel: one size
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["rnn_relu", "irnn", "lstm", "lstm+fb1"]
    colors = {h.get_color() for h in ax.get_legend().legend_handles[:4]}
    assert len(colors) == 4
