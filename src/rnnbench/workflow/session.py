"""A Snakemake run's session (workflow/rules/common.smk): the plan it prints, the refusal of
what this machine cannot run (before any job), and the progress line as runs finish.

Only the main Snakemake process opens one: cluster and subprocess jobs re-parse the workflow
and stay quiet. A run prints the plan when it starts (``Session.start``, from the Snakefile's
``onstart``); a dry run after its list of jobs, which would otherwise scroll it away.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnbench.data.sources import plan_size
from rnnbench.workflow import console
from rnnbench.workflow.plan import (
    machine_memory_bytes,
    machine_refusal,
    make_plan,
    may_stop_early,
)
from rnnbench.workflow.progress import (
    GridProgress,
    JobErrorHandler,
    PlanAtExit,
    ProgressHandler,
    UserStop,
)


@dataclass
class Session:
    """The plan's text ('' when nothing is left to train), the grid's progress, and the
    checkpoint of every run (a Ctrl-C counts those written)."""

    text: str
    progress: GridProgress
    checkpoints: list[str]
    # what the terminal shows (rnnbench.workflow.console): the study, its config file,
    # Snakemake's --verbose
    study: str = ""
    configfile: str | None = None
    verbose: bool = False

    def start(self, logger: logging.Logger, skip_errors: Iterable[str] = ()) -> None:
        """A run starts (not a dry run): the plan, then a progress line as runs finish and
        each failed job's error paragraph (but those of the rules ``skip_errors``, which print
        their own); Ctrl-C or SIGTERM stops every trainer at once (checkpointed) and ends with
        one line."""
        if self.text:
            print(self.text, file=sys.stderr)
        stop = UserStop(self.checkpoints)
        stop.install(logger)
        logger.addHandler(ProgressHandler(self.progress, stop))
        console.install(logger, self.study, self.configfile, self.verbose, stop)
        logger.addHandler(JobErrorHandler(skip_errors, stop))


def open_session(planned: Sequence, config: dict, *, data_dir: Path, reference_root: Path,
                 cores: int | None, jobs: int | None, notes: Iterable[str],
                 checkpoints: Iterable[str], is_dry_run: Callable[[], bool],
                 logger: logging.Logger, retrain: Iterable[str] = (),
                 replan: Callable[[], Sequence] | None = None,
                 candidates: Sequence = (), study: str = "",
                 config_path: str | None = None, verbose: bool = False) -> Session:
    """The session of the runs ``planned`` to train (grid.Run; resumed runs left out) under
    ``config``: its plan (with ``notes``, one line each, after it) printed at the end of a dry
    run. A device or size this machine cannot run stops here with one paragraph (a failed
    job deletes the outputs it was to replace, and says why only in its log).

    ``jobs``: --jobs of a cluster executor, whose nodes are other machines (no memory or
    device check here); None for local jobs on ``cores``. ``replan``: the runs to train now
    (a tuning's later rungs: the trials promoted so far), which the progress line counts;
    ``candidates``: every run it may name (every trial of every rung), priced for its time
    left."""
    local = not jobs
    memory = machine_memory_bytes() if local else None
    device, max_vocab = config.get("device", "auto"), config["corpus"].get("max_vocab")
    plan = make_plan(planned, data_dir=data_dir, reference_root=reference_root, device=device,
                     cores=cores, max_vocab=max_vocab, jobs=jobs,
                     # this corpus's size (not PTB's, unless it is PTB), from its files now
                     size=plan_size(config["corpus"], data_dir), memory=memory,
                     retrain=set(retrain))
    text = plan.text and plan.text + "".join(f"\n  {n.strip()}" for n in notes if n)
    PlanAtExit(text, is_dry_run).install(logger)
    seconds = plan.seconds
    if candidates:  # the other trials of later rungs too, once promoted
        seconds = {**make_plan(candidates, data_dir=data_dir, reference_root=reference_root,
                               device=device, cores=cores, max_vocab=max_vocab, jobs=jobs,
                               size=plan_size(config["corpus"], data_dir)).seconds, **seconds}
    progress = GridProgress([r.path for r in planned], seconds, plan.workers,
                            upper_bound=any(may_stop_early(r.config) for r in planned),
                            current=replan and (lambda: [r.path for r in replan()]))
    refusal = local and machine_refusal(
        planned, data_dir=data_dir, device=device, memory=memory, max_vocab=max_vocab,
        allow_over_memory=config.get("allow_over_memory", False))
    if refusal:
        print(text, file=sys.stderr)  # the plan names what does not fit
        raise ValueError(refusal)
    return Session(text, progress, list(checkpoints), study, config_path, verbose)
