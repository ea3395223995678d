"""Parameter accounting and the iso-parameter axis (no torch import: Snakemake imports this).

A model is ``Embedding(V, E) -> cell (L layers, hidden H) -> Linear(H, V)``. PyTorch's
recurrent modules hold, per layer ``l``, ``weight_ih`` (G H x E_in), ``weight_hh`` (G H x H) and
two bias vectors ``bias_ih``, ``bias_hh`` (G H each), with G gate blocks: 1 for the vanilla RNN,
3 for the GRU, 4 for the LSTM, and ``E_in`` = E for layer 0, H above it::

    recurrent(H) = sum_l  G H (E_in + H) + 2 G H
    embedding + decoder = V E + (H V + V)

On a 10,000-word vocabulary the embedding and decoder dominate the total, so cells compared
at equal *hidden size* differ in recurrent parameters by up to 4x; an iso-parameter
comparison instead solves H per cell so the recurrent parameters match a budget
(Collins, Sohl-Dickstein and Sussillo, ICLR 2017).
"""

from __future__ import annotations

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def recurrent_params(cell: str, hidden: int, layers: int = 1,
                     embedding_size: int | None = None) -> int:
    """Scalars of the recurrent module (weights and both bias vectors of every layer)."""
    gates = GATES[cell]
    emb = embedding_size or hidden
    total = 0
    for layer in range(layers):
        e_in = emb if layer == 0 else hidden
        total += gates * hidden * (e_in + hidden) + 2 * gates * hidden
    return total


def embedding_decoder_params(hidden: int, vocab: int, embedding_size: int | None = None) -> int:
    """Scalars of the embedding table and the decoder (weight and bias)."""
    return vocab * (embedding_size or hidden) + hidden * vocab + vocab


def param_counts(cell: str, hidden: int, layers: int, vocab: int,
                 embedding_size: int | None = None) -> dict[str, int]:
    """``params`` (total), ``embedding_decoder_params`` and ``recurrent_params``."""
    rec = recurrent_params(cell, hidden, layers, embedding_size)
    emb = embedding_decoder_params(hidden, vocab, embedding_size)
    return {"params": rec + emb, "embedding_decoder_params": emb, "recurrent_params": rec}


def solve_hidden(cell: str, budget: int, layers: int = 1,
                 embedding_size: int | None = None) -> tuple[int, int]:
    """The hidden size whose recurrent parameter count is nearest ``budget`` (ties: the
    smaller size), and that count. Exact integer search: the count grows with H."""
    if budget < 1:
        raise ValueError(f"a recurrent-parameter budget must be positive, got {budget}")

    def count(h: int) -> int:
        return recurrent_params(cell, h, layers, embedding_size)

    low, high = 1, 1
    while count(high) < budget:  # bracket: count(high) >= budget
        low, high = high, high * 2
    while high - low > 1:  # invariant: count(low) < budget <= count(high), or low == 1
        mid = (low + high) // 2
        if count(mid) < budget:
            low = mid
        else:
            high = mid
    best = min((low, high), key=lambda h: (abs(count(h) - budget), h))
    return best, count(best)


def matmul_flops_per_token(cell: str, hidden: int, layers: int, vocab: int,
                           embedding: int | None = None) -> float:
    """Analytic matmul FLOPs per token of one training step (forward + backward = 3x forward).

    Decoder ``2 H V``; layer ``l`` ``2 (E_in + H) G H`` with ``G`` gates (1 RNN, 3 GRU, 4 LSTM)
    and ``E_in`` the embedding size for layer 0, else ``H``. The embedding lookup is no matmul.
    """
    gates = GATES[cell]
    emb = embedding or hidden
    forward = 2 * hidden * vocab
    for layer in range(layers):
        e_in = emb if layer == 0 else hidden
        forward += 2 * (e_in + hidden) * gates * hidden
    return 3.0 * forward


def format_budget(budget: int) -> str:
    """Short, file-name-safe text for a budget: ``250k``, ``1.5M``, ``800``."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if budget >= size:
            return f"{budget / size:g}{unit}"
    return str(budget)
