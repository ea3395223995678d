"""Gradient norms through time: how ``dl_t/dh_{t-k}`` shrinks or grows with the lag ``k``.

Pascanu, Mikolov & Bengio (2013) explain vanishing/exploding gradients by the product of
step Jacobians ``dh_s/dh_{s-1}``; this module measures that product's effect directly.

Conventions
-----------
Window: ``warmup + max_lag + 2`` consecutive tokens ``w`` per batch column (see
:func:`window_length`). The first ``warmup`` tokens are run through the model without
gradient from a zero state and only their final state is carried in (``warmup=None`` or 0:
the window starts from zeros). The next ``max_lag + 1`` tokens are the inputs, at positions
``s = 0 .. K`` (``K = max_lag``); the very last token is the target of the loss ``l_t`` at the
last input position ``t = K``. ``h_s`` is the state *after* consuming input ``s``, so lag
``k`` is ``h_{K-k}``: lag 0 is the state that feeds the decoder, lag ``K`` the state after
the first input token. The state before the first input (the warm-up state) is not measured.

Gradient: for each layer ``l``, state name (``h``; also ``c`` for the LSTM) and position ``s``,
the gradient of ``l_t`` with respect to the tensor ``h^l_s`` (resp. ``c^l_s``) as it occurs in
the step-by-step computation of :func:`unroll`, i.e. the usual backprop delta: everything
computed from it may vary, including the layers above at the same step (so layer 0 at lag 0
is non-zero in a stacked model) and, for the LSTM cell state, ``h_s = o * tanh(c_s)``.
In a one-layer RNN/GRU this equals the derivative with respect to the carried state.
The per-column losses are summed, so the gradient at column ``b`` is that of column ``b``'s
own loss (columns do not interact); its L2 norm over the hidden dimension is one sample.

Averages: over columns and windows, ``grad_norm`` is the mean norm and ``log_grad_norm``
the mean natural log of the norm. A norm below the smallest normal float of the model's
dtype (an exact zero, e.g. dead ReLU units or underflow) enters the log as that floor
(``log(finfo.tiny)``, about -87.3 in float32); ``frac_floored`` reports how often that happened
so such a lag can be dropped from a fit. Compute with ``model.double()`` to push underflow out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.nn import functional as F

from rnnbench.model import mincells
from rnnbench.model.model import Hidden, Recurrent, RNNModel

States = list[dict[str, list[torch.Tensor]]]


def window_length(max_lag: int, warmup: int | None = None) -> int:
    """Tokens per window column: ``warmup`` prefix, ``max_lag + 1`` inputs and one target."""
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    if warmup is not None and warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    return (warmup or 0) + max_lag + 2


def state_names(rnn: Recurrent) -> tuple[str, ...]:
    """Names of the per-layer recurrent states: ``("h", "c")`` for an LSTM, else ``("h",)``."""
    return ("h", "c") if rnn.mode == "LSTM" else ("h",)


def _check_rnn(rnn: Recurrent) -> None:
    """Reject the layouts :func:`unroll_rnn` does not re-implement."""
    if rnn.bidirectional or rnn.batch_first or getattr(rnn, "proj_size", 0):
        raise ValueError("unroll supports seq-first, unidirectional RNNs without projection")
    if rnn.mode not in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU", *mincells.MODES.values()):
        raise ValueError(f"unknown recurrent mode {rnn.mode!r}")


def _unroll_min(rnn: mincells.MinRNN, inputs: torch.Tensor,
                hidden: torch.Tensor) -> tuple[torch.Tensor, States]:
    """:func:`unroll_rnn` of minGRU/minLSTM: their own step-by-step recurrence, whose step
    Jacobian ``dh_t/dh_{t-1}`` is the diagonal ``a_t`` (``1 - z_t`` resp. ``f'_t``)."""
    x, states = inputs, []  # x: (seq, batch, features of this layer's input)
    for layer in range(rnn.num_layers):
        pre = rnn.layer_pre(layer, x)  # (seq, batch, gates * hidden)
        hs = mincells.sequential(rnn.mode, pre, hidden[layer].to(pre.dtype))
        states.append({"h": hs})
        x = torch.stack(hs)  # (seq, batch, hidden): input to the next layer
    return x, states


def unroll_rnn(
    rnn: Recurrent, inputs: torch.Tensor, hidden: Hidden
) -> tuple[torch.Tensor, States]:
    """Run ``rnn`` step by step in plain tensor ops; every state is a separate graph node.

    ``inputs`` is (seq, batch, input) and ``hidden`` (layers, batch, hidden), or a pair
    ``(h, c)`` for an LSTM. Returns the top-layer outputs (seq, batch, hidden), equal to
    ``rnn(inputs, hidden)[0]`` in eval mode (inter-layer dropout is never applied), and
    ``states[layer][name][s]`` (batch, hidden): state ``name`` of ``layer`` after step ``s``.
    minGRU and minLSTM run their own step-by-step form (rnnbench.model.mincells.sequential).
    """
    _check_rnn(rnn)
    if inputs.dim() != 3 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be (seq >= 1, batch, features), got {tuple(inputs.shape)}")
    if isinstance(rnn, mincells.MinRNN):
        return _unroll_min(rnn, inputs, hidden)
    lstm = rnn.mode == "LSTM"
    if lstm:
        h0, c0 = hidden  # each (layers, batch, hidden)
    else:
        h0, c0 = hidden, None  # (layers, batch, hidden)
    x = inputs  # (seq, batch, features of this layer's input)
    states: States = []
    for layer in range(rnn.num_layers):
        w_ih = getattr(rnn, f"weight_ih_l{layer}")  # (gates * hidden, features)
        w_hh = getattr(rnn, f"weight_hh_l{layer}")  # (gates * hidden, hidden)
        b_ih = getattr(rnn, f"bias_ih_l{layer}") if rnn.bias else None  # (gates * hidden,)
        b_hh = getattr(rnn, f"bias_hh_l{layer}") if rnn.bias else None  # (gates * hidden,)
        gi = F.linear(x, w_ih, b_ih)  # (seq, batch, gates * hidden): input part, all steps
        h = h0[layer]  # (batch, hidden)
        c = c0[layer] if c0 is not None else None  # (batch, hidden)
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        for s in range(x.shape[0]):
            gh = F.linear(h, w_hh, b_hh)  # (batch, gates * hidden): recurrent part
            if rnn.mode == "RNN_TANH":
                h = torch.tanh(gi[s] + gh)
            elif rnn.mode == "RNN_RELU":
                h = torch.relu(gi[s] + gh)
            elif lstm:
                # Gate pre-activations, each (batch, hidden), order (i, f, g, o).
                i, f, g, o = (gi[s] + gh).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                cs.append(c)
            else:
                # GRU, order (r, z, n); b_hn stays inside the reset gate's product.
                i_r, i_z, i_n = gi[s].chunk(3, dim=-1)  # each (batch, hidden)
                h_r, h_z, h_n = gh.chunk(3, dim=-1)  # each (batch, hidden)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - z) * n + z * h
            hs.append(h)
        states.append({"h": hs, "c": cs} if lstm else {"h": hs})
        x = torch.stack(hs)  # (seq, batch, hidden): input to the next layer
    return x, states


def unroll(model: RNNModel, tokens: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, States]:
    """Embed ``tokens`` (seq, batch) and :func:`unroll_rnn` the model's recurrent layer."""
    emb = model.encoder(tokens)  # (seq, batch, embedding)
    return unroll_rnn(model.rnn, emb, hidden)


def final_hidden(states: States) -> Hidden:
    """The last step's states stacked as (layers, batch, hidden), a pair for an LSTM."""
    h = torch.stack([layer["h"][-1] for layer in states])  # (layers, batch, hidden)
    if "c" in states[0]:
        return (h, torch.stack([layer["c"][-1] for layer in states]))
    return h


def _iter_windows(windows: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yield (length, batch) windows from a (num_windows, length, batch) tensor or an iterable."""
    if isinstance(windows, torch.Tensor):
        if windows.dim() == 2:
            yield windows
            return
        if windows.dim() != 3:
            raise ValueError(f"windows must be (num, length, batch), got {tuple(windows.shape)}")
    yield from windows


def _window_norms(model: RNNModel, window: torch.Tensor, max_lag: int, warmup: int) -> torch.Tensor:
    """Per-column gradient norms (layers, state names, max_lag + 1 lags, batch), float64."""
    batch = window.shape[1]
    hidden = model.init_hidden(batch)
    if warmup:
        with torch.no_grad():
            _, hidden = model.features(window[:warmup], hidden)
    # A fresh leaf start state keeps every step in the graph even if parameters are frozen.
    if isinstance(hidden, tuple):
        hidden = tuple(t.detach().requires_grad_() for t in hidden)  # type: ignore[assignment]
    else:
        hidden = hidden.detach().requires_grad_()
    inputs = window[warmup : warmup + max_lag + 1]  # (K + 1, batch)
    target = window[warmup + max_lag + 1]  # (batch,): the token after the last input
    names = state_names(model.rnn)
    with torch.enable_grad():
        outputs, states = unroll(model, inputs, hidden)  # outputs (K + 1, batch, hidden)
        logits = model.decoder(outputs[-1])  # (batch, vocab)
        loss = F.cross_entropy(logits, target, reduction="sum")  # sum of per-column losses
        # Position s = K - k for lag k, so lag-ordered lists are the step lists reversed.
        nodes = [t for layer in states for name in names for t in reversed(layer[name])]
        wanted = [t for t in nodes if t.requires_grad]
        grads = iter(torch.autograd.grad(loss, wanted, allow_unused=True))
    norms = []
    for node in nodes:
        grad = next(grads) if node.requires_grad else None  # (batch, hidden) or None
        if grad is None:
            norms.append(torch.zeros(batch, dtype=torch.float64, device=node.device))
        else:
            norms.append(torch.linalg.vector_norm(grad.double(), dim=-1))  # (batch,)
    # (layers * names * lags, batch) -> (layers, names, lags, batch)
    return torch.stack(norms).reshape(len(states), len(names), max_lag + 1, batch)


def gradient_through_time(
    model: RNNModel,
    windows: torch.Tensor | Iterable[torch.Tensor],
    max_lag: int,
    warmup: int | None = None,
) -> list[dict]:
    """Mean ``||dl_t/dh_{t-k}||`` per layer, state and lag ``k = 0..max_lag`` (tidy records).

    ``windows``: token ids (num_windows, length, batch), one (length, batch) tensor, or an
    iterable of (length, batch) windows, with ``length == window_length(max_lag, warmup)``
    (see the module docstring for the warm-up/input/target layout). Records, ordered by
    layer, state, lag, hold ``layer``, ``state`` ("h" or "c"), ``lag``, ``grad_norm`` (mean
    norm), ``log_grad_norm`` (mean log norm), ``frac_floored`` (share of norms clamped at the
    log floor) and ``num_columns``. The model runs in eval mode; its mode is restored after.
    """
    warm = warmup or 0
    length = window_length(max_lag, warmup)
    names = state_names(model.rnn)
    device = model.decoder.weight.device
    tiny = torch.finfo(model.decoder.weight.dtype).tiny
    shape = (model.rnn.num_layers, len(names), max_lag + 1)  # (layers, names, lags)
    sums = torch.zeros(shape, dtype=torch.float64, device=device)
    log_sums = torch.zeros(shape, dtype=torch.float64, device=device)
    floored = torch.zeros(shape, dtype=torch.float64, device=device)
    columns = 0
    was_training = model.training
    model.eval()
    try:
        for window in _iter_windows(windows):
            if window.dim() != 2 or window.shape[0] != length:
                raise ValueError(
                    f"each window must be (length={length}, batch) for max_lag={max_lag}, "
                    f"warmup={warm}; got {tuple(window.shape)}"
                )
            norms = _window_norms(model, window.to(device), max_lag, warm)  # (L, S, K+1, B)
            sums += norms.sum(-1)
            log_sums += norms.clamp(min=tiny).log().sum(-1)
            floored += (norms < tiny).sum(-1)
            columns += window.shape[1]
    finally:
        model.train(was_training)
    if columns == 0:
        raise ValueError("no windows given")
    mean, log_mean, frac = (t.div(columns).tolist() for t in (sums, log_sums, floored))
    records = []
    for layer in range(shape[0]):
        for j, name in enumerate(names):
            for lag in range(max_lag + 1):
                records.append(
                    {
                        "layer": layer,
                        "state": name,
                        "lag": lag,
                        "grad_norm": mean[layer][j][lag],
                        "log_grad_norm": log_mean[layer][j][lag],
                        "frac_floored": frac[layer][j][lag],
                        "num_columns": columns,
                    }
                )
    return records


def decay_rate(lags: Sequence[float], log_norms: Sequence[float]) -> float:
    """Least-squares slope of ``log_norms`` against ``lags``: log growth per step (<0: decay)."""
    xs = [float(x) for x in lags]
    ys = [float(y) for y in log_norms]
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} lags but {len(ys)} log norms")
    if len(xs) < 2:
        raise ValueError("need at least two points to fit a slope")
    if not all(math.isfinite(v) for v in xs + ys):
        raise ValueError("lags and log norms must be finite")
    x_mean = math.fsum(xs) / len(xs)
    y_mean = math.fsum(ys) / len(ys)
    sxx = math.fsum((x - x_mean) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("need at least two distinct lags to fit a slope")
    sxy = math.fsum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx


def fit_decay(
    records: Iterable[dict],
    layer: int,
    state: str = "h",
    min_lag: int = 1,
    max_lag: int | None = None,
) -> float:
    """:func:`decay_rate` of ``log_grad_norm`` over lags ``min_lag..max_lag`` of one curve.

    Lag 0 is skipped by default: at the top layer it is the decoder's gradient itself, one
    step Jacobian short of the rest, so it need not lie on the exponential. ``exp(rate)`` is
    the mean per-step factor; ``rate < 0`` means vanishing, ``> 0`` exploding gradients.
    """
    points = sorted(
        (r["lag"], r["log_grad_norm"])
        for r in records
        if r["layer"] == layer
        and r["state"] == state
        and r["lag"] >= min_lag
        and (max_lag is None or r["lag"] <= max_lag)
    )
    if not points:
        raise ValueError(f"no records for layer {layer}, state {state!r} in the lag range")
    lags, log_norms = zip(*points, strict=True)
    return decay_rate(lags, log_norms)


def sample_windows(
    stream: torch.Tensor,
    batch: int,
    length: int,
    num_windows: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Windows (num_windows, length, batch) of consecutive tokens from a 1-D ``stream``.

    Column ``b`` of window ``n`` is ``stream[start : start + length]``. The
    ``num_windows * batch`` starts are evenly spaced over ``[0, T - length]`` (in window-major
    order, so they do not overlap when the stream is long enough) without a ``generator``,
    and uniform random (with replacement) from it with one: deterministic given its seed.
    """
    if stream.dim() != 1:
        raise ValueError(f"stream must be 1-D, got {tuple(stream.shape)}")
    if min(batch, length, num_windows) < 1:
        raise ValueError("batch, length and num_windows must be >= 1")
    last = stream.shape[0] - length  # largest valid start
    if last < 0:
        raise ValueError(f"stream of {stream.shape[0]} tokens is shorter than length {length}")
    count = num_windows * batch
    if generator is None:
        starts = torch.linspace(0, last, count, dtype=torch.float64).floor().long()  # (N*B,)
    else:
        starts = torch.randint(0, last + 1, (count,), generator=generator)  # (N*B,)
    starts = starts.to(stream.device).view(num_windows, batch)  # (N, B)
    offsets = torch.arange(length, device=stream.device)  # (length,)
    index = starts[:, None, :] + offsets[None, :, None]  # (N, length, B)
    return stream[index]  # (N, length, B)
