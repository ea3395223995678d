"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"), as plain cells.

Both gate on the input alone, so every coefficient of the recurrence ``h_t = a_t h_{t-1} + b_t``
is known before the recurrence runs::

    minGRU:  z = σ(k_z),            a = 1 - z,          b = z g(k_h)
    minLSTM: f = σ(k_f), i = σ(k_i), a = f / (f + i),   b = i / (f + i) g(k_h)

with ``k = W_ih x_t + b_ih`` (per layer one matrix of G gate blocks: minGRU ``(z, h̃)``,
minLSTM ``(f, i, h̃)``; no recurrent matrix) and ``g(x) = x + 0.5`` for ``x >= 0``, ``σ(x)``
otherwise. One layer therefore has no nonlinearity across time: ``h_t`` is a gated running
average of ``g(k_h)``; only a stack (layer ``l``'s input is layer ``l-1``'s output, as in
``nn.RNN``) composes nonlinear functions of the past.

One model definition for training and evaluation: the paper's log-space form with ``g`` (its
stable form). ``g > 0`` and ``0 < a < 1`` keep the state positive, so ``log h`` exists and the
parallel scan (Heinsen 2023) computes ``log h_t = a*_t + logcumsumexp_s(log b_s - a*_s)``,
``a*`` the cumulative sum of ``log a`` (from softplus: ``log σ(x) = -softplus(-x)``). The state
carried between segments and minibatches (truncated BPTT) enters as ``log h_0`` of that
positive state, i.e. as the term ``exp(a*_t) h_0``, added in linear space so that the zero
state needs no ``log 0`` (its term is exactly 0, with finite gradients). The same math step by
step (:func:`sequential`) is what the tests compare against, what
rnnbench.diagnostics.gradtime differentiates through, and what the CPU trains with (see
``FORMS`` and docs/performance.md). The recurrence runs in at least float32, also under bf16
autocast (only the input products are bf16).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Cell name -> gate blocks of weight_ih: minGRU (z, h̃), minLSTM (f, i, h̃).
GATES = {"min_gru": 2, "min_lstm": 3}
MODES = {"min_gru": "MIN_GRU", "min_lstm": "MIN_LSTM"}
# Which form the forward pass uses per device type: on CPU the step-by-step loop is faster at
# bptt 35 (docs/performance.md, "minGRU and minLSTM: scan or loop"), on CUDA the scan.
FORMS = {"cpu": "sequential", "cuda": "scan"}


def log_g(x: torch.Tensor) -> torch.Tensor:
    """``log g(x)``: ``log(x + 0.5)`` for ``x >= 0``, ``log σ(x)`` below."""
    # clamp: the unused branch must stay finite too, or its gradient is NaN
    return torch.where(x >= 0, torch.log(x.clamp(min=0) + 0.5), -F.softplus(-x))


def g(x: torch.Tensor) -> torch.Tensor:
    """``g(x)``: ``x + 0.5`` for ``x >= 0``, ``σ(x)`` below (positive, continuous at 0)."""
    return torch.where(x >= 0, x.clamp(min=0) + 0.5, torch.sigmoid(x))


def log_coefficients(mode: str, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log a, log b)`` of ``h_t = a_t h_{t-1} + b_t`` from pre-activations (..., G H)."""
    if mode == "MIN_GRU":
        k_z, k_h = pre.chunk(2, dim=-1)  # each (..., hidden)
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)  # log(1 - z), log z + log h̃
    k_f, k_i, k_h = pre.chunk(3, dim=-1)  # each (..., hidden)
    diff = F.softplus(-k_f) - F.softplus(-k_i)  # log i - log f
    # log f' = log f - log(f + i) = -softplus(log i - log f); log i' likewise
    return -F.softplus(diff), -F.softplus(-diff) + log_g(k_h)


def coefficients(mode: str, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` of ``h_t = a_t h_{t-1} + b_t`` in linear space (the same math)."""
    if mode == "MIN_GRU":
        k_z, k_h = pre.chunk(2, dim=-1)  # each (..., hidden)
        z = torch.sigmoid(k_z)
        return 1 - z, z * g(k_h)
    k_f, k_i, k_h = pre.chunk(3, dim=-1)  # each (..., hidden)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    return f / (f + i), i / (f + i) * g(k_h)


def scan(mode: str, pre: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """States (seq, batch, hidden) of one layer by the log-space parallel scan."""
    log_a, log_b = log_coefficients(mode, pre)  # each (seq, batch, hidden)
    a_star = log_a.cumsum(0)  # (seq, batch, hidden): log of prod_{s<=t} a_s
    from_inputs = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=0))
    # exp(a*_t + log h_0) = exp(a*_t) h_0: a zero state adds exactly 0, no log 0
    return from_inputs + torch.exp(a_star) * h0


def sequential(mode: str, pre: torch.Tensor, h0: torch.Tensor) -> list[torch.Tensor]:
    """States of one layer step by step, each (batch, hidden) its own graph node."""
    a, b = coefficients(mode, pre)  # each (seq, batch, hidden)
    h, states = h0, []
    for t in range(pre.shape[0]):
        h = a[t] * h + b[t]  # (batch, hidden)
        states.append(h)
    return states


class MinRNN(nn.Module):
    """A stack of minGRU or minLSTM layers with ``nn.RNN``'s signature and parameter names:
    ``(input (seq, batch, E), state (layers, batch, H)) -> (output (seq, batch, H), state)``."""

    # What rnnbench.diagnostics.gradtime checks of a recurrent module.
    bidirectional = False
    batch_first = False
    bias = True

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, form: str | None = None) -> None:
        super().__init__()
        if cell not in GATES:
            raise ValueError(f"unknown min cell {cell!r}: choose one of {', '.join(GATES)}")
        if form not in (None, "scan", "sequential"):
            raise ValueError(f"form must be None (by device), 'scan' or 'sequential', got {form!r}")
        self.mode = MODES[cell]
        self.gates = GATES[cell]
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout = float(dropout)
        self.form = form  # None: FORMS by the input's device
        for layer in range(num_layers):
            e_in = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}",
                                    nn.Parameter(torch.empty(self.gates * hidden_size, e_in)))
            self.register_parameter(f"bias_ih_l{layer}",
                                    nn.Parameter(torch.empty(self.gates * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch's recurrent modules."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_pre(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Gate pre-activations (seq, batch, G H) of ``layer``, in at least float32."""
        pre = F.linear(x, getattr(self, f"weight_ih_l{layer}"), getattr(self, f"bias_ih_l{layer}"))
        # bf16 under autocast: the recurrence itself runs in float32 (float64 stays float64)
        return pre.to(torch.promote_types(pre.dtype, torch.float32))

    def forward(self, x: torch.Tensor, hx: torch.Tensor,
                form: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-layer outputs (seq, batch, H) and the final state (layers, batch, H)."""
        form = form or self.form or FORMS.get(x.device.type, "scan")
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout and self.training:
                x = F.dropout(x, self.dropout, training=True)  # between layers, as nn.RNN
            pre = self.layer_pre(layer, x)  # (seq, batch, G H)
            h0 = hx[layer].to(pre.dtype)  # (batch, hidden)
            if form == "scan":
                x = scan(self.mode, pre, h0)  # (seq, batch, hidden)
            else:
                x = torch.stack(sequential(self.mode, pre, h0))
            finals.append(x[-1])
        return x, torch.stack(finals)

    def extra_repr(self) -> str:
        """As nn.RNN prints itself."""
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, dropout={self.dropout}")
