"""A run's learning-rate schedule, and the rule that ends training early.

Two schedules (the recipe key ``schedule``, rnnbench.config):

* **fixed** (every published recipe): ``lr`` for the first ``decay_start`` epochs, then
  divided by ``decay_factor`` once per epoch (``RunConfig.lr_at``); the run trains
  ``epochs`` epochs.
* **plateau**: PyTorch's ``ReduceLROnPlateau`` on the validation perplexity of each epoch
  (mode ``min``, relative ``plateau_threshold``), exactly as it runs:

  - an epoch *improves* when its perplexity is below ``best x (1 - plateau_threshold)``; only
    then does ``best`` become that perplexity. An epoch that is lower than ``best`` by less
    than the threshold does not move ``best`` (so two small gains in a row are each measured
    against the older best, not the first of them);
  - after ``plateau_patience + 1`` epochs in a row that do not improve, the lr is multiplied by
    ``plateau_factor`` and the count starts again (PyTorch's cooldown is 0);
  - once it has decayed ``max_decays`` times, the next such plateau ends the run instead
    (``stopped: plateau_decays``), so the last lr is trained until it too stops helping;
    ``epochs`` is the maximum (``stopped: max_epochs``).

  The defaults (factor 1/4, patience 0, threshold 0) are pytorch/examples
  word_language_model's rule, ``lr /= 4`` at the first epoch whose validation loss is no
  better than the best so far; config/scaling.yaml uses patience 1 and a 1% threshold.

The state (the scheduler's ``state_dict``, the current lr, the decays so far) is plain numbers,
so it goes into the checkpoint and a run resumed mid-schedule is bitwise the uninterrupted one.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from rnnbench.config import RunConfig

log = logging.getLogger(__name__)
# Why training ended (train.json's `stopped`).
STOPPED = ("max_epochs", "plateau_decays", "diverged")


class Schedule:
    """The lr of each epoch of one run, and whether its validation says to stop."""

    def __init__(self, cfg: RunConfig, optimizer: torch.optim.Optimizer) -> None:
        self.cfg, self.optimizer = cfg, optimizer
        self.decays = 0
        self.plateau = None
        if cfg.schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.plateau_factor,
                patience=cfg.plateau_patience, threshold=cfg.plateau_threshold,
                threshold_mode="rel")
        self._lr = cfg.lr

    def lr(self, epoch: int) -> float:
        """The learning rate of 0-based ``epoch`` (plateau: of the epoch to come)."""
        return self.cfg.lr_at(epoch) if self.plateau is None else self._lr

    def start_epoch(self, epoch: int) -> None:
        """Set the optimizer's lr for ``epoch``."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(epoch)

    def end_epoch(self, epoch: int, valid_ppl: float) -> str | None:
        """Feed the epoch's validation perplexity; ``plateau_decays`` if training must stop
        (the plateau after the last allowed decay), else None and the next epoch's lr set."""
        if self.plateau is None:
            return None
        self.plateau.step(valid_ppl)
        new_lr = self.optimizer.param_groups[0]["lr"]
        if new_lr >= self._lr:
            return None
        if self.decays == self.cfg.max_decays:
            log.info("epoch %d: validation perplexity %.2f on a plateau after %d decay(s) of "
                     "the lr: training stops", epoch + 1, valid_ppl, self.decays)
            return "plateau_decays"
        self.decays += 1
        log.info("epoch %d: validation perplexity %.2f on a plateau: lr %.4g -> %.4g (decay "
                 "%d of %d)", epoch + 1, valid_ppl, self._lr, new_lr, self.decays,
                 self.cfg.max_decays)
        self._lr = new_lr
        return None

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers for the checkpoint (empty for the fixed schedule: it has no state)."""
        if self.plateau is None:
            return {}
        return {"scheduler": self.plateau.state_dict(), "lr": self._lr, "decays": self.decays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave (nothing to restore for ``{}``)."""
        if self.plateau is None or not state:
            return
        self.plateau.load_state_dict(state["scheduler"])
        self._lr, self.decays = state["lr"], state["decays"]
