# Wiring only: config validation, the run list, input functions. Logic lives in src/rnnbench.
import json
import re
import os
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
# Rules run `python -m rnnbench.<package>.<module>`; this makes them work from a plain clone too.
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))

from rnnbench.experiment.grid import check_streams, expand as expand_grid, run_args
from rnnbench.data.sources import corpus_tokens, source_inputs
from rnnbench.config import TRAINING_KEYS
from rnnbench.experiment.tuning import Tuning, selected_config
from rnnbench.experiment.schema import check_config
from rnnbench.experiment import wiring

check_config(config, Path(workflow.basedir) / "config/schema/config.schema.yaml")

# The mirror says where the corpus comes from, not what it is (the SHA-256 does), so it is
# handed to download_corpus through the environment rather than as a param: switching
# mirrors must not rerun the downloads and, through them, every training run.
os.environ["RNNBENCH_MIRROR"] = config.get("mirror") or ""
# The SHA-256 only guards the content, so it travels the same way (download_corpus is a
# local rule, so no envvars entry is needed): adding the right checksum to a config must not
# retrain anything. Instead, files already downloaded are checked against it here, before
# any job (6 MB for PTB), and a mismatch stops the run with one paragraph.
from rnnbench.data.download import verify_downloaded

for _split, _spec in config["corpus"]["files"].items():
    os.environ[f"RNNBENCH_SHA256_{_split}"] = _spec.get("sha256") or ""
verify_downloaded(config["corpus"]["files"], Path(f"results/data/{config['corpus']['name']}/raw"))


# Declared so that Snakemake checks them and passes them on to cluster jobs.
envvars:
    "PYTHONPATH",
    "RNNBENCH_MIRROR",


CORPUS = config["corpus"]["name"]
# The study: its tables, figures and aggregate logs live in results/studies/{study}/, so a
# report or table of one config never shows another config's results.
from rnnbench.experiment.study import check_report_ready, study_name

STUDY = study_name(config, workflow.configfiles)
# One config per study: results/studies/{study}/study.json names the config files that made it
# and the SHA-256 of their corpus, recipes and experiments (written when a run starts). Another
# config that would write the same study (config/quick.yaml and other/quick.yaml) stops here
# with one paragraph; the same files edited (a grown grid), or the same content elsewhere, go on.
from rnnbench.experiment.study import claim as claim_study, owner_record, owner_refusal

STUDY_OWNER = owner_record(config, workflow.configfiles)
if workflow.is_main_process and (_refusal := owner_refusal(STUDY, f"results/studies/{STUDY}",
                                                           STUDY_OWNER)):
    raise ValueError(_refusal)
config["study"] = STUDY  # the report's landing page names it (workflow/report/workflow.rst)
# `--report` of a study whose tables are not built stops here with one paragraph.
REPORTING = workflow.is_main_process and any(a.split("=")[0] == "--report" for a in sys.argv)
if REPORTING:
    check_report_ready(STUDY, [f"results/studies/{STUDY}/tables/runs.csv"])
# `source: reference` builds the tables from the committed results/reference/ (no training).
FROM_REFERENCE = config.get("source", "runs") == "reference"
PUBLISHED = wiring.experiments_with(config, "published")
# Experiments compared with a published one (`baseline:`, rnnbench.analysis.baseline), and the
# published runs they are compared with (a baseline without any stops here, named).
BASELINES = wiring.experiments_with(config, "baseline")
BASELINE_DIRS = wiring.baseline_dirs(BASELINES)
# Publish the runs' small files to results/reference/ (by default when an experiment has a
# published number to compare with).
PUBLISH = config.get("publish", bool(PUBLISHED))
# The effective context's settings (context.smk; None: not measured)
from rnnbench.diagnostics.context_stats import context_settings

CONTEXT = context_settings(config.get("context", True))
# What publish_run writes for each run (the effective context's files where it is measured)
PUBLISHED_FILES = [
    "train.json", "eval.json", "history.csv", "grad_stats.csv", "spectra.csv",
    "grad_bins.csv", "grad_quantiles.csv", "gradients.csv", "decay.csv", "gradients.json",
    *(["context.csv", "context.json"] if CONTEXT else []),
]
# Total-parameter budgets need the vocabulary size: from stats.json, or a known corpus's.
from rnnbench.model.params import corpus_vocab

RUNS, SKIPPED = expand_grid(
    config, corpus_vocab(config["corpus"], f"results/data/{CORPUS}/stats.json")
)
# Experiments marked `later: true`: planned and priced, trained only with `run_later: true`.
RUNS, LATER = wiring.split_later(RUNS, config)
# A tuned experiment's trial runs (rnnbench.experiment.tuning) train and are ranked on validation
# only: no evaluation, no gradient measurements, not in the tables of runs.
TRIALS = [r for r in RUNS if r.role == "trial"]
RUNS = [r for r in RUNS if r.role != "trial"]
if FROM_REFERENCE:
    TRIALS = []
    # Only what is published: a reproduction still running elsewhere leaves runs out, said.
    RUNS, _left_out = wiring.published_runs(RUNS)
    if _left_out:
        print(_left_out, file=sys.stderr)
# Published files the tables and comparisons read: a truncated one stops here, named.
from rnnbench.io import first_bad_json

_bad = first_bad_json(
    [f"{d}/{n}" for n in ("train.json", "eval.json")
     for d in [f"results/reference/{r.experiment}/{r.run_id}" for r in RUNS if FROM_REFERENCE]
     + BASELINE_DIRS]
)
if _bad:
    raise ValueError(_bad)
# Every run's minibatches must fit the corpus's splits (a perplexity over no tokens is
# undefined): checked here, before any job, from stats.json (only when it was counted from
# the files configured now) or a known corpus's counts.
check_streams(RUNS + TRIALS, corpus_tokens(config["corpus"], f"results/data/{CORPUS}"), CORPUS)
# <unk> in valid/test that train never has makes every perplexity that of an untrained
# output: said before any job, from stats.json of the files configured now (a first run's
# tokenize job says it as it ends).
if workflow.is_main_process and not FROM_REFERENCE:
    from rnnbench.data.sources import unk_warnings

    for _warning in unk_warnings(config["corpus"], f"results/data/{CORPUS}"):
        logger.warning(f"WARNING ({CORPUS}): {_warning}")
RUN_BY_KEY = {(r.corpus, r.experiment, r.run_id): r for r in RUNS + TRIALS}
# A report says how many of the config's runs its tables hold and names the missing ones (a
# grid grown since they were built): the landing page reads this from the config
# (workflow/report/workflow.rst; a report's text sees only snakemake.config), and the terminal
# says it too.
if REPORTING:
    from rnnbench.experiment.study import report_status, report_status_line

    config["report_status"] = report_status([f"{r.experiment}/{r.run_id}" for r in RUNS],
                                            f"results/studies/{STUDY}/tables/runs.csv")
    if _line := report_status_line(STUDY, config["report_status"]):
        print(_line, file=sys.stderr)
for s in SKIPPED:
    logger.info(f"skipping {s.experiment}/{s.run_id}: {s.reason}")


wildcard_constraints:
    study=re.escape(STUDY),
    corpus=r"[A-Za-z0-9_-][A-Za-z0-9_.-]*",
    split="train|valid|test",
    experiment=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_.-]+",
    group=r"[A-Za-z0-9_.-]+",
    rung=r"\d+",


def run_of(wildcards):
    """The grid point behind {corpus}/{experiment}/{run}."""
    return RUN_BY_KEY[(wildcards.corpus, wildcards.experiment, wildcards.run)]


def train_args(wildcards, input):
    """Training flags of one run (its whole configuration); a tuned experiment's final run
    takes the point its model's last rung selected (rnnbench.experiment.tuning)."""
    run = run_of(wildcards)
    if run.role != "final":
        return run_args(run.config)
    # a config that publishes may not rest its answer on an edge of the search space
    tuning = tuning_of(run.experiment)
    return run_args(selected_config(run, input.selection, tuning, refuse_edge=PUBLISH))


def tuning_of(experiment):
    """The experiment's tuning (search space, trials, rungs, trial seed)."""
    spec = config["experiments"][experiment]
    return Tuning.from_spec(experiment, spec["tuning"], TRAINING_KEYS, spec["seeds"])


def resume_priority(wildcards):
    """train_model's priority: 5 for a run with a checkpoint (it resumes first), else 0;
    evaluations and measurements (10) still come before either."""
    run = run_of(wildcards)
    saved = Path(f"results/checkpoints/{run.corpus}/{run.experiment}/{run.run_id}.pt")
    return 5 if saved.exists() else 0


def uses_gpu(wildcards):
    """1 when the run may use CUDA (device auto or cuda), else 0."""
    return 0 if run_of(wildcards).config.device == "cpu" else 1


def train_mem_mb(wildcards):
    """Rough peak memory (MB) of a training job."""
    return wiring.train_mem_mb(run_of(wildcards).config)


def train_runtime(wildcards, attempt):
    """Minutes for a training job; grows with each retry."""
    return wiring.train_runtime(run_of(wildcards).config, attempt)


def eval_args(wildcards):
    """Evaluation flags of an experiment (`eval_weights`, `stream_test`)."""
    return wiring.eval_flags(config["experiments"][wildcards.experiment])


def input_dir(wildcards, input):
    """Folder of a rule's first input (the study's tables folder, for the plots)."""
    return os.path.dirname(input[0])


def output_dir(wildcards, output):
    """Folder of a rule's first output (the study's tables folder, for the collectors)."""
    return os.path.dirname(output[0])


def data_dir(wildcards, input):
    """Folder of the tokenized corpus, from the rule's `data` input files."""
    return os.path.dirname(input.data[0])


def corpus_url(wildcards):
    """URL or path of one split's file."""
    return config["corpus"]["files"][wildcards.split]["url"]


def corpus_source(wildcards):
    """A local corpus file, as download_corpus's input (editing it reruns the copy); none
    for a network URL."""
    return source_inputs(corpus_url(wildcards))


def run_dirs(runs=None):
    """Folder of every run (or of ``runs``): its training outputs, or its published reference
    copy (with `source: reference`, or a run resumed from it)."""
    return wiring.run_dirs(RUNS if runs is None else runs, FROM_REFERENCE, resumed=RESUMED)


def run_files(name, published=None):
    """One file of every run of the config (``published``: its name in a published copy)."""
    copy = f"{wiring.REFERENCE}/"
    return [f"{d}/{published if published and d.startswith(copy) else name}"
            for d in run_dirs()]


def reference_files():
    """What publish_run, publish_reference and publish_trials write (none when reading the
    reference)."""
    if FROM_REFERENCE or not PUBLISH:
        return []
    tables = ["results/reference/reference.md"] if PUBLISHED else []
    trials = [f"results/reference/{e}/trials.csv" for e in TUNED]
    runs = [f"results/reference/{r.experiment}/{r.run_id}/train.json" for r in RUNS]
    # every rung-0 trial (the later rungs' come with publish_trials, once they are known)
    first = [f"{wiring.published_dir(t)}/train.json" for t in TRIALS if t.rung == 0]
    return runs + first + PROVENANCE_FILES + tables + trials


# each experiment's provenance.json (publish_reference)
PROVENANCE_FILES = [f"results/reference/{e}/provenance.json"
                    for e in dict.fromkeys(r.experiment for r in RUNS)]



def published_run_inputs(wildcards):
    """The files of one run that publish_run copies or reduces (steps.csv.gz to its bins and
    quantiles), and its effective context where the config measures it."""
    run = published_run(wildcards)
    names = ["train.json", "eval.json", "history.csv", "steps.csv.gz", "grad_stats.csv",
             "spectra.csv", "gradients.csv", "decay.csv", *(["context.json"] if CONTEXT else [])]
    return {name.split(".")[0]: f"{run.path}/{name}" for name in names}


def model_trial_publications(wildcards, first=True):
    """The published copy of every trial of a final run's tuning: those of its first rung
    (known from the start), or of the later ones (known once the rung before has selected)."""
    run = published_run(wildcards)
    key = (run.corpus, run.experiment, run.group)
    if run.role != "final" or key not in TRIAL_GROUPS:
        return []
    rungs = [r for r in sorted(TRIAL_GROUPS[key]) if (r == 0) == first]
    return [f"{wiring.published_dir(t)}/{name}" for rung in rungs
            for t in entrants_of(*key, rung) for name in wiring.TRIAL_FILES]


def run_inputs():
    """The per-run files that tables are built from (every rule's fixed inputs under
    results/runs/). Targets themselves: Snakemake does not rebuild a missing input of an
    up-to-date table, so a deleted eval.json would otherwise never come back."""
    return sorted({str(f) for r in workflow.rules for f in r.input
                   if isinstance(f, str) and f.startswith("results/runs/") and "{" not in f})


def all_targets():
    """Tables and figures of the whole config, and the run files they come from."""
    return [
        *run_inputs(),
        *([] if FROM_REFERENCE else [STATS]),
        f"results/studies/{STUDY}/tables/runs.csv",
        f"results/studies/{STUDY}/tables/summary.csv",
        f"results/studies/{STUDY}/tables/summary.md",
        f"results/studies/{STUDY}/tables/comparisons.md",
        f"results/studies/{STUDY}/figures/model_comparison.png",
        *([f"results/studies/{STUDY}/tables/precision.md"] if BASELINES else []),
        # the report's tables (a report item must be a target to be made again)
        *[f"results/studies/{STUDY}/tables/{name}.html" for name in
          ("summary", "comparisons", "learning_curves", *(["precision"] if BASELINES else []))],
        *FIGURES,
        *GRADIENT_TARGETS,
        *CONTEXT_TARGETS,
        *SIZE_TARGETS,
        *TUNING_TARGETS,
        *reference_files(),
    ]


# --- Tuning (tuning.smk): the trials of each model, per rung. ---
# (corpus, experiment, group) -> {rung: [trial Run, ...]} in point order
TRIAL_GROUPS = wiring.trial_groups(TRIALS)
# Tuned experiments: with `source: reference`, their published trials.csv stands in for the
# trials (which are not published run by run).
TUNED = [name for name, spec in config["experiments"].items() if spec.get("tuning")]
if FROM_REFERENCE:
    TUNED = [e for e in TUNED if Path(f"results/reference/{e}/trials.csv").exists()]
TUNING_TARGETS = (
    [f"results/studies/{STUDY}/tables/trials.csv", f"results/studies/{STUDY}/figures/tuning_curve.png",
     f"results/studies/{STUDY}/tables/trials.html"]
    if TUNED
    else []
)


# --- Resuming from the published runs: a fresh checkout (a replaced machine, a new worktree at
# the experiment's commit) takes every run it has not trained itself from its committed copy
# in results/reference/ when that copy was trained from this very commit with the same
# configuration (rnnbench.experiment.wiring.resumed_runs), so only unpublished runs train.
RESUMED, STALE = set(), []
if PUBLISH and not FROM_REFERENCE:
    RESUMED, STALE = wiring.resumed_runs(
        RUNS + TRIALS, wiring.training_commit(), tuple(PUBLISHED_FILES),
        {e: set(tuning_of(e).space) for e in TUNED})

# --- Identity (rnnbench.experiment.identity): a run trained here with another configuration, or
# a corpus copy of another local file, is marked out of date before any job; the plan says so.
from rnnbench.experiment import identity

# Checked in the main process only (a cluster job re-parses the workflow: it would read every
# train.json and hash the corpus again for nothing).
CHECK_IDENTITY = workflow.is_main_process and not FROM_REFERENCE
CHANGED = identity.changed_runs(
    RUNS + TRIALS, {e: set(tuning_of(e).space) for e in TUNED}) if CHECK_IDENTITY else {}
CHANGED_SOURCES = identity.changed_sources(
    config["corpus"]["files"], f"results/data/{CORPUS}/raw") if CHECK_IDENTITY else {}
# A missing intermediate file is not made again while what was made from it is up to date, so
# a changed copy sets aside stats.json too, a target: the corpus is then copied and tokenized
# anew, and every run on it trains again (its token files are updated inputs).
STATS = f"results/data/{CORPUS}/stats.json"
if workflow.is_main_process:
    identity.mark({**CHANGED, **CHANGED_SOURCES,
                   **({STATS: next(iter(CHANGED_SOURCES.values()))} if CHANGED_SOURCES else {})},
                  [f"{r.path}/train.json" for r in RUNS + TRIALS] + [STATS]
                  + [f"results/data/{CORPUS}/raw/{s}.txt" for s in config["corpus"]["files"]])


# publish_run and publish_trial: exactly these experiment/run pairs, not the resumed runs
# (their copies are inputs); a regex that matches nothing when there are none
PUBLISHED_RUN = {f"{r.experiment}/{r.run_id}": r for r in RUNS if r.path not in RESUMED}
PUBLISHED_RUN_PATTERN = "|".join(map(re.escape, PUBLISHED_RUN)) or "(?!x)x"
PUBLISHED_TRIAL = {f"{t.experiment}/trials/{t.run_id}": t for t in TRIALS
                   if t.path not in RESUMED}
PUBLISHED_TRIAL_PATTERN = "|".join(map(re.escape, PUBLISHED_TRIAL)) or "(?!x)x"


def published_run(wildcards):
    """The run behind results/reference/{experiment}/{run}/ (publish_run)."""
    return PUBLISHED_RUN[wildcards.published]


def published_trial(wildcards):
    """The trial behind results/reference/{experiment}/trials/{run}/ (publish_trial)."""
    return PUBLISHED_TRIAL[wildcards.trial]


def trial_publications(wildcards):
    """The published copy of every trial the tuning trains, each rung's once the rung before
    it has promoted them (publish_trials waits for them all)."""
    return [f"{wiring.published_dir(t)}/{name}" for key in TRIAL_GROUPS for rung in
            sorted(TRIAL_GROUPS[key]) for t in entrants_of(*key, rung)
            for name in wiring.TRIAL_FILES]


def rungs_of(corpus, experiment, group):
    """The trials of one model per rung."""
    return TRIAL_GROUPS[(corpus, experiment, group)]


def last_rung(wildcards):
    """Index of the model's last rung."""
    return max(rungs_of(wildcards.corpus, wildcards.experiment, wildcards.group))


def entrants_of(corpus, experiment, group, rung):
    """The trials that enter a rung: every point at rung 0, then those the previous rung
    promoted (read from its selection, once that checkpoint has run)."""
    trials = rungs_of(corpus, experiment, group)[rung]
    if rung == 0:
        return trials
    previous = checkpoints.select_trials.get(corpus=corpus, experiment=experiment, group=group,
                                             rung=str(rung - 1))
    return wiring.promoted(trials, previous.output[0])


def entrants(wildcards):
    """The trials that enter the rung {rung} of {corpus}/{experiment}/{group}."""
    return entrants_of(wildcards.corpus, wildcards.experiment, wildcards.group,
                       int(wildcards.rung))


def entrant_files(wildcards):
    """train.json and history.csv of every entrant: all that a selection reads."""
    return [f"{d}/{name}" for d in run_dirs(entrants(wildcards)) for name in wiring.TRIAL_FILES]


def selection_params(wildcards):
    """Flags of `rnnbench.experiment.tuning select` for one rung of one model."""
    labels = {"corpus": wildcards.corpus, "experiment": wildcards.experiment,
              "model": wildcards.group}
    trials = entrants(wildcards)
    return wiring.selection_flags(trials, tuning_of(wildcards.experiment), labels,
                                  int(wildcards.rung), last_rung(wildcards),
                                  dirs=run_dirs(trials))


def final_selection(wildcards):
    """A final run's input: its model's last selection (none for other runs)."""
    run = run_of(wildcards)
    if run.role != "final":
        return []
    rungs = TRIAL_GROUPS[(run.corpus, run.experiment, run.group)]
    return checkpoints.select_trials.get(
        corpus=run.corpus, experiment=run.experiment, group=run.group, rung=str(max(rungs))
    ).output


def all_selections(wildcards):
    """Every rung's selection of every model (each waits for the one before it), or with
    `source: reference` the published trials.csv of each tuned experiment."""
    if FROM_REFERENCE:
        return [f"results/reference/{e}/trials.csv" for e in TUNED]
    files = []
    for corpus, experiment, group in TRIAL_GROUPS:
        for rung in sorted(TRIAL_GROUPS[(corpus, experiment, group)]):
            files += checkpoints.select_trials.get(
                corpus=corpus, experiment=experiment, group=group, rung=str(rung)
            ).output
    return files


def trial_tunings():
    """`rnnbench.experiment.tuning collect --tunings`: each tuned experiment's space, trial seed and
    final seeds (the edge and seed columns of trials.csv)."""
    return wiring.tuning_flags({e: tuning_of(e) for e in TUNED}, config)


def planned_trials(root=wiring.TUNING):
    """The trials successive halving trains if none diverges: every point at rung 0, then
    those each rung promoted, or as many as it promotes while that is not known yet (the
    plan's count). ``root``: the tuning folder (absolute for the progress line: Snakemake may
    leave its --directory before its last line)."""
    return wiring.planned_trials(TRIAL_GROUPS, tuning_of, root=root)


# --- The session (rnnbench.experiment.session): the plan, the refusal of what this machine
# --- cannot run, and the progress line. The main process only; nothing for `source: reference`.
SESSION = None


def later_estimate():
    """The plan's time of the `later: true` experiments on this machine ('' without them)."""
    from rnnbench.experiment.plan import make_plan, about

    if not LATER:
        return ""
    plan = make_plan(LATER, data_dir=Path(f"results/data/{CORPUS}"),
                     reference_root=Path(workflow.basedir) / "results/reference",
                     device=config.get("device", "auto"), cores=workflow.resource_settings.cores)
    if not plan.seconds:
        return "at a cost this machine cannot estimate"
    return f"{about(sum(plan.seconds.values()) / plan.workers)} on {plan.workers} core(s)"


if workflow.is_main_process and not FROM_REFERENCE:
    from rnnbench.experiment.session import open_session

    # the tuning's one line per tuned experiment, after the plan
    _tuned = dict.fromkeys(e for _, e, _ in TRIAL_GROUPS)
    SESSION = open_session(
        # a run resumed from its published copy is done; a stale copy's run trains again
        [r for r in RUNS + planned_trials() if r.path not in RESUMED],
        config,
        data_dir=Path(f"results/data/{CORPUS}"),
        # The committed measurements travel with the code, not with the working directory.
        reference_root=Path(workflow.basedir) / "results/reference",
        cores=workflow.resource_settings.cores,
        # --jobs of a cluster executor (its nodes are other machines); a local one's is --cores
        jobs=workflow.resource_settings.nodes,
        notes=[wiring.later_note(LATER, later_estimate()), wiring.resume_note(
                   [r for r in RUNS + TRIALS if r.path not in RESUMED], "results/checkpoints"),
               wiring.resumed_note(RESUMED, STALE), identity.changed_note(CHANGED),
               identity.changed_note(
                   CHANGED_SOURCES, "corpus copies", "differ from their local files now")] + [
            tuning_of(e).describe(e, sum(x == e for _, x, _ in TRIAL_GROUPS),
                                  len(config["experiments"][e]["seeds"])) for e in _tuned],
        checkpoints=[f"results/checkpoints/{r.corpus}/{r.experiment}/{r.run_id}.pt"
                     for r in RUNS + TRIALS],
        is_dry_run=lambda: workflow.dryrun,
        logger=logger,
        retrain=identity.run_folders(CHANGED),
        # the progress line counts the plan as each rung's selection makes it known
        replan=lambda root=os.path.abspath(wiring.TUNING): [
            r for r in RUNS + planned_trials(root) if r.path not in RESUMED],
        candidates=[t for t in TRIALS if t.path not in RESUMED],
        study=STUDY,
        config_path=wiring.shown_path(workflow.configfiles[-1]) if workflow.configfiles else None,
        verbose=workflow.output_settings.verbose,
    )
    # Snakemake's job blocks off the terminal; a dry run lists its jobs as Snakemake does
    from rnnbench.experiment import console

    console.quiet(logger, workflow.output_settings.verbose, lambda: workflow.dryrun)


# A failed job's error paragraph is printed under Snakemake's error block
# (rnnbench.experiment.progress.JobErrorHandler), for every rule but these, whose shell commands
# print it themselves (left as they are: a changed command reruns every job of its rule).
PRINTS_OWN_ERRORS = ["download_corpus", "tokenize_corpus", "train_model"]


def start_session(logger):
    """At the start of a run (onstart): this config claims its study, then the session's plan,
    progress and stop, and the failed jobs' error paragraphs (with `source: reference`, these
    alone)."""
    from rnnbench.experiment.progress import JobErrorHandler

    claim_study(f"results/studies/{STUDY}", STUDY_OWNER)
    if SESSION:
        SESSION.start(logger, skip_errors=PRINTS_OWN_ERRORS)
    else:
        logger.addHandler(JobErrorHandler(PRINTS_OWN_ERRORS))
