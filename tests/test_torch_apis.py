"""The private torch APIs rnnbench relies on still exist and compute what it assumes: if a torch
release changes one, this test fails and names it, rather than a run failing or, worse, silently
computing something else."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def test_vf_gru_is_nn_grus_own_kernel():
    # rnnbench.model.model.RNNModel._gru_in calls it with bf16 casts of _flat_weights
    gru = nn.GRU(5, 4, 2)
    x, h = torch.randn(3, 2, 5), torch.randn(2, 2, 4)
    assert hasattr(torch, "_VF") and hasattr(torch._VF, "gru"), \
        "torch._VF.gru is gone: rnnbench.model.model.RNNModel._gru_in needs another way in"
    assert hasattr(gru, "_flat_weights"), \
        "nn.GRU._flat_weights is gone: rnnbench.model.model.RNNModel._gru_in reads it"
    out, hn = torch._VF.gru(x, h, gru._flat_weights, gru.bias, gru.num_layers, gru.dropout,
                            gru.training, gru.bidirectional, gru.batch_first)
    ref_out, ref_h = gru(x, h)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(hn, ref_h)


def test_foreach_norm_is_each_tensors_l2_norm():
    # rnnbench.training.gradtreat and rnnbench.bench.harness take the gradient norms with it
    assert hasattr(torch, "_foreach_norm"), \
        "torch._foreach_norm is gone: rnnbench.training.gradtreat needs torch.linalg norms"
    tensors = [torch.randn(3, 4), torch.randn(7), torch.zeros(2)]
    norms = torch._foreach_norm(tensors)
    assert len(norms) == 3
    for t, n in zip(tensors, norms, strict=True):
        assert float(n) == pytest.approx(float(torch.linalg.vector_norm(t)), rel=1e-6)
