"""Model: shapes for every cell, initialisation schemes, parameter groups."""

import pytest
import torch

from rnnbench.model.model import CELLS, RNNModel, count_parameters, parameter_groups


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_output_and_hidden_shapes(cell, layers):
    model = RNNModel(cell, vocab_size=50, hidden_size=8, num_layers=layers, embedding_size=6)
    hidden = model.init_hidden(3)
    logits, hidden = model(torch.zeros(5, 3, dtype=torch.long), hidden)
    assert logits.shape == (5, 3, 50)
    states = hidden if cell == "lstm" else (hidden,)
    assert all(h.shape == (layers, 3, 8) for h in states)
    assert (cell == "lstm") == isinstance(hidden, tuple)


def test_invalid_cell_lists_the_valid_ones():
    with pytest.raises(ValueError, match="rnn_tanh, rnn_relu, lstm, gru"):
        RNNModel("transformer", 10, 4)


def test_seed_init_sets_embedding_and_decoder_only():
    torch.manual_seed(0)
    model = RNNModel("rnn_tanh", 1000, 64, init="seed", init_scale=0.1)
    assert model.encoder.weight.abs().max() <= 0.1
    assert model.decoder.weight.abs().max() <= 0.1 and model.decoder.bias.abs().max() == 0
    # PyTorch's default for the RNN: uniform(-1/sqrt(H), 1/sqrt(H)) = 0.125 here
    assert model.rnn.weight_hh_l0.abs().max() > 0.1


def test_uniform_init_sets_every_parameter():
    model = RNNModel("lstm", 100, 64, 2, init="uniform", init_scale=0.05)
    assert all(p.abs().max() <= 0.05 for p in model.parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_groups_partition_the_parameters(cell):
    model = RNNModel(cell, 30, 5, num_layers=2)
    names = [n for _, group in parameter_groups(model) for n in group]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_build_model_follows_the_run_config():
    from rnnbench.config import RunConfig
    from rnnbench.model.model import build_model

    cfg = RunConfig("gru", 12, layers=2, embedding_size=5, dropout=0.3, init="uniform",
                    init_scale=0.05)
    model = build_model(cfg, 77)
    assert (model.cell, model.hidden_size, model.num_layers, model.embedding_size) == \
        ("gru", 12, 2, 5)
    assert model.encoder.num_embeddings == 77 and model.rnn.dropout == 0.3
    assert all(p.abs().max() <= 0.05 for p in model.parameters())
