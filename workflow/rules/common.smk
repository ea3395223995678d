# Wiring only: the study (rnnbench.workflow.pipeline.Study: the config validated, its runs,
# targets, folders and each rule's inputs) and the thin functions that need Snakemake's own
# objects (checkpoints, the rule list, the logger). Logic lives in src/rnnbench.
import json
import os
import re
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
# Rules run `python -m rnnbench.<package>.<module>`; this makes them work from a plain clone too.
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))

from rnnbench.workflow import console, wiring
from rnnbench.workflow.jobs import (FIGURE_CATEGORIES, GRADIENT_FIGURES, SIZE_FIGURES,
                                      data_dir, input_dir, output_dir, pattern)
from rnnbench.workflow.pipeline import Study

# Validates the config, hands the mirror and checksums to download_corpus through the
# environment, refuses another config's study, expands the grid and checks it before any job
# (rnnbench.workflow.pipeline.Study.from_config).
study = Study.from_config(
    config, workflow.basedir, workflow.configfiles, main=workflow.is_main_process,
    # `--report` of a study whose tables are not built stops with one paragraph
    reporting=workflow.is_main_process and any(a.split("=")[0] == "--report" for a in sys.argv),
    warn=logger.warning, info=logger.info)


# Declared so that Snakemake checks them and passes them on to cluster jobs.
envvars:
    "PYTHONPATH",
    "RNNBENCH_MIRROR",


wildcard_constraints:
    study=re.escape(study.name),
    corpus=r"[A-Za-z0-9_-][A-Za-z0-9_.-]*",
    split="train|valid|test",
    experiment=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_.-]+",
    group=r"[A-Za-z0-9_.-]+",
    rung=r"\d+",


def code(rule):
    """A rule's code input: the rnnbench sources its shell command runs, imports included,
    so editing any of them reruns it (rnnbench.workflow.jobs.rule_code)."""
    return lambda wildcards: study.code(workflow.get_rule(rule).shellcmd)


def selection(corpus, experiment, group, rung):
    """The selection file of one rung of one model (the checkpoint select_trials)."""
    return checkpoints.select_trials.get(corpus=corpus, experiment=experiment, group=group,
                                         rung=str(rung)).output


def entrants(wildcards):
    """The trials that enter the rung {rung} of {corpus}/{experiment}/{group}."""
    key = (wildcards.corpus, wildcards.experiment, wildcards.group)
    return study.entrants(key, int(wildcards.rung), selection)


def entrant_files(wildcards):
    """train.json and history.csv of every entrant: all that a selection reads."""
    return study.trial_files(entrants(wildcards))


def selection_params(wildcards):
    """Flags of `rnnbench.experiment.tuning select` for one rung of one model."""
    return study.selection_flags(wildcards, entrants(wildcards))


def final_selection(wildcards):
    """A final run's input: its model's last selection (none for other runs)."""
    return study.final_selection(wildcards, selection)


def all_selections(wildcards):
    """Every rung's selection of every model, or the published trials.csv of each."""
    return study.all_selections(selection)


def trial_publications(wildcards):
    """The published copy of every trial the tuning trains (publish_trials)."""
    return study.trial_copies(selection)


def model_trial_publications(wildcards, first=True):
    """The published copies of a final run's tuning trials: its first rung's, or the later."""
    return study.trial_copies(selection, study.published_run(wildcards), first)


def run_inputs():
    """The per-run files that tables are built from (every rule's fixed inputs under
    results/runs/). Targets themselves: Snakemake does not rebuild a missing input of an
    up-to-date table, so a deleted eval.json would otherwise never come back."""
    return sorted({str(f) for r in workflow.rules for f in r.input
                   if isinstance(f, str) and f.startswith("results/runs/") and "{" not in f})


def all_targets():
    """Tables and figures of the whole config, and the run files they come from."""
    return study.targets(run_inputs())


# The session: the plan, the refusal of what this machine cannot run, the progress line (the
# main process only; none for `source: reference`).
SESSION = study.open_session(
    cores=workflow.resource_settings.cores,
    # --jobs of a cluster executor (its nodes are other machines); a local one's is --cores
    jobs=workflow.resource_settings.nodes, logger=logger, is_dry_run=lambda: workflow.dryrun,
    verbose=workflow.output_settings.verbose,
    config_path=workflow.configfiles[-1] if workflow.configfiles else None)
if SESSION:
    # Snakemake's job blocks off the terminal; a dry run lists its jobs as Snakemake does
    console.quiet(logger, workflow.output_settings.verbose, lambda: workflow.dryrun)


def start_session(logger):
    """At the start of a run (onstart): claim the study, start the session."""
    study.start(logger, SESSION)
