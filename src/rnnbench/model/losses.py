"""Cross-entropy of a language model: per minibatch (the fused exact kernel or the plain one),
over a whole stream (the evaluation both training and ``rnnbench.diagnostics.evaluate``
use), and its perplexity."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.data.batching import get_batch, num_batches
from rnnbench.model.model import RNNModel
from rnnbench.model.precision import autocast


class NoTokens(ValueError):
    """A stream too short to score one token: its perplexity would be a mean over nothing."""


def loss_sum(
    decoder: nn.Linear, features: torch.Tensor, targets: torch.Tensor, impl: str = "fused"
) -> torch.Tensor:
    """Sum over tokens of -log softmax(decoder(features))[target].

    features: (seq, batch, hidden); targets: (seq, batch). ``fused`` forms the gradients in the
    forward pass in a reused buffer (rnnbench.model.fastloss); ``naive`` is F.cross_entropy on fresh
    logits; ``auto`` takes fused on CPU and naive on CUDA, where each was measured faster.
    """
    h = features.reshape(-1, features.size(-1))  # (tokens, hidden)
    t = targets.reshape(-1)  # (tokens,)
    if impl == "auto":
        impl = "naive" if h.is_cuda else "fused"
    if impl == "fused":
        from rnnbench.model.fastloss import fused_linear_cross_entropy

        return fused_linear_cross_entropy(h, decoder.weight, decoder.bias, t)
    return F.cross_entropy(decoder(h), t, reduction="sum")


def full_pass_tokens(data: torch.Tensor) -> int:
    """Tokens one whole pass over ``data`` (rows, batch) scores: every row but the first."""
    return max(data.size(0) - 1, 0) * data.size(1)


@torch.no_grad()
def evaluate(
    model: RNNModel,
    data: torch.Tensor,
    bptt: int,
    impl: str = "fused",
    max_batches: int | None = None,
    precision: str | None = None,
) -> tuple[float, int]:
    """Mean cross-entropy (nats/token) over ``data`` (rows, batch) and the token count.

    The hidden state carries across minibatches, so each column is read as one text; the
    products run in ``precision`` (the run's: None is fp32), the losses sum in fp64. Raises
    NoTokens rather than return a mean over zero tokens (fewer than two rows)."""
    n = num_batches(data, bptt)
    n = n if max_batches is None else min(n, max_batches)
    if n < 1 or full_pass_tokens(data) == 0:
        raise NoTokens(f"nothing to score: {data.size(0)} row(s) of {data.size(1)} column(s), "
                       "and a row of targets needs a row of inputs before it (2 rows)")
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    tokens = 0
    for b in range(n):
        x, y = get_batch(data, b * bptt, bptt)  # (seq, batch) each
        with autocast(data.device, precision):
            out, hidden = model.features(x, hidden)
            total += loss_sum(model.decoder, out, y, impl).double()
        tokens += y.numel()
    return total.item() / tokens, tokens


def perplexity(mean_loss: float) -> float:
    """exp(mean loss), inf when it overflows."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf
