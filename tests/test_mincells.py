"""minGRU and minLSTM: the log-space scan against the step-by-step recurrence, carried state,
zero state, the model around them, bf16, resume, and the gradient through time."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers import tiny_run_config, train_to_end

from rnnbench.config import RunConfig
from rnnbench.diagnostics.gradtime import unroll
from rnnbench.model import mincells
from rnnbench.model.losses import evaluate
from rnnbench.model.mincells import MinRNN
from rnnbench.model.model import RNNModel, build_model, parameter_groups
from rnnbench.model.params import param_counts, solve_hidden
from rnnbench.model.precision import autocast
from rnnbench.model.spectra import recurrent_spectra

MIN_CELLS = ("min_gru", "min_lstm")


def _run(rnn: MinRNN, x: torch.Tensor, h0: torch.Tensor, form: str) -> dict[str, torch.Tensor]:
    """Outputs, final state and the gradients of a fixed random loss of both, by ``form``."""
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_()
    out, h = rnn(x, h0, form=form)
    torch.manual_seed(99)  # the same loss weights for both forms
    loss = (out * torch.randn_like(out)).sum() + (h * torch.randn_like(h)).sum()
    params = list(rnn.parameters())
    grads = torch.autograd.grad(loss, [x, h0, *params])
    return {"out": out, "h": h, "dx": grads[0], "dh0": grads[1],
            **{f"d{i}": g for i, g in enumerate(grads[2:])}}


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("length", [1, 2, 35, 36])
@pytest.mark.parametrize("state", ["zero", "carried"])
@pytest.mark.parametrize("layers", [1, 2])
def test_scan_equals_the_step_by_step_recurrence_in_values_and_gradients(cell, length, state,
                                                                         layers):
    torch.manual_seed(0)
    rnn = MinRNN(cell, 7, 5, layers)
    x = torch.randn(length, 3, 7)  # (seq, batch, input)
    # a carried state is positive (g > 0, 0 < a < 1), as every state the cells produce
    h0 = torch.zeros(layers, 3, 5) if state == "zero" else torch.rand(layers, 3, 5) + 0.1
    scan, loop = _run(rnn, x, h0, "scan"), _run(rnn, x, h0, "sequential")
    for key in ("out", "h", "dx", "dh0"):
        torch.testing.assert_close(scan[key], loop[key], rtol=1e-5, atol=1e-5, msg=key)
    for key in scan.keys() - {"out", "h", "dx", "dh0"}:
        # A weight's gradient sums seq x batch terms, each carrying the scan's float32 error:
        # exp(a* + logcumsumexp(log b - a*)) rounds terms of size |a*| (~25 at 36 steps), so
        # h is good to ~|a*| eps ~ 2e-6 and these sums to ~2e-5 of their norm (the float64
        # check below shows the math is the same).
        error = torch.linalg.vector_norm(scan[key] - loop[key])
        assert error <= 1e-4 * torch.linalg.vector_norm(loop[key]), key
    # in float64 the two forms agree to rounding everywhere: the same math
    scan, loop = (_run(rnn.double(), x.double(), h0.double(), form)
                  for form in ("scan", "sequential"))
    for key in scan:
        torch.testing.assert_close(scan[key], loop[key], rtol=1e-10, atol=1e-10, msg=key)


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("form", ["scan", "sequential"])
def test_two_segments_with_the_state_carried_equal_one_segment(cell, form):
    torch.manual_seed(1)
    rnn = MinRNN(cell, 6, 4, 2)
    x = torch.randn(20, 2, 6)
    h0 = torch.zeros(2, 2, 4)
    whole, h_whole = rnn(x, h0, form=form)
    first, h_mid = rnn(x[:13], h0, form=form)
    second, h_end = rnn(x[13:], h_mid, form=form)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_end, h_whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_zero_state_gives_finite_gradients_and_a_positive_state(cell):
    torch.manual_seed(2)
    rnn = MinRNN(cell, 4, 3, 2)
    x = torch.randn(35, 2, 4) * 10  # large pre-activations: saturated gates
    got = _run(rnn, x, torch.zeros(2, 2, 3), "scan")
    for key, value in got.items():
        assert torch.isfinite(value).all(), key
    assert (got["h"] > 0).all()
    # dh_t/dh_0 = prod a_s != 0: the zero state's gradient is not cut off
    assert got["dh0"].abs().sum() > 0


def test_min_gru_of_one_step_is_the_papers_formula():
    rnn = MinRNN("min_gru", 2, 2, 1)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.eye(4, 2).roll(0))  # k_z = x, k_h = 0
        rnn.bias_ih_l0.copy_(torch.tensor([0.0, 0.0, 1.0, -1.0]))
    x = torch.tensor([[[0.3, -2.0]]])  # (1, 1, 2)
    h0 = torch.tensor([[[0.5, 2.0]]])
    z = torch.sigmoid(x[0, 0])
    h_tilde = torch.tensor([1.0 + 0.5, torch.sigmoid(torch.tensor(-1.0))])  # g(1), g(-1)
    expected = (1 - z) * h0[0, 0] + z * h_tilde
    for form in ("scan", "sequential"):
        torch.testing.assert_close(rnn(x, h0, form=form)[1][0, 0], expected)


def test_min_lstm_normalises_its_gates():
    pre = torch.randn(5, 2, 9)  # (seq, batch, 3 H)
    a, b = mincells.coefficients("MIN_LSTM", pre)
    k_f, k_i, k_h = pre.chunk(3, dim=-1)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    torch.testing.assert_close(a, f / (f + i))
    torch.testing.assert_close(b, i / (f + i) * mincells.g(k_h))
    log_a, log_b = mincells.log_coefficients("MIN_LSTM", pre)
    torch.testing.assert_close(log_a.exp(), a)
    torch.testing.assert_close(log_b.exp(), b)


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_model_shapes_state_and_parameter_layout(cell, layers):
    model = RNNModel(cell, 30, 8, layers, embedding_size=6, dropout=0.3)
    hidden = model.init_hidden(4)
    assert isinstance(hidden, torch.Tensor) and hidden.shape == (layers, 4, 8)
    logits, h = model(torch.randint(0, 30, (11, 4)), hidden)
    assert logits.shape == (11, 4, 30) and h.shape == (layers, 4, 8)
    gates = mincells.GATES[cell]
    shapes = {n: tuple(p.shape) for n, p in model.rnn.named_parameters()}
    expected = {"weight_ih_l0": (gates * 8, 6), "bias_ih_l0": (gates * 8,)}
    if layers == 2:
        expected |= {"weight_ih_l1": (gates * 8, 8), "bias_ih_l1": (gates * 8,)}
    assert shapes == expected
    assert (model.rnn.num_layers, model.rnn.hidden_size) == (layers, 8)
    assert model.rnn.dropout == (0.3 if layers > 1 else 0.0)
    names = [g for g, _ in parameter_groups(model)]
    assert names == ["embedding", *[f"l{i}.{k}" for i in range(layers) for k in ("ih", "bias")],
                     "decoder"]
    assert recurrent_spectra(model) == []


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_build_model_counts_and_inits(cell):
    torch.manual_seed(0)
    model = build_model(RunConfig(cell=cell, hidden=10, layers=2), 50)
    assert sum(p.numel() for p in model.parameters()) == param_counts(cell, 10, 2, 50)["params"]
    # seed init: the cell keeps PyTorch's default, uniform(-1/sqrt(H), 1/sqrt(H))
    bound = 10 ** -0.5
    assert all(p.abs().max() <= bound for p in model.rnn.parameters())
    assert max(p.abs().max() for p in model.rnn.parameters()) > 0.1
    uniform = build_model(RunConfig(cell=cell, hidden=10, layers=2, init="uniform",
                                    init_scale=0.05), 50)
    assert all(p.abs().max() <= 0.05 for p in uniform.parameters())
    hidden, _ = solve_hidden(cell, 3_000, 2, vocab=None)
    assert hidden > 1


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_dropout_between_layers_only_in_training(cell):
    torch.manual_seed(3)
    model = RNNModel(cell, 20, 8, 2, dropout=0.5)
    tokens = torch.randint(0, 20, (6, 3))
    model.eval()
    a = model(tokens, model.init_hidden(3))[0]
    b = model(tokens, model.init_hidden(3))[0]
    assert torch.equal(a, b)
    model.train()
    c = model(tokens, model.init_hidden(3))[0]
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("form", ["scan", "sequential"])
def test_bf16_step_returns_an_fp32_state_and_a_loss_near_fp32(cell, form):
    torch.manual_seed(4)
    model = RNNModel(cell, 50, 16, 2)
    model.rnn.form = form  # on the CPU the model would use the loop alone
    tokens = torch.randint(0, 50, (12, 4))
    targets = torch.randint(0, 50, (12, 4))
    with autocast("cpu", "bf16"):
        pre = model.rnn.layer_pre(0, model.encoder(tokens))
        logits, h = model(tokens, model.init_hidden(4))
    assert pre.dtype == torch.float32  # the scan's inputs, cast up from bf16 products
    assert h.dtype == torch.float32
    low = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    logits32, _ = model(tokens, model.init_hidden(4))
    full = torch.nn.functional.cross_entropy(logits32.flatten(0, 1), targets.flatten())
    assert abs(low.item() - full.item()) < 0.03 * full.item()
    low.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_bf16_evaluation_is_within_a_percent_of_fp32(cell):
    torch.manual_seed(5)
    model = RNNModel(cell, 40, 16, 1)
    data = torch.randint(0, 40, (200, 2))
    full, _ = evaluate(model, data, 20)
    low, _ = evaluate(model, data, 20, precision="bf16")
    assert abs(low - full) < 0.01 * full


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_resume_after_preemption_equals_uninterrupted_run_bitwise(cell, tiny_data, tmp_path):
    cfg = tiny_run_config(cell=cell)
    whole = train_to_end(cfg, tiny_data, tmp_path / "a.pt")
    pieces = train_to_end(cfg, tiny_data, tmp_path / "b.pt", stops=(5, 30))
    drop = ["seconds", "tokens_per_s"]
    a = pd.DataFrame(whole.state.history).drop(columns=drop)
    b = pd.DataFrame(pieces.state.history).drop(columns=drop)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for k, v in whole.state.best_state.items():
        assert torch.equal(v, pieces.state.best_state[k]), k
    for x, y in zip(whole.state.steps, pieces.state.steps, strict=True):
        assert torch.equal(x, y)
    assert whole.state.spectra == []


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_unroll_equals_the_models_forward(cell, layers):
    torch.manual_seed(6)
    model = RNNModel(cell, 30, 8, layers).eval()
    tokens = torch.randint(0, 30, (9, 3))
    h0 = torch.rand(layers, 3, 8)
    out, states = unroll(model, tokens, h0)
    for form in ("scan", "sequential"):
        want, h = model.rnn(model.encoder(tokens), h0, form=form)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.stack([s["h"][-1] for s in states]), h,
                                   rtol=1e-5, atol=1e-6)
    assert [list(s) for s in states] == [["h"]] * layers


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_gradient_through_time_is_the_product_of_the_forget_coefficients(cell):
    # one layer: dh_t/dh_{t-k} is diagonal, prod_{s=t-k+1..t} a_s (1 - z_s resp. f'_s)
    torch.manual_seed(7)
    model = RNNModel(cell, 30, 6, 1).double().eval()
    tokens = torch.randint(0, 30, (12, 2))
    _, states = unroll(model, tokens, torch.rand(1, 2, 6, dtype=torch.float64))
    hs = states[0]["h"]
    t, k, b, j = 11, 7, 1, 4
    (grad,) = torch.autograd.grad(hs[t][b, j], hs[t - k])  # (batch, hidden)
    pre = model.rnn.layer_pre(0, model.encoder(tokens))
    a, _ = mincells.coefficients(model.rnn.mode, pre)  # (seq, batch, hidden)
    expected = torch.zeros_like(grad)
    expected[b, j] = a[t - k + 1 : t + 1, b, j].prod()
    torch.testing.assert_close(grad, expected)
