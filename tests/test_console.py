"""What the terminal shows (rnnbench.workflow.console): Snakemake's job blocks kept off the
console by their LogEvent, one line per finished job, the results at the end."""

from __future__ import annotations

import io
import logging

from rnnbench.workflow.console import EndLine, JobLines, QuietJobs, job_name, results_line, wanted


def _record(msg: str, level: int = logging.INFO, **extra) -> logging.LogRecord:
    record = logging.LogRecord("snakemake", level, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_job_blocks_and_step_counts_are_filtered_but_errors_and_warnings_are_not():
    quiet = QuietJobs()
    for event in ("job_info", "shellcmd", "job_finished", "progress", "run_info",
                  "job_started", "workflow_started"):
        assert not quiet.filter(_record("x", event=event)), event
    assert not quiet.filter(_record("Select jobs to execute..."))
    assert not quiet.filter(_record("[Mon Dec  7 23:12:03 2026]"))
    assert quiet.filter(_record("boom", logging.ERROR, event="job_error"))
    assert quiet.filter(_record("careful", logging.WARNING))
    assert quiet.filter(_record("Complete log(s): .snakemake/log/x.log"))
    # a dry run keeps Snakemake's list of jobs
    assert QuietJobs(is_dry_run=lambda: True).filter(_record("x", event="job_info"))
    assert not wanted(True) and not wanted(False, {"RNNBENCH_CONSOLE": "snakemake"})
    assert wanted(False, {})


def test_a_finished_job_gets_one_line_naming_its_rule_and_run():
    out = io.StringIO()
    lines = JobLines(stream=out)
    lines.emit(_record(" Rule: evaluate_model", event="job_info", jobid=7,
                       rule_name="evaluate_model",
                       wildcards={"corpus": "ptb", "experiment": "quick", "run": "lstm-h32-l1-s1"}))
    assert out.getvalue() == ""
    lines.emit(_record("Finished", event="job_finished", job_id=7))
    assert out.getvalue().startswith("[rnnbench] done  evaluate_model quick/lstm-h32-l1-s1 (")
    assert job_name({"figure": "sizes"}) == "sizes" and job_name({}) == ""


def test_the_results_line_comes_only_after_a_run_without_errors():
    out = io.StringIO()
    end = EndLine(results_line("quick", "config/quick.yaml"), stream=out)
    end.report()
    assert "results/studies/quick/tables/" in out.getvalue()
    assert "snakemake --configfile config/quick.yaml --report" in out.getvalue()
    failed, out2 = EndLine("x", stream=io.StringIO()), None
    failed.emit(_record("boom", logging.ERROR))
    out2 = failed.stream
    failed.report()
    assert out2.getvalue() == ""
