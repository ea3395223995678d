"""The course lab's training loop: the naive reference that ``Trainer.step`` is timed against.

It is pytorch/examples word_language_model's ``train()`` with the lab's recipe, kept
deliberately plain: full logits, mean ``F.cross_entropy``, the global gradient norm summed by
a Python loop over the parameters (one host sync each), a unit-norm step (``p.grad /= norm``;
an almost-zero gradient is zeroed) and ``p.data.add_``. :mod:`rnnbench.bench.harness` runs it beside
our step from the same weights on the same minibatches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rnnbench.data.batching import get_batch
from rnnbench.model.model import Hidden, RNNModel


def repackage(hidden: Hidden) -> Hidden:
    """The examples' ``repackage_hidden``: new tensors cut from their history."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(repackage(h) for h in hidden)  # type: ignore[return-value]


def naive_step(model: RNNModel, x: torch.Tensor, y: torch.Tensor, hidden: Hidden, lr: float,
               eps: float = 1e-4) -> tuple[Hidden, float]:
    """The seed's exact training step on inputs/targets (seq, batch); returns the new hidden
    state and the step's mean loss (a Python float, i.e. a host sync)."""
    hidden = repackage(hidden)
    model.zero_grad()
    output, hidden = model(x, hidden)  # (seq, batch, vocab)
    loss = F.cross_entropy(output.view(-1, model.vocab_size), y.view(-1))
    loss.backward()
    params = list(model.parameters())
    norm = math.sqrt(sum(p.grad.norm().item() ** 2 for p in params))
    for p in params:
        if norm < eps:
            p.grad.zero_()
        else:
            p.grad /= norm
        p.data.add_(p.grad, alpha=-lr)
    return hidden, loss.item()


class NaiveLoop:
    """The lab's loop over a batchified training stream (rows, batch), pass after pass."""

    def __init__(self, model: RNNModel, data: torch.Tensor, bptt: int, n_batches: int,
                 lr: float, eps: float) -> None:
        self.model, self.data, self.bptt, self.n_batches = model, data, bptt, n_batches
        self.lr, self.eps = lr, eps
        self.restart()

    def restart(self) -> None:
        """Back to the stream's first minibatch with a zero hidden state."""
        self.hidden = self.model.init_hidden(self.data.size(1))
        self.pos, self.tokens, self.total_loss = 0, 0, 0.0

    def steps(self, n: int) -> list[float]:
        """``n`` steps on the next minibatches; their mean losses."""
        losses = []
        for _ in range(n):
            b = self.pos % self.n_batches
            if b == 0:  # a new pass starts from a zero state, as an epoch does
                self.hidden = self.model.init_hidden(self.data.size(1))
            x, y = get_batch(self.data, b * self.bptt, self.bptt)  # (seq, batch) each
            self.hidden, loss = naive_step(self.model, x, y, self.hidden, self.lr, self.eps)
            self.pos, self.tokens = b + 1, self.tokens + y.numel()
            self.total_loss += loss
            losses.append(loss)
        return losses
