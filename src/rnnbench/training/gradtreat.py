"""The recipe's gradient treatment and its per-group norms, one step at a time.

``normalize`` divides every gradient by the global norm (the course lab's unit-norm step; an
almost-zero gradient is zeroed), ``clip`` scales it to at most ``clip_norm``, ``none`` leaves
it; the norms before it, global and per parameter group (rnnbench.model.model.parameter_groups),
are returned as one device tensor, without a host synchronisation.
"""

from __future__ import annotations

import torch

from rnnbench.config import RunConfig
from rnnbench.model.model import RNNModel, parameter_groups

__all__ = ["GradTreatment"]


class GradTreatment:
    """Per-group gradient norms and the recipe's normalize/clip step, without host syncs."""

    def __init__(self, model: RNNModel, cfg: RunConfig) -> None:
        named = dict(model.named_parameters())
        groups = parameter_groups(model)
        self.names = [g for g, _ in groups]
        self.params = [named[n] for _, names in groups for n in names]
        index = [i for i, (_, names) in enumerate(groups) for _ in names]
        self.index = torch.tensor(index, device=self.params[0].device)
        self.cfg = cfg

    def __call__(self) -> torch.Tensor:
        """Apply the treatment in place; return [global, *group] norms *before* it."""
        # Few small ops (each costs host time, a kernel launch on GPU); the same float ops as
        # ||g_p||^2 summed per group, then over groups, then sqrt; 1/total is reciprocal().
        grads = [p.grad for p in self.params]
        sq_param = torch.stack(torch._foreach_norm(grads))  # (P,) norms, squared in place
        sq_param.mul_(sq_param)
        sq = sq_param.new_zeros(len(self.names)).index_add_(0, self.index, sq_param)  # (G,)
        norms = torch.cat([sq.sum().view(1), sq]).sqrt_()  # (1+G,) [global, *group]
        total = norms[0]
        if self.cfg.grad == "normalize":
            # unit-norm step; an (almost) zero gradient is zeroed, not blown up
            scale = torch.where(total < self.cfg.normalize_eps, 0.0, total.reciprocal())
            torch._foreach_mul_(grads, scale)
        elif self.cfg.grad == "clip":
            torch._foreach_mul_(grads, (self.cfg.clip_norm / (total + 1e-6)).clamp(max=1.0))
        return norms
