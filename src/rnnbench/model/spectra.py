"""The largest singular value of each layer's hidden-to-hidden matrix, whole and per gate block.

Training records it at initialisation and every epoch end (``spectra.csv``). Below 1/gamma
(gamma bounding the derivative of the nonlinearity) a layer's long-term gradients must vanish
(Pascanu, Mikolov & Bengio 2013); rnnbench.diagnostics.gradtime measures them directly.
minGRU and minLSTM (rnnbench.model.mincells) have no hidden-to-hidden matrix: no rows (their
step Jacobian is the diagonal of the forget coefficients, which gradtime measures).
"""

from __future__ import annotations

import torch
from torch import nn

from rnnbench.model.mincells import MinRNN
from rnnbench.model.model import RNNModel

# Gate blocks of weight_hh / weight_ih rows, in PyTorch's order.
GATE_NAMES: dict[str, tuple[str, ...]] = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}


def _sigma_max(matrix: torch.Tensor) -> float:
    """Largest singular value (spectral norm) of a 2-D tensor, computed in float64."""
    return float(torch.linalg.matrix_norm(matrix.detach().double(), ord=2))


def recurrent_spectra(model: RNNModel | nn.RNNBase | MinRNN) -> list[dict]:
    """Largest singular value of each layer's ``W_hh``, whole ("all") and per gate block.

    Records ``{"layer", "gate", "sigma_max"}``; gate blocks are the row blocks in PyTorch's
    order: LSTM ``i, f, g, o``; GRU ``r, z, n``; a plain RNN has only "all"; minGRU and
    minLSTM none at all (no ``W_hh``).
    """
    rnn = model.rnn if isinstance(model, RNNModel) else model
    if isinstance(rnn, MinRNN):
        return []
    gates = GATE_NAMES.get(rnn.mode, ())
    records = []
    for layer in range(rnn.num_layers):
        w_hh = getattr(rnn, f"weight_hh_l{layer}")  # (gates * hidden, hidden)
        records.append({"layer": layer, "gate": "all", "sigma_max": _sigma_max(w_hh)})
        if gates:
            # Row blocks, each (hidden, hidden), acting on h_{t-1} for one gate.
            for gate, block in zip(gates, w_hh.chunk(len(gates), dim=0), strict=True):
                records.append({"layer": layer, "gate": gate, "sigma_max": _sigma_max(block)})
    return records
