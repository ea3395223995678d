"""What the terminal shows while the grid runs, and how a user stops it (no torch: Snakemake
imports this module in its main process).

- ``GridProgress``, ``ProgressHandler``: when a training job starts, the path of its log (the
  trainer's progress, rnnbench.training.train); when a run is done, one line on stderr::

      [rnnbench] 5/72 runs done, about 3.1 hours left (runs took 1.2x the plan's estimate)

  the plan's per-run estimates (rnnbench.workflow.plan) of the runs left, scaled by how long this
  session's finished runs took against their own estimates.
- ``UserStop``: Ctrl-C or SIGTERM to Snakemake. Snakemake alone waits for running jobs to end
  (SIGTERM) or leaves them to the terminal's SIGINT; this sends every job SIGTERM at once (a
  trainer checkpoints at its next minibatch and exits 75, rnnbench.training.train), hides the job
  errors that follow from the console (Snakemake's log file keeps them) and ends with
  ``stopped; N runs checkpointed; rerun the same command to resume``.
- ``JobErrorHandler``: a job that fails shows, under Snakemake's ``Error in rule ...`` block,
  the error paragraph of its log (:func:`error_paragraph`): the reason a user can fix (a split
  too short, a full disk), not only ``CalledProcessError ... check log``.
- ``PlanAtExit``: a dry run lists every job (thousands of lines for the default grid); the
  plan is printed after that list, so that it does not scroll away.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TextIO

from rnnbench.workflow.plan import about, duration

PREFIX = "[rnnbench]"


def time_left(planned: Iterable[float], ratio: float, workers: int) -> float:
    """Wall seconds of the runs left: their planned seconds x ``ratio``, spread over
    ``workers`` (a run is not split: the longest one bounds it from below)."""
    left = [s * ratio for s in planned]
    return max(sum(left) / max(workers, 1), max(left, default=0.0))


def train_seconds(run_dir: Path) -> float | None:
    """The training seconds a finished run recorded (train.json), if readable."""
    try:
        value = json.loads((run_dir / "train.json").read_text()).get("train_seconds")
        return float(value) if value is not None else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


class GridProgress:
    """Runs done out of all, and the time left, of one grid (runs by folder).

    ``current``: the runs of the plan now, asked again at every line. A tuning's later rungs
    train the trials the rung before promoted, known only once it has selected: the runs of
    the plan are those, not the first points of the rung that the plan counted at the start.
    """

    def __init__(self, runs: Iterable[str], planned: Mapping[str, float], workers: int,
                 upper_bound: bool = False,
                 current: Callable[[], Iterable[str]] | None = None) -> None:
        # absolute: Snakemake may leave its --directory before the last line is printed
        self.base = Path.cwd()
        self.current = current
        self.runs = [self.base / r for r in runs]
        self.planned = {self.base / k: v for k, v in planned.items()}
        self.workers = workers
        self.upper_bound = upper_bound  # runs may stop early (the plateau schedule): "at most"
        self.before = {r for r in self.runs if self._done(r)}  # finished in an earlier session
        self.reported = len(self.before)

    def _runs(self) -> list[Path]:
        """The runs of the plan now."""
        return self.runs if self.current is None else [self.base / r for r in self.current()]

    @staticmethod
    def _done(run: Path) -> bool:
        return (run / "train.json").exists()

    def ratio(self, done: Iterable[Path]) -> float | None:
        """Measured / planned training seconds of this session's finished runs."""
        pairs = [(train_seconds(r), self.planned[r]) for r in done
                 if r not in self.before and r in self.planned]
        pairs = [(m, p) for m, p in pairs if m is not None and p > 0]
        if not pairs:
            return None
        return sum(m for m, _ in pairs) / sum(p for _, p in pairs)

    def line(self) -> str:
        """``[rnnbench] 5/72 runs done, about 3.1 hours left (...)``."""
        runs = self._runs()
        done = [r for r in runs if self._done(r)]
        text = f"{PREFIX} {len(done)}/{len(runs)} runs done"
        left = [self.planned.get(r) for r in runs if r not in done]
        if not left or None in left:  # all done, or no estimate (no reference run)
            return text
        ratio = self.ratio(done)
        seconds = time_left(left, ratio or 1.0, self.workers)
        why = ("the plan's estimate" if ratio is None
               else f"runs took {ratio:.1f}x the plan's estimate")
        left_text = f"at most {duration(seconds)}" if self.upper_bound else about(seconds)
        return f"{text}, {left_text} left ({why})"

    def update(self) -> str | None:
        """The line, when more runs are done than last reported; else None."""
        done = sum(self._done(r) for r in self._runs())
        if done <= self.reported:
            return None
        self.reported = done
        return self.line()


def start_line(wildcards: Mapping[str, str], logs: list[str]) -> str | None:
    """``[rnnbench] training quick/lstm-h32-l1-s1: log results/logs/...``, for a job that
    starts (its log holds the trainer's progress)."""
    if not logs:
        return None
    name = "/".join(wildcards[k] for k in ("experiment", "run") if k in wildcards)
    return f"{PREFIX} training {name}: log {logs[0]}"


class ProgressHandler(logging.Handler):
    """Snakemake's log records in, the grid's lines out: where a training job logs, when it
    starts; the runs done and the time left, when a job finishes. Printed from Snakemake's
    own logging call, after its console line, so that no line lands inside one of its."""

    def __init__(self, grid: GridProgress, stop: UserStop | None = None,
                 rule: str = "train_model", stream: TextIO | None = None) -> None:
        super().__init__()
        self.grid, self.stop, self.rule, self.stream = grid, stop, rule, stream

    def emit(self, record: logging.LogRecord) -> None:
        if self.stop is not None and self.stop.stopped:
            return
        # Snakemake's logger-plugin events (snakemake_interface_logger_plugins.LogEvent)
        event = str(getattr(record, "event", ""))
        if event == "job_info" and getattr(record, "rule_name", None) == self.rule:
            line = start_line(getattr(record, "wildcards", None) or {},
                              list(getattr(record, "log", None) or []))
        elif event == "job_finished":
            line = self.grid.update()
        else:
            return
        if line is not None:
            print(line, file=self.stream or sys.stderr, flush=True)


def error_paragraph(log: str, limit: int = 20) -> str:
    """What a failed job's ``log`` says went wrong: its ERROR lines; else the last exception
    of a traceback (its type and message); else its last ``limit`` lines (a SystemExit's
    paragraph, a crash without a traceback)."""
    lines = log.rstrip().splitlines()
    errors = [line for line in lines if " ERROR " in line]
    if errors:
        return "\n".join(errors)
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if starts:  # after the last frame (indented lines) of the last traceback: its exception
        body = lines[starts[-1] + 1:]
        last_frame = max((i for i, line in enumerate(body) if line.startswith(" ")), default=-1)
        if tail := [line for line in body[last_frame + 1:] if line.strip()]:
            return "\n".join(tail[-limit:])
    return "\n".join(lines[-limit:])


def job_error_text(rule: str, logs: Iterable[str]) -> str | None:
    """``[rnnbench] {rule} failed: ...`` with the error paragraph of its first readable log."""
    for log in logs:
        path = Path(str(log).split(" (")[0])  # Snakemake may annotate a path: "x.log (...)"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if text.strip():
            return f"{PREFIX} {rule} failed ({path}):\n{error_paragraph(text)}"
    return None


class JobErrorHandler(logging.Handler):
    """Snakemake's job errors in, each failed job's error paragraph out (stderr), printed
    after Snakemake's own error block. One place for every rule: the rules' shell commands
    stay as they are (a changed command makes Snakemake rerun every job of its rule, trained
    runs included). ``skip``: rules whose command prints its paragraph already (corpus.smk's,
    train_model: this attempt's lines of an appended log). Quiet after a user stop."""

    def __init__(self, skip: Iterable[str] = (), stop: UserStop | None = None,
                 stream: TextIO | None = None) -> None:
        super().__init__()
        self.skip, self.stop, self.stream = set(skip), stop, stream

    def emit(self, record: logging.LogRecord) -> None:
        if str(getattr(record, "event", "")) != "job_error":
            return
        rule = getattr(record, "rule_name", None)
        if rule in self.skip or (self.stop is not None and self.stop.stopped):
            return
        text = job_error_text(str(rule), list(getattr(record, "log", None) or []))
        if text:
            print(text, file=self.stream or sys.stderr, flush=True)


def stop_line(checkpointed: int) -> str:
    """The one line a user stop ends with."""
    runs = "run" if checkpointed == 1 else "runs"
    return f"stopped; {checkpointed} {runs} checkpointed; rerun the same command to resume"


def signal_children(signum: int = signal.SIGTERM) -> int:
    """Send ``signum`` to every descendant of this process (each job's shell and program);
    return how many were signalled."""
    import psutil  # a dependency of Snakemake, the only importer of this module

    sent = 0
    for child in psutil.Process().children(recursive=True):
        try:
            child.send_signal(signum)
            sent += 1
        except psutil.Error:  # ended in the meantime
            pass
    return sent


class UserStop(logging.Filter):
    """Ctrl-C or SIGTERM: stop every job now, keep the console quiet, end with one line."""

    def __init__(self, checkpoints: Iterable[str], stream: TextIO | None = None) -> None:
        super().__init__()
        # absolute: Snakemake has left its --directory when the exit handler counts them
        self.checkpoints = [Path(c).absolute() for c in checkpoints]
        self.stream = stream
        self.since = time.time() - 1  # a checkpoint of this invocation is newer (file times
        # may round down)
        self.stopped = False
        self.reported = False

    def install(self, logger: logging.Logger) -> None:
        """Handle SIGINT and SIGTERM (then pass them on to the handlers before), filter the
        console handlers of ``logger``, report at exit."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._chain(signal.getsignal(signum)))
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and \
                    not isinstance(handler, logging.FileHandler):
                handler.addFilter(self)
        atexit.register(self.report)

    def _chain(self, previous) -> Callable:
        def on_signal(signum, frame):
            if not self.stopped:
                self.stopped = True
                signal_children(signal.SIGTERM)  # the trainers handle it: checkpoint, exit 75
            if callable(previous):
                previous(signum, frame)  # Snakemake's: cancel (SIGINT) or drain (SIGTERM)
            elif previous == signal.SIG_DFL:  # what the signal did before: end the process
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
        return on_signal

    def filter(self, record: logging.LogRecord) -> bool:
        """After a stop, the console shows no more of Snakemake's records: the jobs' errors
        are the stop itself (exit 75, or killed). Snakemake's log file keeps them."""
        return not self.stopped

    def checkpointed(self) -> int:
        """The runs of this config that this invocation checkpointed (their checkpoint written
        since it started; older ones, of earlier stops, are not this stop's)."""
        return sum(c.exists() and c.stat().st_mtime >= self.since for c in self.checkpoints)

    def report(self) -> None:
        """Print the stop line once, if a stop happened."""
        if self.stopped and not self.reported:
            self.reported = True
            print(stop_line(self.checkpointed()), file=self.stream or sys.stderr, flush=True)


class PlanAtExit(logging.Handler):
    """Prints the plan when a dry run ends, unless Snakemake logged an error."""

    def __init__(self, text: str, is_dry_run: Callable[[], bool],
                 stream: TextIO | None = None) -> None:
        super().__init__(level=logging.ERROR)
        self.text, self.is_dry_run, self.stream = text, is_dry_run, stream
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        self.failed = True

    def install(self, logger: logging.Logger) -> None:
        """Watch ``logger`` for errors and print at exit."""
        logger.addHandler(self)
        atexit.register(self.report)

    def report(self) -> None:
        """The plan, after a dry run that succeeded."""
        if self.text and self.is_dry_run() and not self.failed:
            print(self.text, file=self.stream or sys.stderr, flush=True)
