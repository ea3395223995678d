"""Parameter accounting and the hidden-size solver of the iso-parameter axis."""

from __future__ import annotations

import pytest
import torch

from rnnbench.model.model import RNNModel
from rnnbench.model.params import (
    GATES,
    format_budget,
    matmul_flops_per_token,
    param_counts,
    recurrent_params,
    solve_hidden,
)


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("embedding", [None, 17])
def test_counts_equal_the_torch_modules(cell, layers, embedding):
    model = RNNModel(cell, 50, 23, layers, embedding_size=embedding)
    counts = param_counts(cell, 23, layers, 50, embedding)
    assert counts["params"] == sum(p.numel() for p in model.parameters())
    assert counts["recurrent_params"] == sum(p.numel() for p in model.rnn.parameters())
    assert counts["embedding_decoder_params"] == (
        model.encoder.weight.numel() + model.decoder.weight.numel() + model.decoder.bias.numel())


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("budget", [1, 5_000, 250_000, 1_000_003])
def test_solver_hits_the_nearest_count_for_every_cell_and_depth(cell, layers, budget):
    hidden, achieved = solve_hidden(cell, budget, layers)
    assert achieved == recurrent_params(cell, hidden, layers)
    for other in (hidden - 1, hidden + 1):
        if other >= 1:  # no neighbouring size is nearer the budget
            assert abs(achieved - budget) <= abs(recurrent_params(cell, other, layers) - budget)


def test_solver_at_250k_gives_the_expected_sizes():
    # lstm, 1 layer: 4H(2H) + 8H = 8H^2 + 8H; H = 176 -> 249,216 (177 -> 252,048)
    assert solve_hidden("lstm", 250_000, 1) == (176, 249_216)
    # tanh, 1 layer: 2H^2 + 2H; H = 353 -> 249,924 (354 -> 251,340)
    assert solve_hidden("rnn_tanh", 250_000, 1) == (353, 249_924)
    assert solve_hidden("gru", 250_000, 2) == (144, 250_560)


def test_solver_ties_take_the_smaller_size():
    # tanh: count(10) = 220, count(11) = 264; 242 is exactly between them
    assert recurrent_params("rnn_tanh", 10) == 220 and recurrent_params("rnn_tanh", 11) == 264
    assert solve_hidden("rnn_tanh", 242) == (10, 220)
    assert solve_hidden("rnn_tanh", 243) == (11, 264)


@pytest.mark.parametrize(("cell", "gates"), [("min_gru", 2), ("min_lstm", 3)])
@pytest.mark.parametrize("layers", [1, 2])
def test_min_cells_count_input_weights_and_one_bias_only(cell, gates, layers):
    # layer 0: G H E + G H; layer 1: G H H + G H (no W_hh, no bias_hh)
    h, e = 23, 17
    expected = gates * h * e + gates * h + (layers - 1) * (gates * h * h + gates * h)
    assert recurrent_params(cell, h, layers, e) == expected
    model = RNNModel(cell, 50, h, layers, embedding_size=e)
    assert sum(p.numel() for p in model.rnn.parameters()) == expected
    assert sum(p.numel() for p in model.parameters()) == param_counts(cell, h, layers, 50, e)[
        "params"]


@pytest.mark.parametrize(("cell", "gates"), [("min_gru", 2), ("min_lstm", 3)])
def test_min_cells_flops_have_no_recurrent_product(cell, gates):
    # 3 x (decoder 2 H V + layer 0 2 E G H + layer 1 2 H G H)
    h, e, v = 20, 10, 100
    assert matmul_flops_per_token(cell, h, 2, v, e) == 3.0 * (
        2 * h * v + 2 * e * gates * h + 2 * h * gates * h)


@pytest.mark.parametrize("cell", ["min_gru", "min_lstm"])
@pytest.mark.parametrize("budget", [500_000, 1_000_000, 2_000_000, 4_000_000])
def test_min_cells_total_budgets_on_ptb_give_the_documented_sizes(cell, budget):
    # docs/extending.md lists these sizes
    expected = {"min_gru": {500_000: 24, 1_000_000: 49, 2_000_000: 99, 4_000_000: 196},
                "min_lstm": {500_000: 24, 1_000_000: 49, 2_000_000: 98, 4_000_000: 194}}
    hidden, achieved = solve_hidden(cell, budget, 1, vocab=PTB_VOCAB)
    assert hidden == expected[cell][budget]
    model = RNNModel(cell, PTB_VOCAB, hidden, 1)
    assert sum(p.numel() for p in model.parameters()) == achieved


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="positive"):
        solve_hidden("lstm", 0)


def test_budget_labels_are_short_and_file_safe():
    assert [format_budget(b) for b in (800, 250_000, 1_500_000, 2_000_000)] == [
        "800", "250k", "1.5M", "2M"]


def _quick(**spec):
    import yaml
    from helpers import ROOT
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    experiment = config["experiments"]["quick"]
    experiment.pop("hidden")
    experiment.update(spec)
    return config


def test_budgets_axis_solves_hidden_per_cell_and_depth_with_readable_ids():
    from helpers import ROOT

    from rnnbench.config.schema import check_config
    from rnnbench.experiment.grid import expand

    config = _quick(budgets=[5_000, 250_000], layers=[1, 2])
    check_config(config, ROOT / "config/schema/config.schema.yaml")
    runs, _ = expand(config)
    assert len(runs) == 4 * 2 * 2
    by_id = {r.run_id: r.config for r in runs}
    assert by_id["lstm-p250k-l1-s1"].hidden == 176 and by_id["lstm-p250k-l1-s1"].budget == 250_000
    assert by_id["rnn_tanh-p250k-l1-s1"].hidden == 353
    assert by_id["gru-p5k-l2-s1"].hidden == solve_hidden("gru", 5_000, 2)[0]
    for cfg in by_id.values():  # every run is the nearest hidden size to its budget
        assert solve_hidden(cfg.cell, cfg.budget, cfg.layers)[0] == cfg.hidden


def test_an_experiment_needs_exactly_one_size_axis():
    from rnnbench.config import ConfigError
    from rnnbench.experiment.grid import expand

    with pytest.raises(ConfigError, match="gives both `hidden` and `budgets`"):
        expand(_quick(hidden=[32], budgets=[5_000]))
    with pytest.raises(ConfigError, match="gives neither"):
        expand(_quick())


PTB_VOCAB = 10_000


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("embedding", [None, 200])
@pytest.mark.parametrize("budget", [2_100_000, 4_000_000, 6_000_007])
def test_total_budget_solver_hits_the_nearest_total_for_every_cell_and_depth(cell, layers,
                                                                             embedding, budget):
    hidden, achieved = solve_hidden(cell, budget, layers, embedding, vocab=PTB_VOCAB)
    assert achieved == param_counts(cell, hidden, layers, PTB_VOCAB, embedding)["params"]

    def total(h):
        return param_counts(cell, h, layers, PTB_VOCAB, embedding)["params"]

    assert total(hidden - 1) < achieved < total(hidden + 1)  # grows with H
    # the nearest: each neighbour is at least as far (a tie goes to the smaller size)
    assert abs(achieved - budget) <= abs(total(hidden + 1) - budget)
    assert abs(achieved - budget) < abs(total(hidden - 1) - budget)


def test_total_budget_of_4m_on_ptb_gives_hidden_185_to_196_for_every_cell():
    # 1 layer, E = H: 2VH + V (embedding, decoder) + G H (2H) + 2 G H (recurrent)
    sizes = {cell: solve_hidden(cell, 4_000_000, 1, vocab=PTB_VOCAB) for cell in GATES}
    assert sizes == {"rnn_tanh": (196, 4_007_224), "rnn_relu": (196, 4_007_224),
                     "gru": (189, 4_005_460), "lstm": (186, 4_008_256),
                     # minGRU: G H E + G H with G = 2 is 2H^2 + 2H, the vanilla RNN's count
                     "min_gru": (196, 4_007_224), "min_lstm": (194, 4_003_490)}
    # the same 4M with a recurrent budget would give a vanilla RNN ~1,400 hidden units
    assert solve_hidden("rnn_tanh", 4_000_000, 1)[0] > 1_000
    # a model built with the solved size holds exactly the solved count
    model = RNNModel("lstm", PTB_VOCAB, 186, 1)
    assert sum(p.numel() for p in model.parameters()) == 4_008_256


def test_total_budget_below_the_embedding_and_decoder_is_refused():
    with pytest.raises(ValueError, match="below the 30,0.. parameters .* hidden size 1"):
        solve_hidden("lstm", 20_000, 1, vocab=PTB_VOCAB)


def test_total_budgets_axis_writes_t_ids_and_solves_with_the_corpus_vocabulary(tmp_path):
    from rnnbench.experiment.grid import expand
    from rnnbench.model.params import corpus_vocab

    config = _quick(budgets=[4_000_000], layers=[1, 2], budget_kind="total")
    vocab = corpus_vocab(config["corpus"], tmp_path / "no-stats.json")
    assert vocab == PTB_VOCAB  # known PTB, before tokenization
    runs, _ = expand(config, vocab)
    by_id = {r.run_id: r.config for r in runs}
    assert by_id["lstm-t4M-l1-s1"].hidden == 186 and by_id["gru-t4M-l2-s1"].budget_kind == "total"
    for cfg in by_id.values():
        assert solve_hidden(cfg.cell, cfg.budget, cfg.layers, vocab=PTB_VOCAB)[0] == cfg.hidden
    # the recurrent kind, spelled out or not, is today's run: same ids, same configs
    plain = {r.run_id: r.config for r in expand(_quick(budgets=[250_000]))[0]}
    spelled = {r.run_id: r.config
               for r in expand(_quick(budgets=[250_000], budget_kind="recurrent"))[0]}
    assert plain == spelled and "lstm-p250k-l1-s1" in plain
    assert plain["lstm-p250k-l1-s1"].budget_kind is None


def test_vocabulary_comes_from_stats_of_this_max_vocab_or_a_known_corpus(tmp_path):
    import json

    from rnnbench.model.params import corpus_vocab

    ptb = _quick()["corpus"]
    assert corpus_vocab({**ptb, "max_vocab": 5_000}, tmp_path / "none.json") == 5_000
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"vocab_size": 777, "max_vocab": None}))
    other = {**ptb, "files": {**ptb["files"], "train": {"url": "x.txt"}}}
    assert corpus_vocab(other, stats) == 777
    assert corpus_vocab({**other, "max_vocab": 500}, stats) is None  # stats of another cap
    assert corpus_vocab(other, tmp_path / "none.json") is None


def test_total_budgets_without_a_known_vocabulary_stop_before_any_job():
    from rnnbench.config import ConfigError
    from rnnbench.experiment.grid import expand

    with pytest.raises(ConfigError, match="tokenize_corpus") as err:
        expand(_quick(budgets=[4_000_000], budget_kind="total"), vocab=None)
    assert "'quick'" in str(err.value)
    with pytest.raises(ConfigError, match="budget_kind total but no `budgets`"):
        expand(_quick(hidden=[32], budget_kind="total"), vocab=PTB_VOCAB)


def test_trainer_refuses_a_total_budget_solved_on_another_vocabulary(tiny_data, tmp_path):
    from rnnbench.config import RunConfig
    from rnnbench.training.train import Trainer

    vocab = len((tiny_data / "vocab.txt").read_text().splitlines())
    right = solve_hidden("gru", 20_000, 1, vocab=vocab)[0]
    wrong = solve_hidden("gru", 20_000, 1, vocab=vocab * 2)[0]
    assert right != wrong
    cfg = RunConfig("gru", wrong, budget=20_000, budget_kind="total", batch_size=4, bptt=10,
                    device="cpu")
    with pytest.raises(SystemExit, match=f"hidden size {right}"):
        Trainer(cfg, tiny_data, tmp_path / "c.pt", torch.device("cpu"))
    assert not (tmp_path / "c.pt").exists()
    Trainer(RunConfig(**{**cfg.to_dict(), "hidden": right}), tiny_data, tmp_path / "c.pt",
            torch.device("cpu"))  # the right size trains
