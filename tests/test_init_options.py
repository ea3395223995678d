"""Initialisation options: the LSTM forget-gate bias and the IRNN (both off by default)."""

from __future__ import annotations

import pytest
import torch

from rnnbench.config import RunConfig
from rnnbench.experiment.grid import run_args
from rnnbench.model.model import build_model
from rnnbench.training.checkpoint import _config_of
from rnnbench.training.train import build_parser


def _model(**keys):
    torch.manual_seed(7)
    return build_model(RunConfig(**keys), vocab_size=30)


@pytest.mark.parametrize("layers", [1, 2])
def test_forget_bias_is_the_effective_bias_and_nothing_else_moves(layers):
    plain = _model(cell="lstm", hidden=6, layers=layers)
    biased = _model(cell="lstm", hidden=6, layers=layers, forget_bias=1.0)
    for layer in range(layers):
        b_ih = getattr(biased.rnn, f"bias_ih_l{layer}")
        b_hh = getattr(biased.rnn, f"bias_hh_l{layer}")
        # gate order (i, f, g, o) in blocks of H = 6: the f block sums to exactly 1
        assert torch.equal(b_ih[6:12] + b_hh[6:12], torch.ones(6))
        assert torch.equal(b_hh[6:12], torch.zeros(6))
        for block in (slice(0, 6), slice(12, 24)):  # i, g, o keep PyTorch's init
            assert torch.equal(b_ih[block], getattr(plain.rnn, f"bias_ih_l{layer}")[block])
            assert torch.equal(b_hh[block], getattr(plain.rnn, f"bias_hh_l{layer}")[block])
    for name, value in plain.state_dict().items():
        if "bias" not in name:
            assert torch.equal(value, biased.state_dict()[name]), name


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_irnn_is_a_scaled_identity_with_zero_recurrent_biases(scale):
    plain = _model(cell="rnn_relu", hidden=5, layers=2)
    irnn = _model(cell="rnn_relu", hidden=5, layers=2, irnn=scale)
    for layer in range(2):
        assert torch.equal(getattr(irnn.rnn, f"weight_hh_l{layer}"), scale * torch.eye(5))
        assert torch.equal(getattr(irnn.rnn, f"bias_ih_l{layer}"), torch.zeros(5))
        assert torch.equal(getattr(irnn.rnn, f"bias_hh_l{layer}"), torch.zeros(5))
        assert torch.equal(getattr(irnn.rnn, f"weight_ih_l{layer}"),
                           getattr(plain.rnn, f"weight_ih_l{layer}"))
    assert torch.equal(irnn.encoder.weight, plain.encoder.weight)


def test_the_options_are_refused_for_cells_they_do_not_fit():
    with pytest.raises(ValueError, match="forget_bias is an LSTM option.*cell_overrides"):
        RunConfig(cell="gru", hidden=4, forget_bias=1.0)
    with pytest.raises(ValueError, match="irnn is an initialisation of rnn_relu"):
        RunConfig(cell="rnn_tanh", hidden=4, irnn=1.0)
    with pytest.raises(ValueError, match="finite"):
        RunConfig(cell="lstm", hidden=4, forget_bias=float("nan"))


def test_flags_round_trip_and_default_runs_keep_their_flags():
    cfg = RunConfig(cell="lstm", hidden=4, forget_bias=1.0)
    args = run_args(cfg).split() + ["--data-dir", "d", "--run-dir", "r", "--checkpoint", "c"]
    parsed = vars(build_parser().parse_args(args))
    assert parsed["forget_bias"] == 1.0 and parsed["irnn"] is None
    # an option left off adds no flag, so no existing run's Snakemake params change
    assert "forget" not in run_args(RunConfig(cell="lstm", hidden=4))
    assert "irnn" not in run_args(RunConfig(cell="rnn_relu", hidden=4))


def test_a_checkpoint_from_before_the_options_is_still_the_same_run():
    cfg = RunConfig(cell="lstm", hidden=4).to_dict()
    older = {k: v for k, v in cfg.items() if k not in ("forget_bias", "irnn")}
    assert _config_of({"config": older}) == cfg
    assert _config_of({"config": {**cfg, "from_the_future": 1}}) is None
