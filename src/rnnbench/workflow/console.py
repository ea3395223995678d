"""What a Snakemake run shows on the terminal (no torch; Snakemake's main process only).

By default a person sees the plan, one line when a training job starts (its run and log) and
one when any job ends (its rule and run, and how long it took), the grid's progress line with
the time left after each finished run (rnnbench.workflow.progress), errors, and at the end
where the tables, figures and report are. Snakemake's own block per job (rule, input, output,
log, wildcards, resources: several lines of a few hundred characters each) and its step
counter are kept out of the terminal by a logging filter on its console handler, read from the
event each record carries (Snakemake's logger interface, ``LogEvent``), never by parsing text.
They stay in Snakemake's log file (``.snakemake/log/``, named at the end of the run);
``--verbose``, or ``RNNBENCH_CONSOLE=snakemake`` in the environment, shows them on the
terminal too. A dry run keeps Snakemake's list of jobs.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from typing import TextIO

PREFIX = "[rnnbench]"
# Snakemake's records that the default terminal leaves out (its job blocks, step counter,
# resources); what is left: warnings, errors, its own few lines of start and end.
HIDDEN = {"job_info", "group_info", "shellcmd", "job_finished", "job_started", "progress",
          "resources_info", "run_info", "workflow_started"}
# Snakemake's plain info lines that only make sense beside its job blocks.
NOISE = ("Select jobs to execute", "Execute ", "Assuming unrestricted shared filesystem",
         "Using shell:", "Provided cores:", "Rules claiming more threads", "Job stats:",
         "Building DAG of jobs", "Nothing to be done")


def wanted(verbose: bool, env: dict | None = None) -> bool:
    """Whether the quiet console applies: not with ``--verbose`` or RNNBENCH_CONSOLE=snakemake."""
    env = os.environ if env is None else env
    return not verbose and env.get("RNNBENCH_CONSOLE", "") != "snakemake"


class QuietJobs(logging.Filter):
    """Keeps Snakemake's per-job blocks and step counter off a console handler (not in a dry
    run, which is its list of jobs: ``is_dry_run``, asked at each record, since Snakemake knows
    it only once the workflow is parsed)."""

    def __init__(self, is_dry_run=lambda: False) -> None:
        super().__init__()
        self.is_dry_run = is_dry_run

    def filter(self, record: logging.LogRecord) -> bool:
        if self.is_dry_run():
            return True
        if str(getattr(record, "event", "")).removeprefix("LogEvent.").lower() in HIDDEN:
            return False
        if record.levelno <= logging.INFO and not getattr(record, "event", None):
            message = str(record.msg)
            # a bare timestamp line, "[Mon Dec  7 23:12:03 2026]", that heads each job block
            if message.startswith("[") and message.endswith("]") and message[1:4].isalpha():
                return False
            return not message.lstrip().startswith(NOISE) and message.strip() != ""
        return True


class JobLines(logging.Handler):
    """One line when a job ends, naming the rule and the run, and how long it took."""

    def __init__(self, stop=None, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stop, self.stream = stop, stream  # stop: a progress.UserStop, quiet after it
        self.started: dict[int, tuple[str, str, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if self.stop is not None and self.stop.stopped:
            return
        event = str(getattr(record, "event", "")).removeprefix("LogEvent.").lower()
        if event == "job_info":
            rule = getattr(record, "rule_name", None) or "?"
            name = job_name(getattr(record, "wildcards", None) or {})
            # no line yet: a training job's start line (with its log) comes from progress,
            # the others are short, and their end line says how long they took
            self.started[getattr(record, "jobid", -1)] = (rule, name, time.monotonic())
        elif event == "job_finished":
            rule, name, t0 = self.started.pop(getattr(record, "job_id", -1), ("?", "", None))
            took = f" ({_seconds(time.monotonic() - t0)})" if t0 is not None else ""
            self._print(f"{PREFIX} done  {rule}{' ' + name if name else ''}{took}")

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)


def job_name(wildcards: dict) -> str:
    """``quick/lstm-h32-l1-s1`` from a job's wildcards (what names its run), else ''."""
    keys = ("experiment", "run", "published", "trial", "group", "rung", "figure", "split")
    parts = [str(wildcards[k]) for k in keys if k in wildcards]
    return "/".join(parts)


def _seconds(seconds: float) -> str:
    """``4 s``, ``3 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def results_line(study: str, configfile: str | None) -> str:
    """Where a finished run's results are, and the command of its report."""
    config = f" --configfile {configfile}" if configfile else ""
    return (f"{PREFIX} results: tables in results/studies/{study}/tables/ (summary.md, "
            f"comparisons.md), figures in results/studies/{study}/figures/; the report: "
            f"snakemake{config} --report results/studies/{study}/report.html")


class EndLine(logging.Handler):
    """Prints the results line at exit, after a run (not a dry run) that logged no error."""

    def __init__(self, text: str, stream: TextIO | None = None) -> None:
        super().__init__(level=logging.ERROR)
        self.text, self.stream, self.failed = text, stream, False

    def emit(self, record: logging.LogRecord) -> None:
        self.failed = True

    def report(self) -> None:
        if not self.failed:
            print(self.text, file=self.stream or sys.stderr, flush=True)


def quiet(logger: logging.Logger, verbose: bool, is_dry_run=lambda: False) -> None:
    """Keep Snakemake's job blocks off the console handlers of ``logger`` (unless ``verbose``
    or RNNBENCH_CONSOLE=snakemake, or in a dry run): called before the run starts, so that its
    header and job table go too."""
    if not wanted(verbose):
        return
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and \
                not isinstance(handler, logging.FileHandler):
            handler.addFilter(QuietJobs(is_dry_run))


def install(logger: logging.Logger, study: str, configfile: str | None, verbose: bool,
            stop=None) -> None:
    """When the run starts: a line per job start and end (with the quiet console) and, at exit,
    the results line (not after a user stop: ``stop``, a progress.UserStop)."""
    if wanted(verbose):
        logger.addHandler(JobLines(stop))
    end = EndLine(results_line(study, configfile))
    logger.addHandler(end)
    atexit.register(lambda: None if stop is not None and stop.stopped else end.report())
