"""Parameter accounting and the iso-parameter axis (no torch import: Snakemake imports this).

A model is ``Embedding(V, E) -> cell (L layers, hidden H) -> Linear(H, V)``. PyTorch's
recurrent modules hold, per layer ``l``, ``weight_ih`` (G H x E_in), ``weight_hh`` (G H x H) and
two bias vectors ``bias_ih``, ``bias_hh`` (G H each), with G gate blocks: 1 for the vanilla RNN,
3 for the GRU, 4 for the LSTM, and ``E_in`` = E for layer 0, H above it::

    recurrent(H) = sum_l  G H (E_in + H) + 2 G H
    embedding + decoder = V E + (H V + V)

minGRU and minLSTM (rnnbench.model.mincells) have no recurrent matrix and one bias: per layer
``weight_ih`` (G H x E_in) and ``bias_ih`` (G H), G = 2 (z, h̃) resp. 3 (f, i, h̃)::

    recurrent(H) = sum_l  G H E_in + G H

On a 10,000-word vocabulary the embedding and decoder dominate the total, so cells compared
at equal *hidden size* differ in recurrent parameters by up to 4x; an iso-parameter
comparison instead solves H per cell so the recurrent parameters match a budget
(Collins, Sohl-Dickstein and Sussillo, ICLR 2017), or, the more common convention (Melis, Dyer
and Blunsom 2018; Bai, Kolter and Koltun 2018), so the *total* parameters match it. A total
count needs the vocabulary size V, known before tokenization only for a known corpus
(:func:`corpus_vocab`).
"""

from __future__ import annotations

import json
from pathlib import Path

from rnnbench.config import ConfigError

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "min_gru": 2, "min_lstm": 3}
# Cells whose gates read the input only (no W_hh, no bias_hh): rnnbench.model.mincells.
INPUT_ONLY = ("min_gru", "min_lstm")


def recurrent_params(cell: str, hidden: int, layers: int = 1,
                     embedding_size: int | None = None) -> int:
    """Scalars of the recurrent module (weights and both bias vectors of every layer; for
    minGRU/minLSTM the input weights and one bias)."""
    gates = GATES[cell]
    emb = embedding_size or hidden
    total = 0
    for layer in range(layers):
        e_in = emb if layer == 0 else hidden
        if cell in INPUT_ONLY:
            total += gates * hidden * e_in + gates * hidden
        else:
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


def solve_hidden(cell: str, budget: int, layers: int = 1, embedding_size: int | None = None,
                 vocab: int | None = None) -> tuple[int, int]:
    """The hidden size whose recurrent parameter count (with ``vocab``: total count) is
    nearest ``budget`` (ties: the smaller size), and that count. Exact integer search: the
    count grows with H."""
    if budget < 1:
        raise ValueError(f"a parameter budget must be positive, got {budget}")

    def count(h: int) -> int:
        if vocab is None:
            return recurrent_params(cell, h, layers, embedding_size)
        return param_counts(cell, h, layers, vocab, embedding_size)["params"]

    if vocab is not None and count(1) > budget:
        raise ValueError(
            f"a total-parameter budget of {budget:,} is below the {count(1):,} parameters of a "
            f"{cell} of hidden size 1 on a vocabulary of {vocab:,} words (the embedding and "
            "decoder alone): give a larger budget")

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
    and ``E_in`` the embedding size for layer 0, else ``H``; minGRU/minLSTM ``2 E_in G H``
    (G = 2 resp. 3, no recurrent product). The embedding lookup is no matmul.
    """
    gates = GATES[cell]
    emb = embedding or hidden
    forward = 2 * hidden * vocab
    for layer in range(layers):
        e_in = emb if layer == 0 else hidden
        forward += 2 * (e_in + (0 if cell in INPUT_ONLY else hidden)) * gates * hidden
    return 3.0 * forward


def format_budget(budget: int) -> str:
    """Short, file-name-safe text for a budget: ``250k``, ``1.5M``, ``800``."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if budget >= size:
            return f"{budget / size:g}{unit}"
    return str(budget)


def size_part(hidden: int, budget: int | None, budget_kind: str | None = None) -> str:
    """``h300``; ``p250k`` (recurrent-parameter budget); ``t4M`` (total-parameter budget)."""
    if budget is None:
        return f"h{hidden}"
    return f"{'t' if budget_kind == 'total' else 'p'}{format_budget(budget)}"


# Vocabulary sizes (with <eos> and <unk>) of known corpora, uncapped, by the train file's
# SHA-256: Mikolov's PTB has 10,000 words.
KNOWN_VOCAB = {"fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf": 10_000}


def corpus_vocab(corpus: dict, stats_path: str | Path) -> int | None:
    """The vocabulary size a run of ``corpus`` trains with, before any job: from the tokenized
    corpus's stats.json when it was made with the config's ``max_vocab``, else for a known
    corpus (KNOWN_VOCAB) its size capped at ``max_vocab`` (the tokenizer keeps exactly
    ``max_vocab`` words when the corpus has more), else None (tokenize it first)."""
    cap, stats_path = corpus.get("max_vocab"), Path(stats_path)
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        if stats.get("max_vocab") == cap and "vocab_size" in stats:
            return int(stats["vocab_size"])
    sha = (corpus["files"]["train"].get("sha256") or "").lower()
    known = KNOWN_VOCAB.get(sha)
    return None if known is None else min(known, cap or known)


def check_size_axis(name: str, spec: dict) -> None:
    """Raise ConfigError unless the experiment gives exactly one of `hidden` and `budgets`."""
    if ("hidden" in spec) != ("budgets" in spec):
        return
    given = "both `hidden` and `budgets`" if "hidden" in spec else "neither `hidden` nor `budgets`"
    raise ConfigError(
        f"Experiment {name!r} gives {given}: give exactly one size axis, `hidden: [...]` "
        "(hidden sizes) or `budgets: [...]` (recurrent-parameter budgets, the hidden size "
        "solved per cell and layer count).")


def check_budget_kind(name: str, spec: dict, vocab: int | None) -> str | None:
    """``total`` for total-parameter budgets, None for recurrent ones (today's default); a
    ConfigError if the kind is given without budgets, or total without the vocabulary size."""
    if spec.get("budget_kind", "recurrent") != "total":
        return None
    if "budgets" not in spec:
        raise ConfigError(f"Experiment {name!r} gives budget_kind total but no `budgets`: "
                          "budget_kind says what a budget counts; give `budgets: [...]` "
                          "instead of `hidden`, or remove budget_kind.")
    if vocab is None:
        raise ConfigError(
            f"Experiment {name!r} gives total-parameter budgets, which need the vocabulary "
            "size (the embedding and decoder hold most parameters), but this corpus's is not "
            "known before tokenization: it is not a known corpus (PTB) and results/data/"
            "<corpus>/stats.json of this max_vocab does not exist yet. Tokenize it first "
            "(snakemake --until tokenize_corpus with this config), then run again; or use "
            "`budget_kind: recurrent`.")
    return "total"


def budget_error(cell: str, hidden: int, layers: int, vocab: int, budget: int | None,
                 budget_kind: str | None, embedding_size: int | None = None) -> str | None:
    """Why a run of a total-parameter budget must not train on a vocabulary of ``vocab``
    words (its hidden size was solved for another one), or None."""
    if budget is None or budget_kind != "total":
        return None
    solved, _ = solve_hidden(cell, budget, layers, embedding_size, vocab)
    if solved == hidden:
        return None
    return (f"cannot train: hidden size {hidden} was solved for a total-parameter budget of "
            f"{budget:,} on another vocabulary size, but the corpus has {vocab:,} words, for "
            f"which the budget gives hidden size {solved}. Nothing was written. Rerun "
            "Snakemake, which solves the sizes from the tokenized corpus's stats.json, or pass "
            f"--hidden {solved}.")
