"""The language model: ``Embedding(V, E) -> cell -> Linear(H, V)``.

The cell is one of PyTorch's fused recurrent modules, chosen by name as in
pytorch/examples' word_language_model (``RNN_TANH``/``RNN_RELU``/``LSTM``/``GRU``),
spelled in lower case here, or minGRU/minLSTM (``min_gru``/``min_lstm``,
:mod:`rnnbench.model.mincells`), which have the same signature and no recurrent matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from rnnbench.model.mincells import GATES as MIN_GATES
from rnnbench.model.mincells import MinRNN
from rnnbench.model.precision import autocast_dtype

if TYPE_CHECKING:
    from rnnbench.config import RunConfig

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "min_gru", "min_lstm")
INITS = ("seed", "uniform")

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
Recurrent = nn.RNNBase | MinRNN


class RNNModel(nn.Module):
    """Embedding -> multi-layer RNN/LSTM/GRU/minGRU/minLSTM -> Linear decoder over the vocab."""

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        embedding_size: int | None = None,
        dropout: float = 0.0,
        init: str = "seed",
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        check_cell(cell)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: choose one of {', '.join(INITS)}")
        self.cell = cell
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding_size = embedding_size or hidden_size
        self.encoder = nn.Embedding(vocab_size, self.embedding_size)
        # Dropout between layers only (PyTorch's `dropout=`); none on the embedding
        # or the decoder input, so dropout=0 is exactly the un-regularised model.
        rnn_dropout = dropout if num_layers > 1 else 0.0
        if cell in MIN_GATES:
            self.rnn: Recurrent = MinRNN(cell, self.embedding_size, hidden_size, num_layers,
                                         dropout=rnn_dropout)
        elif cell.startswith("rnn_"):
            self.rnn = nn.RNN(
                self.embedding_size, hidden_size, num_layers,
                nonlinearity=cell[4:], dropout=rnn_dropout,
            )
        else:
            module = nn.LSTM if cell == "lstm" else nn.GRU
            self.rnn = module(self.embedding_size, hidden_size, num_layers, dropout=rnn_dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self.reset_parameters(init, init_scale)

    def reset_parameters(self, init: str, scale: float) -> None:
        """Apply a recipe's initialisation.

        ``seed``: embedding and decoder weights uniform(-scale, scale), decoder bias 0, the
        recurrent layer keeps PyTorch's default (the course lab; minGRU/minLSTM copy it:
        uniform(-1/sqrt(H), 1/sqrt(H))). ``uniform``: every parameter
        uniform(-scale, scale) (Zaremba et al. 2014).
        """
        if init == "uniform":
            for p in self.parameters():
                nn.init.uniform_(p, -scale, scale)
            return
        nn.init.uniform_(self.encoder.weight, -scale, scale)
        nn.init.uniform_(self.decoder.weight, -scale, scale)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int) -> Hidden:
        """Zero initial state: (layers, batch, hidden), a pair (h, c) for the LSTM (minGRU and
        minLSTM have h alone)."""
        weight = self.decoder.weight
        h = weight.new_zeros(self.num_layers, batch_size, self.hidden_size)
        if self.cell == "lstm":
            return (h, weight.new_zeros(self.num_layers, batch_size, self.hidden_size))
        return h

    def features(self, tokens: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """Top-layer outputs (seq_len, batch, hidden) for token ids (seq_len, batch)."""
        emb = self.encoder(tokens)  # (seq_len, batch, embedding)
        if self.cell == "gru" and emb.device.type == "cpu" and autocast_dtype("cpu"):
            # CPU autocast has no rule for the GRU: cast for it
            output, hidden = self._gru_in(autocast_dtype("cpu"), emb, hidden)
        else:
            output, hidden = self.rnn(emb, hidden)
        # Under bf16 the cells return their state in bf16; it is carried to the next minibatch
        # (and into checkpoints) in the weights' dtype, so only the products are rounded,
        # never the state between segments (rnnbench.model.precision).
        return output, cast_hidden(hidden, self.decoder.weight.dtype)

    def _gru_in(self, dtype: torch.dtype, emb: torch.Tensor,
                hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The GRU in ``dtype``, as autocast runs the other cells: differentiable casts of the
        (fp32) weights, input and state, and ``nn.GRU.forward``'s own call on them."""
        rnn = self.rnn
        weights = [w.to(dtype) for w in rnn._flat_weights]
        out, h = torch._VF.gru(emb.to(dtype), hidden.to(dtype), weights, rnn.bias,
                               rnn.num_layers, rnn.dropout, rnn.training, rnn.bidirectional,
                               rnn.batch_first)
        return out, h

    def forward(self, tokens: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """Logits (seq_len, batch, vocab) and the final hidden state."""
        output, hidden = self.features(tokens, hidden)
        return self.decoder(output), hidden


def build_model(cfg: RunConfig, vocab_size: int) -> RNNModel:
    """The RNNModel a RunConfig describes (initialised with the global RNG)."""
    model = RNNModel(cfg.cell, vocab_size, cfg.hidden, cfg.layers, cfg.embedding_size,
                     cfg.dropout, cfg.init, cfg.init_scale)
    if cfg.forget_bias is not None:
        set_forget_bias(model.rnn, cfg.forget_bias)
    if cfg.irnn is not None:
        set_identity_recurrence(model.rnn, cfg.irnn)
    return model


def set_forget_bias(rnn: nn.LSTM, value: float) -> None:
    """Make every layer's effective forget-gate bias ``value`` (Jozefowicz, Zaremba and
    Sutskever 2015). PyTorch adds two bias vectors, each ordered (i, f, g, o) in blocks of
    H; the value goes into ``bias_ih``'s f block and ``bias_hh``'s f block is zeroed, so the
    sum the gate sees is exactly ``value``."""
    h = rnn.hidden_size
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            getattr(rnn, f"bias_ih_l{layer}")[h:2 * h].fill_(value)
            getattr(rnn, f"bias_hh_l{layer}")[h:2 * h].zero_()


def set_identity_recurrence(rnn: nn.RNN, scale: float) -> None:
    """IRNN (Le, Jaitly and Hinton 2015): every layer's recurrent matrix ``scale * I`` and both
    bias vectors 0; the input weights keep their initialisation."""
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            weight = getattr(rnn, f"weight_hh_l{layer}")
            weight.copy_(scale * torch.eye(weight.size(0), dtype=weight.dtype))
            getattr(rnn, f"bias_ih_l{layer}").zero_()
            getattr(rnn, f"bias_hh_l{layer}").zero_()


def check_cell(cell: str) -> None:
    """Raise a ValueError naming the valid cells when ``cell`` is not one of them."""
    if cell not in CELLS:
        raise ValueError(
            f"unknown cell {cell!r}: choose one of {', '.join(CELLS)} "
            "(set `cells:` in the config's grid)"
        )


def cast_hidden(hidden: Hidden, dtype: torch.dtype) -> Hidden:
    """The state in ``dtype`` (differentiably; the same tensors when it already is)."""
    if isinstance(hidden, tuple):
        return tuple(h.to(dtype) for h in hidden)  # type: ignore[return-value]
    return hidden.to(dtype)


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph at a minibatch boundary (truncated BPTT), keeping the values."""
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)  # type: ignore[return-value]
    return hidden.detach()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_groups(model: RNNModel) -> list[tuple[str, list[str]]]:
    """Named groups of parameter names for per-group gradient norms.

    ``embedding``, per layer ``l{i}.ih`` (input-to-hidden weight), ``l{i}.hh``
    (hidden-to-hidden weight), ``l{i}.bias`` (both biases), then ``decoder`` (weight and bias).
    minGRU and minLSTM have no ``l{i}.hh`` (no recurrent matrix) and one bias per layer.
    The groups partition the parameters, so their squared norms add up to the global one.
    """
    recurrent = model.cell not in MIN_GATES
    groups: list[tuple[str, list[str]]] = [("embedding", ["encoder.weight"])]
    for i in range(model.num_layers):
        groups.append((f"l{i}.ih", [f"rnn.weight_ih_l{i}"]))
        if recurrent:
            groups.append((f"l{i}.hh", [f"rnn.weight_hh_l{i}"]))
        groups.append((f"l{i}.bias", [f"rnn.bias_ih_l{i}", f"rnn.bias_hh_l{i}"] if recurrent
                       else [f"rnn.bias_ih_l{i}"]))
    groups.append(("decoder", ["decoder.weight", "decoder.bias"]))
    return groups
