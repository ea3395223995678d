"""Batching a token stream for truncated back-propagation through time.

As in pytorch/examples' word_language_model: the stream is cut into ``batch`` columns, each a
contiguous piece of text, and a minibatch is ``bptt`` consecutive rows::

    stream: a b c d e f g h i j k l m n o p q r s t u v w x      (T = 24 tokens)

    batchify(stream, 4) ->  a g m s      get_batch(data, 0, bptt=2) -> inputs   a g m s
                            b h n t                                             b h n t
                            c i o u                               targets       b h n t
                            d j p v                                             c i o u
                            e k q w
                            f l r x     (T // batch rows; the rest is dropped)

The hidden state of column j carries from one minibatch to the next, so the model reads
each column as one long text.
"""

from __future__ import annotations

import math

import torch


def batchify(stream: torch.Tensor, batch: int) -> torch.Tensor:
    """Columns of a 1-D stream: (len(stream) // batch, batch), trailing tokens dropped."""
    rows = stream.numel() // batch
    return stream[: rows * batch].view(batch, rows).t().contiguous()  # (rows, batch)


def num_batches(data: torch.Tensor, bptt: int) -> int:
    """Minibatches per pass; the last one may be shorter than ``bptt``."""
    return math.ceil((data.size(0) - 1) / bptt)


def get_batch(data: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (seq, batch) from row ``i`` and targets shifted one row down."""
    seq = min(bptt, data.size(0) - 1 - i)
    return data[i : i + seq], data[i + 1 : i + 1 + seq]
