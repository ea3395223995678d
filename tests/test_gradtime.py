"""Tests for rnnbench.diagnostics.gradtime: exact unrolling and analytic gradient-through-time
cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from rnnbench.diagnostics.gradtime import (
    decay_rate,
    final_hidden,
    fit_decay,
    gradient_through_time,
    sample_windows,
    unroll,
    window_length,
)
from rnnbench.model.model import CELLS, RNNModel
from rnnbench.model.spectra import recurrent_spectra

VOCAB = 11


def make_model(cell: str, layers: int = 1, hidden: int = 6, seed: int = 0) -> RNNModel:
    """A small float64 model in eval mode."""
    torch.manual_seed(seed)
    return RNNModel(cell, VOCAB, hidden, layers).double().eval()


def random_windows(num: int, length: int, batch: int, seed: int = 1) -> torch.Tensor:
    """Random token windows (num, length, batch)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (num, length, batch), generator=gen)


def curve(
    records: list[dict], layer: int = 0, state: str = "h", key: str = "grad_norm"
) -> torch.Tensor:
    """One record field as a float64 tensor ordered by lag."""
    rows = sorted(
        (r["lag"], r[key]) for r in records if r["layer"] == layer and r["state"] == state
    )
    return torch.tensor([v for _, v in rows], dtype=torch.float64)


def orthogonal(n: int, seed: int) -> torch.Tensor:
    """A random n x n orthogonal matrix (float64)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q


# --- unroll -------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_unroll_matches_fused_rnn(cell: str, layers: int, dtype: torch.dtype, tol: float) -> None:
    """The step-by-step unroll reproduces nn.RNN/LSTM/GRU outputs and final states."""
    torch.manual_seed(0)
    model = RNNModel(cell, VOCAB, 7, layers, embedding_size=5, dropout=0.3).to(dtype).eval()
    tokens = torch.randint(0, VOCAB, (9, 3))  # (seq, batch)
    shape = (layers, 3, 7)
    hidden = (torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype))
    start = hidden if cell == "lstm" else hidden[0]
    with torch.no_grad():
        ref_out, ref_hidden = model.rnn(model.encoder(tokens), start)
        out, states = unroll(model, tokens, start)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=tol)
    got = final_hidden(states)
    if cell == "lstm":
        torch.testing.assert_close(got[0], ref_hidden[0], rtol=0, atol=tol)
        torch.testing.assert_close(got[1], ref_hidden[1], rtol=0, atol=tol)
    else:
        torch.testing.assert_close(got, ref_hidden, rtol=0, atol=tol)
    assert len(states) == layers and all(len(s["h"]) == 9 for s in states)


# --- agreement with an independent fused-model computation --------------------------------


def split_reference(
    model: RNNModel, window: torch.Tensor, max_lag: int, warmup: int, lag: int
) -> torch.Tensor:
    """Mean over columns of ||dl/dh_{K-lag}|| with the fused model, h cut out as a leaf."""
    batch = window.shape[1]
    inputs, target = window[: warmup + max_lag + 1], window[-1]
    s = warmup + max_lag - lag  # absolute position of the measured state
    with torch.no_grad():
        _, hidden = model(inputs[: s + 1], model.init_hidden(batch))
    if model.cell == "lstm":
        leaf = hidden[0].clone().requires_grad_()
        state = (leaf, hidden[1])
    else:
        leaf = hidden.clone().requires_grad_()
        state = leaf
    if s + 1 < inputs.shape[0]:
        logits = model(inputs[s + 1 :], state)[0][-1]
    else:
        logits = model.decoder(leaf[-1])
    loss = F.cross_entropy(logits, target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, leaf)
    return grad[-1].norm(dim=-1).mean()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("warmup", [None, 4])
def test_one_layer_matches_fused_split(cell: str, warmup: int | None) -> None:
    """Per-lag norms equal an independent fused-model computation with h cut out as a leaf."""
    model = make_model(cell)
    max_lag = 7
    window = random_windows(1, window_length(max_lag, warmup), 5)[0]
    records = gradient_through_time(model, window, max_lag, warmup=warmup)
    measured = curve(records)
    for lag in range(max_lag + 1):
        ref = split_reference(model, window, max_lag, warmup or 0, lag)
        assert measured[lag].item() == pytest.approx(ref.item(), rel=1e-9)


# --- analytic cases -----------------------------------------------------------------------


def set_rnn(model: RNNModel, w_hh: torch.Tensor, w_ih_scale: float, b_ih: float) -> None:
    """Set layer 0's weights: W_hh given, W_ih scaled random (0: zero), biases constant."""
    with torch.no_grad():
        rnn = model.rnn
        rnn.weight_hh_l0.copy_(w_hh)
        rnn.weight_ih_l0.mul_(w_ih_scale)
        rnn.bias_ih_l0.fill_(b_ih)
        rnn.bias_hh_l0.zero_()


@pytest.mark.parametrize("a", [0.9, 1.1])
@pytest.mark.parametrize("warmup", [None, 3])
def test_relu_scaled_identity_is_exactly_geometric(a: float, warmup: int | None) -> None:
    """W_hh = a I, positive pre-activations: the curve is exactly a^k, the rate log(a)."""
    # h_s = relu(1 + a h_{s-1}) with h >= 0: every pre-activation > 0, so dh_s/dh_{s-1} = a I.
    hidden, max_lag = 6, 100
    model = make_model("rnn_relu", hidden=hidden)
    set_rnn(model, a * torch.eye(hidden, dtype=torch.float64), 0.0, 1.0)
    with torch.no_grad():  # keep logits moderate although h grows like 1.1^100
        model.decoder.weight.mul_(1e-5)
    windows = random_windows(2, window_length(max_lag, warmup), 4)
    records = gradient_through_time(model, windows, max_lag, warmup=warmup)
    norms = curve(records)
    lags = torch.arange(max_lag + 1, dtype=torch.float64)
    torch.testing.assert_close(norms / norms[0], a**lags, rtol=1e-10, atol=0)
    logs = curve(records, key="log_grad_norm")
    torch.testing.assert_close(logs - logs[0], lags * math.log(a), rtol=0, atol=1e-10)
    assert fit_decay(records, 0) == pytest.approx(math.log(a), rel=1e-10)
    assert fit_decay(records, 0, min_lag=0) == pytest.approx(math.log(a), rel=1e-10)
    assert all(r["frac_floored"] == 0 for r in records)


def test_tanh_bounded_by_sigma_max_power() -> None:
    """A tanh RNN's gradient at lag k is at most sigma_max(W_hh)^k times lag 0."""
    # ||dh_s/dh_{s-1}|| <= ||diag(1 - h_s^2)|| sigma_max(W_hh) <= sigma_max(W_hh), per column.
    hidden, max_lag = 8, 60
    model = make_model("rnn_tanh", hidden=hidden)
    gen = torch.Generator().manual_seed(3)
    w_hh = 0.4 * torch.randn(hidden, hidden, generator=gen, dtype=torch.float64)
    set_rnn(model, w_hh, 1.0, 0.1)
    sigma = torch.linalg.matrix_norm(w_hh, ord=2).item()
    assert 0.5 < sigma < 2.5  # a non-trivial matrix, not a contraction everywhere
    records = gradient_through_time(model, random_windows(2, max_lag + 2, 5), max_lag)
    ratio = curve(records) / curve(records)[0]
    bound = sigma ** torch.arange(max_lag + 1, dtype=torch.float64)
    assert torch.all(ratio <= bound * (1 + 1e-9))


def test_tanh_near_linear_orthogonal_contraction_is_tight() -> None:
    """A near-linear tanh RNN with W_hh = s Q decays like s^k."""
    # W_hh = s Q (Q orthogonal) and tiny inputs: h ~ 1e-5, tanh' ~ 1, so the ratio is ~ s^k.
    hidden, max_lag, s = 8, 100, 0.8
    model = make_model("rnn_tanh", hidden=hidden)
    set_rnn(model, s * orthogonal(hidden, 5), 1e-4, 0.0)
    records = gradient_through_time(model, random_windows(2, max_lag + 2, 5), max_lag)
    ratio = curve(records) / curve(records)[0]
    bound = s ** torch.arange(max_lag + 1, dtype=torch.float64)
    assert torch.all(ratio <= bound * (1 + 1e-9))
    assert torch.all(ratio >= bound * (1 - 1e-6))
    assert fit_decay(records, 0) == pytest.approx(math.log(s), abs=1e-6)


def test_lstm_saturated_forget_gate_keeps_cell_gradient_alive() -> None:
    """Forget gate ~1, input gate ~0: the c gradient survives 50 steps; tanh RNN's does not."""
    hidden, max_lag = 8, 50
    lstm = make_model("lstm", hidden=hidden)
    with torch.no_grad():
        bias = lstm.rnn.bias_ih_l0.view(4, hidden)  # rows (i, f, g, o)
        bias[0].fill_(-20.0)  # input gate closed
        bias[1].fill_(20.0)  # forget gate open: f = 1 - 2e-9
    windows = random_windows(2, max_lag + 2, 5)
    records = gradient_through_time(lstm, windows, max_lag)
    c_ratio = curve(records, state="c")[-1] / curve(records, state="c")[0]
    assert c_ratio > 0.99
    assert abs(fit_decay(records, 0, "c")) < 1e-3

    tanh = make_model("rnn_tanh", hidden=hidden)
    set_rnn(tanh, 0.7 * orthogonal(hidden, 2), 1.0, 0.0)
    h_curve = curve(gradient_through_time(tanh, windows, max_lag))
    assert h_curve[-1] / h_curve[0] <= 0.7**max_lag * (1 + 1e-9)
    assert h_curve[-1] / h_curve[0] < 1e-7 * c_ratio


def test_multi_layer_records_and_finite_gradients() -> None:
    """A two-layer LSTM gives every (layer, state, lag) record, finite and non-zero at layer 0."""
    max_lag = 10
    model = make_model("lstm", layers=2)
    model.train()
    records = gradient_through_time(model, random_windows(3, max_lag + 5, 2), max_lag, warmup=3)
    assert model.training  # mode restored
    keys = {(r["layer"], r["state"], r["lag"]) for r in records}
    assert keys == {(i, s, k) for i in (0, 1) for s in ("h", "c") for k in range(max_lag + 1)}
    assert len(records) == len(keys)
    first = next(r for r in records if (r["layer"], r["state"], r["lag"]) == (0, "h", 0))
    assert math.isfinite(first["grad_norm"]) and first["grad_norm"] > 0
    assert all(math.isfinite(r["log_grad_norm"]) and r["num_columns"] == 6 for r in records)


def test_windows_as_iterable_equal_tensor_and_length_checked() -> None:
    """A list of windows equals the stacked tensor; wrong lengths and no windows raise."""
    model = make_model("gru", layers=2)
    windows = random_windows(3, 8, 2)
    from_tensor = gradient_through_time(model, windows, 6)
    from_list = gradient_through_time(model, list(windows), 6)
    assert from_tensor == from_list
    with pytest.raises(ValueError, match="length=9"):
        gradient_through_time(model, windows, 6, warmup=1)
    with pytest.raises(ValueError, match="no windows"):
        gradient_through_time(model, [], 6)


def test_zero_gradient_is_floored_not_crashing() -> None:
    """Exactly-zero gradients give grad_norm 0 and the documented log floor."""
    # W_hh = 0: the loss does not depend on any earlier state, so lags >= 1 have zero gradient.
    model = make_model("rnn_tanh")
    set_rnn(model, torch.zeros(6, 6, dtype=torch.float64), 1.0, 0.0)
    records = gradient_through_time(model, random_windows(1, 6, 3), 4)
    floor = math.log(torch.finfo(torch.float64).tiny)
    assert records[0]["frac_floored"] == 0 and records[0]["grad_norm"] > 0
    for r in records[1:]:
        assert r["grad_norm"] == 0 and r["frac_floored"] == 1
        assert r["log_grad_norm"] == pytest.approx(floor, rel=1e-12)


# --- spectra ------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.5, -1.7])
def test_spectra_scaled_orthogonal(a: float) -> None:
    """sigma_max of a Q (Q orthogonal) is |a| for each plain-RNN layer."""
    model = make_model("rnn_tanh", layers=2, hidden=5)
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(a * orthogonal(5, 0))
        model.rnn.weight_hh_l1.copy_(2 * a * orthogonal(5, 1))
    records = recurrent_spectra(model)
    assert [(r["layer"], r["gate"]) for r in records] == [(0, "all"), (1, "all")]
    assert records[0]["sigma_max"] == pytest.approx(abs(a), rel=1e-12)
    assert records[1]["sigma_max"] == pytest.approx(2 * abs(a), rel=1e-12)


@pytest.mark.parametrize("cell,gates", [("lstm", "ifgo"), ("gru", "rzn")])
def test_spectra_gate_blocks(cell: str, gates: str) -> None:
    """Gate blocks are the right row slices of W_hh, and 'all' is the whole matrix."""
    hidden = 5
    scales = [0.5, 1.0, 2.0, 3.0][: len(gates)]
    model = make_model(cell, hidden=hidden)
    blocks = [s * orthogonal(hidden, j) for j, s in enumerate(scales)]
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(torch.cat(blocks))
    records = recurrent_spectra(model.rnn)
    assert [r["gate"] for r in records] == ["all", *gates]
    # Stacked orthogonal blocks: W^T W = (sum of scale^2) I.
    expected = [math.sqrt(sum(s * s for s in scales)), *scales]
    for r, want in zip(records, expected, strict=True):
        assert r["layer"] == 0 and r["sigma_max"] == pytest.approx(want, rel=1e-12)


# --- fitting ------------------------------------------------------------------------------


def test_decay_rate_recovers_slope() -> None:
    """decay_rate is the exact least-squares slope."""
    lags = list(range(1, 21))
    assert decay_rate(lags, [3.0 - 0.25 * k for k in lags]) == pytest.approx(-0.25, abs=1e-14)
    # Residuals (+1, -1, -1, +1) per 4 lags sum to 0 and are orthogonal to the lag: same slope.
    noisy = [0.5 + 0.1 * k + (1.0 if k % 4 in (0, 3) else -1.0) for k in range(8)]
    assert decay_rate(range(8), noisy) == pytest.approx(0.1, abs=1e-14)
    with pytest.raises(ValueError):
        decay_rate([1], [0.0])
    with pytest.raises(ValueError):
        decay_rate([2, 2], [0.0, 1.0])


def test_fit_decay_skips_lag_zero_and_filters() -> None:
    """fit_decay uses lags >= 1 of the requested curve only."""
    records = [
        {"layer": layer, "state": "h", "lag": k, "log_grad_norm": (5.0 if k == 0 else -0.5 * k)}
        for layer in (0, 1)
        for k in range(8)
    ]
    records += [{"layer": 0, "state": "c", "lag": k, "log_grad_norm": 0.1 * k} for k in range(8)]
    assert fit_decay(records, 0) == pytest.approx(-0.5, abs=1e-14)
    assert fit_decay(records, 1, "h", max_lag=4) == pytest.approx(-0.5, abs=1e-14)
    assert fit_decay(records, 0, "c") == pytest.approx(0.1, abs=1e-14)
    assert fit_decay(records, 0, min_lag=0) != pytest.approx(-0.5)
    with pytest.raises(ValueError):
        fit_decay(records, 2)


# --- windows ------------------------------------------------------------------------------


def test_sample_windows_layout_and_determinism() -> None:
    """Windows are contiguous stream slices, evenly spaced or seeded-random."""
    stream = torch.arange(1000)
    even = sample_windows(stream, batch=4, length=12, num_windows=5)
    assert even.shape == (5, 12, 4)
    starts = even[:, 0, :]  # (5, 4)
    assert torch.equal(even, starts[:, None, :] + torch.arange(12)[None, :, None])
    flat = starts.flatten()
    assert flat[0] == 0 and flat[-1] == 1000 - 12 and torch.all(flat.diff() >= 12)

    rand1 = sample_windows(stream, 4, 12, 5, torch.Generator().manual_seed(7))
    rand2 = sample_windows(stream, 4, 12, 5, torch.Generator().manual_seed(7))
    assert torch.equal(rand1, rand2)
    assert torch.equal(rand1, rand1[:, :1, :] + torch.arange(12)[None, :, None])
    assert rand1.max() < 1000
    with pytest.raises(ValueError):
        sample_windows(torch.arange(10), 2, 11, 1)
