"""Why a trainer stops before its end: SIGTERM/SIGINT (Snakemake, SLURM, Ctrl-C) or a job's
time limit. Either sets the trainer's ``stop_signal``; it checkpoints at the next minibatch and
exits 75 (retry; rnnbench.training.train).

The signals are caught from the first line of the trainer's ``main``: one that arrives while
the data loads and the model is built is kept and honoured at the first minibatch, instead of
ending the process with the default action (nothing saved, an exit status no scheduler
retries).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)


class StopRequests:
    """Install the handlers now; ``attach`` the trainer once it exists."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.trainer = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        log.warning("received signal %d: checkpointing at the next minibatch", signum)
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        self.signum = signum
        if self.trainer is not None:
            self.trainer.stop_signal = signum

    def attach(self, trainer) -> None:
        """From now on a stop goes to ``trainer``; one asked for already goes at once."""
        self.trainer = trainer
        if self.signum is not None:
            trainer.stop_signal = self.signum

    def time_limit(self, limit_s: float, margin_s: float, started: float) -> None:
        """Stop on our own ``margin_s`` (at most half the limit) before a job's wall-clock
        limit, counted from ``started`` (time.monotonic), rather than trust its signal."""
        stop_at = limit_s - min(margin_s, limit_s / 2)

        def on_time_limit() -> None:
            log.warning("%.0f s of the %g s time limit used: checkpointing at the next "
                        "minibatch", time.monotonic() - started, limit_s)
            self._stop(signal.SIGALRM)

        timer = threading.Timer(max(0.0, stop_at - (time.monotonic() - started)), on_time_limit)
        timer.daemon = True
        timer.start()
