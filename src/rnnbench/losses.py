"""Summed cross-entropy of the decoder's output: the fused exact kernel or the plain one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def loss_sum(
    decoder: nn.Linear, features: torch.Tensor, targets: torch.Tensor, impl: str = "fused"
) -> torch.Tensor:
    """Sum over tokens of -log softmax(decoder(features))[target].

    features: (seq, batch, hidden); targets: (seq, batch). ``fused`` forms the gradients in the
    forward pass in a reused buffer (rnnbench.fastloss); ``naive`` is F.cross_entropy on fresh
    logits; ``auto`` takes fused on CPU and naive on CUDA, where each was measured faster.
    """
    h = features.reshape(-1, features.size(-1))  # (tokens, hidden)
    t = targets.reshape(-1)  # (tokens,)
    if impl == "auto":
        impl = "naive" if h.is_cuda else "fused"
    if impl == "fused":
        from rnnbench.fastloss import fused_linear_cross_entropy

        return fused_linear_cross_entropy(h, decoder.weight, decoder.bias, t)
    return F.cross_entropy(decoder(h), t, reduction="sum")
