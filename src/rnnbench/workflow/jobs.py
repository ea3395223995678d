"""What each rule asks of a study (rnnbench.workflow.pipeline.Study): its targets, a job's
flags and resources, the published copies, a tuning's entrants and selections.

The methods that take ``wildcards`` (and ``input``, ``attempt``) are Snakemake input, params
and resource functions as they stand; those that need a checkpoint's output take
``selection(corpus, experiment, group, rung)``, the files of one rung's selection.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rnnbench.data.sources import source_inputs
from rnnbench.experiment.grid import Run, run_args
from rnnbench.experiment.tuning import selected_config
from rnnbench.figures import registry
from rnnbench.workflow import wiring
from rnnbench.workflow.codedeps import module_sources

if TYPE_CHECKING:
    from rnnbench.workflow.pipeline import Study

# `python -m rnnbench.x.y` in a rule's shell command
COMMAND = re.compile(r"python -m (rnnbench(?:\.\w+)+)")
# (corpus, experiment, group, rung) -> the selection files of that rung (a checkpoint's output)
Selection = Callable[[str, str, str, int], list[str]]
# The rules' figure lists, from the one list of figures (rnnbench.figures.registry).
# Figure name -> report category of those drawn from collect_metrics's tables (aggregate.smk:
# one plot rule each, a caption in workflow/report/{name}.rst).
FIGURE_CATEGORIES = {name: registry.spec(name).category for name in registry.names("metrics")}
# gradients.smk's figures
GRADIENT_FIGURES = tuple(registry.names("gradients"))
# sizes.smk's figures against the parameter count
SIZE_FIGURES = tuple(registry.names("sizes"))
# the files publish_run reads of a run (steps.csv.gz reduced to its bins and quantiles)
PUBLISHED_INPUTS = ("train.json", "eval.json", "history.csv", "steps.csv.gz", "grad_stats.csv",
                    "spectra.csv", "gradients.csv", "decay.csv")


def pattern(names) -> str:
    """A wildcard constraint matching exactly ``names`` (one that matches nothing if none)."""
    return "|".join(map(re.escape, names)) or "(?!x)x"


def rule_code(shell: str, src: str | Path) -> list[str]:
    """A rule's code inputs: every rnnbench source file that the modules its shell command
    runs (``python -m rnnbench...``) import, directly or not, sorted."""
    modules = dict.fromkeys(COMMAND.findall(shell))
    return sorted({f for m in modules for f in module_sources(m, src)})


def input_dir(wildcards, input) -> str:
    """Folder of a rule's first input (the study's tables folder, for the plots)."""
    return os.path.dirname(input[0])


def output_dir(wildcards, output) -> str:
    """Folder of a rule's first output (the study's tables folder, for the collectors)."""
    return os.path.dirname(output[0])


def data_dir(wildcards, input) -> str:
    """Folder of the tokenized corpus, from the rule's `data` input files."""
    return os.path.dirname(input.data[0])



class StudyJobs:
    """The rules' side of a Study (mixed into it)."""

    # --- targets ---
    def targets(self: Study, run_inputs: list[str]) -> list[str]:
        """Tables and figures of the whole config, after ``run_inputs`` (the per-run files
        that tables are built from: targets too, or a deleted one would never come back)."""
        tables = f"results/studies/{self.name}/tables"
        return [
            *run_inputs,
            *([] if self.from_reference else [self.stats]),
            f"{tables}/runs.csv", f"{tables}/summary.csv", f"{tables}/summary.md",
            f"{tables}/comparisons.md",
            *self.figure_files("comparison"),
            *([f"{tables}/precision.md"] if self.baselines else []),
            # the report's tables (a report item must be a target to be made again)
            *[f"{tables}/{name}.html" for name in ("summary", "comparisons", "learning_curves",
                                                   *(["precision"] if self.baselines else []))],
            *self.figures(), *self.gradient_targets(), *self.context_targets(),
            *self.size_targets(), *self.tuning_targets(), *self.reference_files(),
        ]

    def figures(self: Study) -> list[str]:
        """The figures of aggregate.smk (the reproduction's with published numbers)."""
        return [*self.figure_files("metrics"), *self.figure_files("learning_curves"),
                *(self.figure_files("reproduction") if self.published else [])]

    def figure_files(self: Study, source: str) -> list[str]:
        """The PNG of every figure drawn from ``source``'s tables (rnnbench.figures.registry)."""
        return [f"results/studies/{self.name}/figures/{name}.png"
                for name in registry.names(source)]

    def gradient_targets(self: Study) -> list[str]:
        """The gradient figures and the decay table's report item (gradients.smk)."""
        return [*self.figure_files("gradients"),
                f"results/studies/{self.name}/tables/grad_decay.html"]

    def context_targets(self: Study) -> list[str]:
        """The effective context's tables and figure, where any run measures it."""
        tables = f"results/studies/{self.name}/tables"
        return [f"{tables}/context.csv", f"{tables}/context_summary.csv",
                *self.figure_files("context"),
                f"{tables}/context_summary.html"] if self.context_dirs else []

    def several_sizes(self: Study) -> bool:
        """Whether an experiment has several sizes (budgets or hidden sizes)."""
        return any(len(spec.get("budgets", spec.get("hidden", []))) > 1
                   for spec in self.config["experiments"].values())

    def size_targets(self: Study) -> list[str]:
        """The table and figures across sizes (sizes.smk), where there are several."""
        if not self.several_sizes():
            return []
        return [f"results/studies/{self.name}/tables/sizes.md",
                *self.figure_files("sizes")]

    def tuning_targets(self: Study) -> list[str]:
        """trials.csv (first), the tuning curve and trials.html, for a tuned config."""
        if not self.tuned:
            return []
        return [f"results/studies/{self.name}/tables/trials.csv",
                *self.figure_files("trials"),
                f"results/studies/{self.name}/tables/trials.html"]

    def provenance_files(self: Study) -> list[str]:
        """Each experiment's provenance.json (publish_reference)."""
        return [f"{wiring.REFERENCE}/{e}/provenance.json"
                for e in dict.fromkeys(r.experiment for r in self.runs)]

    def reference_files(self: Study) -> list[str]:
        """What publish_run, publish_reference and publish_trials write (none when reading
        the reference): later rungs' trials come with publish_trials, once they are known."""
        if self.from_reference or not self.publish:
            return []
        runs = [f"{wiring.REFERENCE}/{r.experiment}/{r.run_id}/train.json" for r in self.runs]
        first = [f"{wiring.published_dir(t)}/train.json" for t in self.trials if t.rung == 0]
        tables = [f"{wiring.REFERENCE}/reference.md"] if self.published else []
        trials = [f"{wiring.REFERENCE}/{e}/trials.csv" for e in self.tuned]
        return runs + first + self.provenance_files() + tables + trials

    def code(self: Study, shell: str) -> list[str]:
        """The code inputs of a rule whose shell command is ``shell``."""
        return rule_code(shell, self.src)

    # --- a run's job ---
    def train_args(self: Study, wildcards, input) -> str:
        """Training flags of one run (its whole configuration); a tuned experiment's final
        run takes the point its model's last rung selected (rnnbench.experiment.tuning)."""
        run = self.run_of(wildcards)
        if run.role != "final":
            return run_args(run.config)
        # a config that publishes may not rest its answer on an edge of the search space
        return run_args(selected_config(run, input.selection, self.tuning_of(run.experiment),
                                        refuse_edge=self.publish))

    def resume_priority(self: Study, wildcards) -> int:
        """train_model's priority: 5 for a run with a checkpoint (it resumes first), else 0;
        evaluations and measurements (10) still come before either."""
        run = self.run_of(wildcards)
        saved = Path(f"results/checkpoints/{run.corpus}/{run.experiment}/{run.run_id}.pt")
        return 5 if saved.exists() else 0

    def uses_gpu(self: Study, wildcards) -> int:
        """1 when the run may use CUDA (device auto or cuda), else 0."""
        return 0 if self.run_of(wildcards).config.device == "cpu" else 1

    def train_mem_mb(self: Study, wildcards) -> int:
        """Rough peak memory (MB) of a training job."""
        return wiring.train_mem_mb(self.run_of(wildcards).config)

    def train_runtime(self: Study, wildcards, attempt) -> int:
        """Minutes for a training job; grows with each retry."""
        return wiring.train_runtime(self.run_of(wildcards).config, attempt)

    def eval_args(self: Study, wildcards) -> str:
        """Evaluation flags of an experiment (`eval_weights`, `stream_test`)."""
        return wiring.eval_flags(self.config["experiments"][wildcards.experiment])

    def corpus_url(self: Study, wildcards) -> str:
        """URL or path of one split's file."""
        return self.config["corpus"]["files"][wildcards.split]["url"]

    def corpus_source(self: Study, wildcards) -> list[str]:
        """A local corpus file, as download_corpus's input (editing it reruns the copy);
        none for a network URL."""
        return source_inputs(self.corpus_url(wildcards))

    # --- publishing: exactly these runs and trials, not the resumed ones (their copies are
    # --- inputs) ---
    @cached_property
    def published_runs(self: Study) -> dict[str, Run]:
        """experiment/run -> the run that publish_run copies."""
        return {f"{r.experiment}/{r.run_id}": r for r in self.runs if r.path not in self.resumed}

    @cached_property
    def published_trials(self: Study) -> dict[str, Run]:
        """experiment/trials/run -> the trial that publish_trial copies."""
        return {f"{t.experiment}/trials/{t.run_id}": t for t in self.trials
                if t.path not in self.resumed}

    def published_run(self: Study, wildcards) -> Run:
        """The run behind results/reference/{experiment}/{run}/ (publish_run)."""
        return self.published_runs[wildcards.published]

    def published_trial(self: Study, wildcards) -> Run:
        """The trial behind results/reference/{experiment}/trials/{run}/ (publish_trial)."""
        return self.published_trials[wildcards.trial]

    def published_run_inputs(self: Study, wildcards) -> dict[str, str]:
        """The files of one run that publish_run copies or reduces, and its effective
        context where the config measures it."""
        run = self.published_run(wildcards)
        names = [*PUBLISHED_INPUTS, *(["context.json"] if self.context else [])]
        return {name.split(".")[0]: f"{run.path}/{name}" for name in names}

    def published_trial_inputs(self: Study, wildcards) -> list[str]:
        """All that publish_trial copies of one trial."""
        return [f"{self.published_trial(wildcards).path}/{n}" for n in wiring.TRIAL_FILES]

    # --- tuning (tuning.smk): each rung's entrants, known once the rung before has selected ---
    def entrants(self: Study, key: tuple[str, str, str], rung: int,
                 selection: Selection) -> list[Run]:
        """The trials that enter a rung of the model ``key``: every point at rung 0, then
        those the previous rung promoted."""
        trials = self.trial_groups[key][rung]
        if rung == 0:
            return trials
        return wiring.promoted(trials, selection(*key, rung - 1)[0])

    def trial_files(self: Study, trials: list[Run]) -> list[str]:
        """train.json and history.csv of each trial: all that a selection reads."""
        return [f"{d}/{name}" for d in self.run_dirs(trials) for name in wiring.TRIAL_FILES]

    def trial_copies(self: Study, selection: Selection, run: Run | None = None,
                     first: bool | None = None) -> list[str]:
        """The published copy of every trial the tuning trains, or of those of a final
        ``run``'s model: of its first rung (``first``, known from the start) or of the later
        ones (known once the rung before has selected)."""
        keys = list(self.trial_groups)
        if run is not None:
            key = (run.corpus, run.experiment, run.group)
            keys = [key] if run.role == "final" and key in self.trial_groups else []
        return [f"{wiring.published_dir(t)}/{name}" for key in keys
                for rung in sorted(self.trial_groups[key]) if first is None or (rung == 0) == first
                for t in self.entrants(key, rung, selection) for name in wiring.TRIAL_FILES]

    def selection_flags(self: Study, wildcards, trials: list[Run]) -> dict:
        """Flags of `rnnbench.experiment.tuning select` for the ``trials`` entering the rung
        {rung} of {corpus}/{experiment}/{group}."""
        labels = {"corpus": wildcards.corpus, "experiment": wildcards.experiment,
                  "model": wildcards.group}
        last = max(self.trial_groups[(wildcards.corpus, wildcards.experiment, wildcards.group)])
        return wiring.selection_flags(trials, self.tuning_of(wildcards.experiment), labels,
                                      int(wildcards.rung), last, dirs=self.run_dirs(trials))

    def final_selection(self: Study, wildcards, selection: Selection) -> list[str]:
        """A final run's input: its model's last selection (none for other runs)."""
        run = self.run_of(wildcards)
        if run.role != "final":
            return []
        rungs = self.trial_groups[(run.corpus, run.experiment, run.group)]
        return selection(run.corpus, run.experiment, run.group, max(rungs))

    def all_selections(self: Study, selection: Selection) -> list[str]:
        """Every rung's selection of every model (each waits for the one before it), or with
        `source: reference` the published trials.csv of each tuned experiment."""
        if self.from_reference:
            return [f"{wiring.REFERENCE}/{e}/trials.csv" for e in self.tuned]
        return [f for key, rungs in self.trial_groups.items() for rung in sorted(rungs)
                for f in selection(*key, rung)]

    def trial_tunings(self: Study) -> str:
        """`rnnbench.experiment.tuning collect --tunings`: each tuned experiment's space,
        trial seed and final seeds (the edge and seed columns of trials.csv)."""
        return wiring.tuning_flags({e: self.tuning_of(e) for e in self.tuned}, self.config)

    def planned_trials(self: Study, root: str = wiring.TUNING) -> list[Run]:
        """The trials successive halving trains if none diverges (the plan's count);
        ``root``: the tuning folder."""
        return wiring.planned_trials(self.trial_groups, self.tuning_of, root=root)
