"""The study as the workflow sees it: one object built from the config that owns the run
list (runs, trials, skipped, later, resumed and published runs, `source: reference`), the
tuning's trial groups, the targets, the run folders and each rule's code inputs.

``workflow/rules/common.smk`` builds it once (``Study.from_config``) and keeps only what needs
Snakemake's own objects: checkpoints, the rule list, the logger, the session's start. What
needs a checkpoint's output comes in as a callable ``selection(corpus, experiment, group,
rung)`` that returns the rung's selection files (no torch import here).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.config import TRAINING_KEYS
from rnnbench.config.schema import check_config
from rnnbench.data.download import verify_downloaded
from rnnbench.data.sources import corpus_tokens, unk_warnings
from rnnbench.diagnostics.context_stats import ContextSettings, context_settings, settings_problem
from rnnbench.experiment.grid import Run, Skipped, check_streams, expand
from rnnbench.experiment.tuning import Tuning
from rnnbench.io import first_bad_json
from rnnbench.model.params import corpus_vocab
from rnnbench.workflow import identity, wiring
from rnnbench.workflow.jobs import StudyJobs
from rnnbench.workflow.session import Session, open_session
from rnnbench.workflow.study import (
    check_report_ready,
    owner_record,
    owner_refusal,
    report_status,
    report_status_line,
    study_name,
)

# A failed job's error paragraph is printed under Snakemake's error block
# (rnnbench.workflow.progress.JobErrorHandler), for every rule but these, whose shell commands
# print it themselves (left as they are: a changed command reruns every job of its rule).
PRINTS_OWN_ERRORS = ("download_corpus", "tokenize_corpus", "train_model")
# What publish_run writes for each run, besides the effective context's files where measured
RUN_FILES = ("train.json", "eval.json", "history.csv", "grad_stats.csv", "spectra.csv",
             "grad_bins.csv", "grad_quantiles.csv", "gradients.csv", "decay.csv",
             "gradients.json")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def export_corpus_environment(config: dict) -> None:
    """Hand the mirror and each split's SHA-256 to download_corpus through the environment.

    The mirror says where the corpus comes from, not what it is, and the SHA-256 only guards
    the content: as params, switching mirrors or adding the right checksum would rerun the
    downloads and, through them, every training run (download_corpus is a local rule, so no
    envvars entry is needed for the checksums)."""
    os.environ["RNNBENCH_MIRROR"] = config.get("mirror") or ""
    for split, spec in config["corpus"]["files"].items():
        os.environ[f"RNNBENCH_SHA256_{split}"] = spec.get("sha256") or ""


@dataclass
class Study(StudyJobs):
    """One config's runs and what the rules make of them (paths relative to the working
    directory, as the rules write them)."""

    config: dict
    basedir: Path
    name: str
    owner: dict
    runs: list[Run]
    skipped: list[Skipped] = field(default_factory=list)
    later: list[Run] = field(default_factory=list)
    trials: list[Run] = field(default_factory=list)
    main: bool = True
    baseline_dirs: list[str] = field(default_factory=list)
    tuned: list[str] = field(default_factory=list)
    resumed: set[str] = field(default_factory=set)
    stale: list[str] = field(default_factory=list)
    changed: dict = field(default_factory=dict)
    changed_sources: dict = field(default_factory=dict)
    context_dirs: list[str] = field(default_factory=list)
    run_by_key: dict[tuple[str, str, str], Run] = field(default_factory=dict)
    trial_groups: wiring.TrialGroups = field(default_factory=dict)

    # --- what the config says ---
    @property
    def corpus(self) -> str:
        return self.config["corpus"]["name"]

    @property
    def from_reference(self) -> bool:
        """`source: reference`: the tables come from the committed results/reference/."""
        return self.config.get("source", "runs") == "reference"

    @property
    def published(self) -> dict[str, Any]:
        """Experiments with published numbers to compare with (`published:`)."""
        return wiring.experiments_with(self.config, "published")

    @property
    def baselines(self) -> dict[str, str]:
        """Experiments compared with a published one (`baseline:`)."""
        return wiring.experiments_with(self.config, "baseline")

    @property
    def publish(self) -> bool:
        """Whether the runs' small files go to results/reference/ (by default when an
        experiment has published numbers)."""
        return self.config.get("publish", bool(self.published))

    @property
    def context(self) -> ContextSettings | None:
        """The effective context's settings (None: not measured)."""
        return context_settings(self.config.get("context", True))

    @property
    def stats(self) -> str:
        return f"results/data/{self.corpus}/stats.json"

    @property
    def published_files(self) -> list[str]:
        """What publish_run writes for each run (the context's files where it is measured)."""
        return [*RUN_FILES, *(["context.csv", "context.json"] if self.context else [])]

    @property
    def src(self) -> Path:
        return self.basedir / "src"

    def tuning_of(self, experiment: str) -> Tuning:
        """The experiment's tuning (search space, trials, rungs, trial seed)."""
        spec = self.config["experiments"][experiment]
        return Tuning.from_spec(experiment, spec["tuning"], TRAINING_KEYS, spec["seeds"])

    def tuned_spaces(self) -> dict[str, set[str]]:
        return {e: set(self.tuning_of(e).space) for e in self.tuned}

    # --- building it ---
    @classmethod
    def from_config(cls, config: dict, basedir: str | Path, configfiles=(), *,
                    main: bool = True, reporting: bool = False,
                    say: Callable[[str], None] = _stderr,
                    warn: Callable[[str], None] = _stderr,
                    info: Callable[[str], None] = _stderr) -> Study:
        """Validate ``config`` and build its study; each refusal is one paragraph (ValueError).

        ``main``: Snakemake's main process (a cluster job re-parsing the workflow checks
        nothing it need not); ``reporting``: a `--report` run. ``say``, ``warn`` and ``info``
        take the lines for the terminal (a plain line, a warning, the skipped runs). Checks
        files under the working directory, and marks outputs of another configuration out of
        date (rnnbench.workflow.identity)."""
        basedir = Path(basedir)
        check_config(config, basedir / "config/schema/config.schema.yaml")
        export_corpus_environment(config)
        corpus = config["corpus"]["name"]
        # files already downloaded are checked against the SHA-256 before any job
        verify_downloaded(config["corpus"]["files"], Path(f"results/data/{corpus}/raw"))
        name = study_name(config, configfiles)
        owner = owner_record(config, configfiles)
        if main and (refusal := owner_refusal(name, f"results/studies/{name}", owner)):
            raise ValueError(refusal)
        config["study"] = name  # the report's landing page names it
        if reporting:
            check_report_ready(name, [f"results/studies/{name}/tables/runs.csv"])
        study = cls(config, basedir, name, owner, runs=[], main=main)
        study.baseline_dirs = wiring.baseline_dirs(study.baselines)
        study._expand(say)
        study._check_inputs(warn)
        if reporting:
            config["report_status"] = report_status(
                [f"{r.experiment}/{r.run_id}" for r in study.runs],
                f"results/studies/{name}/tables/runs.csv")
            if line := report_status_line(name, config["report_status"]):
                say(line)
        for s in study.skipped:
            info(f"skipping {s.experiment}/{s.run_id}: {s.reason}")
        study._tuning_and_resumes()
        study._identity()
        study._context(say)
        return study

    def _expand(self, say: Callable[[str], None]) -> None:
        """The runs, skipped, later and trial runs (only the published with `source: reference`)."""
        runs, self.skipped = expand(self.config, corpus_vocab(self.config["corpus"], self.stats))
        runs, self.later = wiring.split_later(runs, self.config)
        # trials train and are ranked on validation only: not in the tables of runs
        self.trials = [r for r in runs if r.role == "trial"]
        self.runs = [r for r in runs if r.role != "trial"]
        if self.from_reference:
            self.trials = []
            # a reproduction still running elsewhere leaves runs out, said
            self.runs, left_out = wiring.published_runs(self.runs)
            if left_out:
                say(left_out)
        self.run_by_key = {(r.corpus, r.experiment, r.run_id): r for r in self.runs + self.trials}
        # (corpus, experiment, group) -> {rung: [trial Run, ...]} in point order
        self.trial_groups = wiring.trial_groups(self.trials)

    def _check_inputs(self, warn: Callable[[str], None]) -> None:
        """Published files that are truncated, splits too short for a run's batches, and
        <unk> in valid/test that train never has: said before any job."""
        copies = [wiring.published_dir(r) for r in self.runs if self.from_reference]
        bad = first_bad_json([f"{d}/{n}" for n in ("train.json", "eval.json")
                              for d in copies + self.baseline_dirs])
        if bad:
            raise ValueError(bad)
        data = f"results/data/{self.corpus}"
        check_streams(self.runs + self.trials, corpus_tokens(self.config["corpus"], data),
                      self.corpus)
        if self.main and not self.from_reference:
            for warning in unk_warnings(self.config["corpus"], data):
                warn(f"WARNING ({self.corpus}): {warning}")

    def _tuning_and_resumes(self) -> None:
        """The tuned experiments and, where the config publishes, the runs taken from their
        published copies (trained from this commit with this configuration)."""
        self.tuned = [e for e, spec in self.config["experiments"].items() if spec.get("tuning")]
        if self.from_reference:  # the published trials.csv stands in for the trials
            self.tuned = [e for e in self.tuned
                          if Path(f"{wiring.REFERENCE}/{e}/trials.csv").exists()]
        if self.publish and not self.from_reference:
            self.resumed, self.stale = wiring.resumed_runs(
                self.runs + self.trials, wiring.training_commit(), tuple(self.published_files),
                self.tuned_spaces())

    def _identity(self) -> None:
        """Runs trained here with another configuration and corpus copies of another file,
        marked out of date before any job (the main process only: a cluster job would read
        every train.json and hash the corpus again for nothing)."""
        if not self.main or self.from_reference:
            return
        raw = f"results/data/{self.corpus}/raw"
        self.changed = identity.changed_runs(self.runs + self.trials, self.tuned_spaces())
        self.changed_sources = identity.changed_sources(self.config["corpus"]["files"], raw)
        # a changed copy sets aside stats.json too (a target): the corpus is tokenized anew
        stats = {self.stats: next(iter(self.changed_sources.values()))} \
            if self.changed_sources else {}
        identity.mark({**self.changed, **self.changed_sources, **stats},
                      [f"{r.path}/train.json" for r in self.runs + self.trials] + [self.stats]
                      + [f"{raw}/{s}.txt" for s in self.config["corpus"]["files"]])

    def _context(self, say: Callable[[str], None]) -> None:
        """The runs whose effective context is measured: every run, or with `source:
        reference` those published with their context files; the validation split must hold
        the sample."""
        if not self.context:
            return
        dirs = self.run_dirs()
        self.context_dirs = [d for d in dirs
                             if not self.from_reference or Path(f"{d}/context.json").exists()]
        if self.from_reference and len(self.context_dirs) < len(dirs):
            say(f"source: reference: {len(dirs) - len(self.context_dirs)} of {len(dirs)} "
                "published runs have no context.json (published before the effective context "
                "was measured) and are left out of the context table"
                + ("" if self.context_dirs else ", which is not built"))
        if not self.from_reference:
            tokens = corpus_tokens(self.config["corpus"], f"results/data/{self.corpus}")
            problem = tokens and settings_problem(self.context, tokens["valid"],
                                                  f"results/data/{self.corpus}/valid.pt")
            if problem:
                raise ValueError(problem)

    # --- the session (rnnbench.workflow.session): the main process only, nothing for
    # --- `source: reference` ---
    def later_estimate(self, cores: int | None) -> str:
        """The plan's time of the `later: true` experiments on this machine ('' without)."""
        from rnnbench.workflow.plan import about, make_plan

        if not self.later:
            return ""
        plan = make_plan(self.later, data_dir=Path(f"results/data/{self.corpus}"),
                         reference_root=self.basedir / "results/reference",
                         device=self.config.get("device", "auto"), cores=cores)
        if not plan.seconds:
            return "at a cost this machine cannot estimate"
        return f"{about(sum(plan.seconds.values()) / plan.workers)} on {plan.workers} core(s)"

    def open_session(self, *, cores: int | None, jobs: int | None, logger,
                     is_dry_run: Callable[[], bool], verbose: bool,
                     config_path: str | None) -> Session | None:
        """The plan, the refusal of what this machine cannot run and the progress line of
        the runs to train (``jobs``: --jobs of a cluster executor); None where none is."""
        if not self.main or self.from_reference:
            return None
        # a run resumed from its published copy is done; a stale copy's run trains again
        todo = [r for r in self.runs + self.trials if r.path not in self.resumed]
        tuned = dict.fromkeys(e for _, e, _ in self.trial_groups)  # a line each, after the plan
        return open_session(
            [r for r in self.runs + self.planned_trials() if r.path not in self.resumed],
            self.config, data_dir=Path(f"results/data/{self.corpus}"),
            # the committed measurements travel with the code, not with the working directory
            reference_root=self.basedir / "results/reference", cores=cores, jobs=jobs,
            notes=[wiring.later_note(self.later, self.later_estimate(cores)),
                   wiring.resume_note(todo, "results/checkpoints"),
                   wiring.resumed_note(self.resumed, self.stale),
                   identity.changed_note(self.changed),
                   identity.changed_note(self.changed_sources, "corpus copies",
                                         "differ from their local files now")]
            + [self.tuning_of(e).describe(e, sum(x == e for _, x, _ in self.trial_groups),
                                          len(self.config["experiments"][e]["seeds"]))
               for e in tuned],
            checkpoints=[f"results/checkpoints/{r.corpus}/{r.experiment}/{r.run_id}.pt"
                         for r in self.runs + self.trials],
            is_dry_run=is_dry_run, logger=logger, retrain=identity.run_folders(self.changed),
            # the progress line counts the plan as each rung's selection makes it known
            replan=lambda root=os.path.abspath(wiring.TUNING): [
                r for r in self.runs + self.planned_trials(root) if r.path not in self.resumed],
            candidates=[t for t in self.trials if t.path not in self.resumed],
            study=self.name, config_path=config_path and wiring.shown_path(config_path),
            verbose=verbose)

    def start(self, logger, session: Session | None) -> None:
        """At the start of a run (onstart): this config claims its study, then the session's
        plan, progress and stop, and the failed jobs' error paragraphs (with `source:
        reference`, these alone)."""
        from rnnbench.workflow.progress import JobErrorHandler
        from rnnbench.workflow.study import claim

        claim(f"results/studies/{self.name}", self.owner)
        if session:
            session.start(logger, skip_errors=PRINTS_OWN_ERRORS)
        else:
            logger.addHandler(JobErrorHandler(PRINTS_OWN_ERRORS))

    # --- runs and their folders ---
    def run_of(self, wildcards) -> Run:
        """The grid point behind {corpus}/{experiment}/{run}."""
        return self.run_by_key[(wildcards.corpus, wildcards.experiment, wildcards.run)]

    def run_dirs(self, runs: list[Run] | None = None) -> list[str]:
        """Folder of every run (or of ``runs``): its training outputs, or its published copy
        (with `source: reference`, or a run resumed from it)."""
        return wiring.run_dirs(self.runs if runs is None else runs, self.from_reference,
                               resumed=self.resumed)

    def run_files(self, name: str, published: str | None = None) -> list[str]:
        """One file of every run (``published``: its name in a published copy)."""
        copy = f"{wiring.REFERENCE}/"
        return [f"{d}/{published if published and d.startswith(copy) else name}"
                for d in self.run_dirs()]


