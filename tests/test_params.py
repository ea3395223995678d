"""Parameter accounting and the hidden-size solver of the iso-parameter axis."""

from __future__ import annotations

import pytest

from rnnbench.model import RNNModel
from rnnbench.params import (
    GATES,
    format_budget,
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


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="positive"):
        solve_hidden("lstm", 0)


def test_budget_labels_are_short_and_file_safe():
    assert [format_budget(b) for b in (800, 250_000, 1_500_000, 2_000_000)] == [
        "800", "250k", "1.5M", "2M"]


def _quick(**spec):
    import yaml
    from test_pipeline import ROOT
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    experiment = config["experiments"]["quick"]
    experiment.pop("hidden")
    experiment.update(spec)
    return config


def test_budgets_axis_solves_hidden_per_cell_and_depth_with_readable_ids():
    from test_pipeline import ROOT

    from rnnbench.grid import expand
    from rnnbench.schema import check_config

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
    from rnnbench.grid import expand
    from rnnbench.schema import ConfigError

    with pytest.raises(ConfigError, match="gives both `hidden` and `budgets`"):
        expand(_quick(hidden=[32], budgets=[5_000]))
    with pytest.raises(ConfigError, match="gives neither"):
        expand(_quick())
