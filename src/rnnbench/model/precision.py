"""Mixed precision, the ``precision`` training key: ``fp32`` (None, the default) or ``bf16``.

bf16 is PyTorch's autocast (Micikevicius et al. 2018's recipe with bf16, which needs no loss
scaling): the products of the recurrence and of the decoder run in bfloat16 on CPU and CUDA,
while the weights, their gradients, SGD, the softmax, the cross-entropy and the gradient norm
stay in float32. Two places need more than the context manager:

- the fused loss (:mod:`rnnbench.model.fastloss`) is an autograd Function, which autocast does not
  enter: it asks :func:`autocast_dtype` and forms its three products in bf16 itself, with the
  log-sum-exp and the gradient of the logits in fp32;
- PyTorch's CPU autocast has no rule for the GRU (its ``nn.RNN`` and ``nn.LSTM`` are covered):
  :meth:`rnnbench.model.model.RNNModel.features` casts the GRU's weights for it;
- minGRU and minLSTM (:mod:`rnnbench.model.mincells`) form their input products with
  ``F.linear`` (bf16 under autocast) and cast the pre-activations to fp32 themselves, so
  their recurrence (softplus, logcumsumexp or the loop) runs in fp32.

The backward pass runs outside the context, as PyTorch recommends: each op's gradient runs in
the dtype its forward ran in.
"""

from __future__ import annotations

import contextlib

import torch

LOW = {"bf16": torch.bfloat16}


def autocast(device: torch.device | str,
             precision: str | None) -> contextlib.AbstractContextManager:
    """The context a training step or an evaluation runs its forward pass in: autocast to the
    run's low precision, or nothing at all for fp32 (None), so that path is unchanged."""
    if precision is None or precision == "fp32":
        return contextlib.nullcontext()
    device_type = device if isinstance(device, str) else device.type
    return torch.autocast(device_type, dtype=LOW[precision])


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast gives products on ``device_type`` right now, or None when it is off."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)
