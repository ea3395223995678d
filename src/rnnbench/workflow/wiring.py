"""What the workflow's wiring computes from the config and the run list (no torch import:
``workflow/rules/common.smk`` imports this to build the job graph and keeps only the calls).

Paths are relative to the working directory, as the rules write them: runs under
``results/runs/``, published copies under ``results/reference/``, tuning selections under
``results/tuning/``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnbench.config import RunConfig
from rnnbench.experiment.grid import Run
from rnnbench.experiment.tuning import TRIAL_FILES, Tuning, point_key
from rnnbench.training.provenance import code_changes, code_version

REFERENCE = "results/reference"
TUNING = "results/tuning"
# (corpus, experiment, group) -> {rung: [trial Run, ...] in point order}
TrialGroups = dict[tuple[str, str, str], dict[int, list[Run]]]


def experiments_with(config: dict, key: str) -> dict[str, Any]:
    """Each experiment's value of ``key`` (``published``, ``baseline``), where it is set."""
    return {name: spec[key] for name, spec in config["experiments"].items() if spec.get(key)}


def baseline_dirs(baselines: dict[str, str], reference: str = REFERENCE) -> list[str]:
    """The published run folders that ``baselines`` (experiment -> published experiment)
    compare with; ValueError naming an experiment whose baseline has no published run."""
    dirs = sorted(str(p.parent) for base in set(baselines.values())
                  for p in Path(f"{reference}/{base}").glob("*/train.json"))
    for name, base in baselines.items():
        if not any(d.startswith(f"{reference}/{base}/") for d in dirs):
            raise ValueError(
                f"experiment {name!r}: baseline {base!r} has no published run under "
                f"{reference}/{base}/ (looked for */train.json). Publish it first (e.g. "
                "config/reproduce.yaml publishes seed_rnn, seed_lstm and zaremba_small), or "
                "check out the committed reference files.")
    return dirs


def published_runs(runs: list[Run], reference: str = REFERENCE) -> tuple[list[Run], str]:
    """The runs that have a published copy (``source: reference``) and a line naming the runs
    left out ('' when none is); ValueError when no run is published."""
    published = [r for r in runs
                 if Path(f"{reference}/{r.experiment}/{r.run_id}/train.json").exists()]
    if not published:
        raise ValueError(
            f"source: reference, but no run of this config is published under {reference}/ "
            f"(looked for {reference}/{{experiment}}/{{run}}/train.json). Run the config with "
            "`source: runs` first, or check out the committed reference files.")
    missing = [f"{r.experiment}/{r.run_id}" for r in runs if r not in published]
    note = (f"source: reference: {len(missing)} of {len(runs)} runs of this config are not "
            f"published under {reference}/ and are left out: {', '.join(missing)}"
            if missing else "")
    return published, note


def published_dir(run: Run, reference: str = REFERENCE) -> str:
    """Folder of a run's published copy: {experiment}/{run}, a tuning trial's under
    {experiment}/trials/."""
    return f"{reference}/{run.experiment}/{'trials/' if run.role == 'trial' else ''}{run.run_id}"


def run_dirs(runs: list[Run], from_reference: bool, reference: str = REFERENCE,
             resumed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Folder of every run: its training outputs, or its published copy (every run with
    ``from_reference``, else the ``resumed`` ones, by path)."""
    return [published_dir(r, reference) if from_reference or r.path in resumed else r.path
            for r in runs]


def training_commit() -> str | None:
    """This checkout's commit when its training code (``src/``) has no uncommitted change
    (other tracked files may), else None."""
    version = code_version()
    if not version or code_changes() != []:
        return None
    return version.removesuffix("+dirty")


def resumed_runs(runs: list[Run], commit: str | None, files: tuple[str, ...],
                 tuned: dict[str, set[str]], reference: str = REFERENCE
                 ) -> tuple[set[str], list[str]]:
    """The runs (by path) that this checkout takes from their committed published copies
    instead of training them, and the published runs that train again (named).

    A run is taken from its copy when it has no training folder here (a run trained here is
    read from that), its copy has every file of ``files`` (a trial's: TRIAL_FILES) and its
    train.json names ``commit`` with no uncommitted training code and the same configuration
    (a final run's tuned keys, ``tuned[experiment]``, aside: its tuning chose them).
    ``commit`` is this checkout's, None when its training code has uncommitted changes (then
    nothing resumes). So a replaced machine or a new worktree at the experiment's commit loses
    at most the runs in flight; a copy of another commit, of uncommitted code or of another
    configuration is stale: its run trains and replaces it."""
    resumed: set[str] = set()
    stale: list[str] = []
    if not commit:
        return resumed, stale
    for run in runs:
        copy = Path(published_dir(run, reference))
        if Path(run.path, "train.json").exists() or not (copy / "train.json").exists():
            continue
        try:
            meta = json.loads((copy / "train.json").read_text())
        except (OSError, ValueError):
            meta = {}
        skip = tuned.get(run.experiment, set()) if run.role == "final" else set()
        mine = {k: v for k, v in run.config.to_dict().items() if k not in skip}
        theirs = meta.get("config") or {}
        needed = TRIAL_FILES if run.role == "trial" else files
        same_code = (str(meta.get("code_version")).removesuffix("+dirty") == commit
                     and meta.get("code_changes") == [])
        if (same_code and all((copy / n).exists() for n in needed)
                and all(theirs.get(k) == v for k, v in mine.items())):
            resumed.add(run.path)
        else:
            stale.append(f"{run.experiment}/{run.run_id}")
    return resumed, stale


def shown_path(path: str | Path) -> str:
    """A path as a user would type it here: relative to the working directory when under it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def split_later(runs: list[Run], config: dict) -> tuple[list[Run], list[Run]]:
    """The runs to train and those of the experiments marked ``later: true`` (none of the
    latter with ``run_later: true``: then every run trains)."""
    later = {name for name, spec in config["experiments"].items() if spec.get("later")}
    if config.get("run_later") or not later:
        return runs, []
    return ([r for r in runs if r.experiment not in later],
            [r for r in runs if r.experiment in later])


def later_note(later: list[Run], estimate: str) -> str:
    """The plan's line on the experiments marked ``later: true`` ('' when there are none):
    what they are, their cost here (``estimate``) and how to train them."""
    if not later:
        return ""
    names = ", ".join(dict.fromkeys(r.experiment for r in later))
    finals = sum(r.role != "trial" for r in later)
    return (f"\n  Not yet published (`later: true`): {names}, {finals} final runs and "
            f"{len(later) - finals} tuning trials at most, {estimate} here. They are the next "
            "experiments, on a GPU, a cluster or this CPU: add `--config run_later=True`.")


def resume_note(runs: list[Run], root: str) -> str:
    """The plan's line on the runs that resume from a checkpoint (under ``root``), first
    ('' when none has one)."""
    waiting = [r for r in runs if Path(f"{root}/{r.corpus}/{r.experiment}/{r.run_id}.pt").exists()
               and not Path(r.path, "train.json").exists()]
    if not waiting:
        return ""
    shown = ", ".join(f"{r.experiment}/{r.run_id}" for r in waiting[:3])
    more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
    return (f"\n  Resume: {len(waiting)} runs to resume from checkpoints, before any new run: "
            f"{shown}{more}.")


def resumed_note(resumed: set[str], stale: list[str]) -> str:
    """The plan's lines on the runs taken from their published copies and the stale copies
    whose runs train again ('' when there are neither)."""
    lines = []
    if resumed:
        lines.append(f"\n  Resumed: {len(resumed)} runs are taken from their published copies "
                     "under results/reference/ (trained from this commit with this "
                     "configuration) and do not train again.")
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        lines.append(f"\n  Stale: {len(stale)} published runs were trained from another commit "
                     f"or configuration; they train again and replace their copies: {shown}.")
    return "".join(lines)


def eval_flags(spec: dict) -> str:
    """Evaluation flags of an experiment (``eval_weights``, ``stream_test``)."""
    flags = ["--weights", spec.get("eval_weights", "best")]
    return " ".join(flags + (["--stream-test"] if spec.get("stream_test") else []))


def train_mem_mb(cfg: RunConfig) -> int:
    """Rough peak memory of a training job (MB): a base plus the model's share."""
    return 2000 + 4 * cfg.hidden * cfg.layers


def train_runtime(cfg: RunConfig, attempt: int) -> int:
    """Minutes for a training job, generous for a CPU; grows with each retry."""
    per_epoch = 2 + cfg.hidden * cfg.layers * (4 if cfg.cell == "lstm" else 3) // 150
    return (10 + cfg.epochs * per_epoch) * attempt


def trial_groups(trials: list[Run]) -> TrialGroups:
    """The trials of each tuned model, per rung, in point order."""
    groups: TrialGroups = {}
    for t in trials:
        groups.setdefault((t.corpus, t.experiment, t.group), {}).setdefault(t.rung, []).append(t)
    return groups


def promoted(trials: list[Run], selection: str | Path) -> list[Run]:
    """The ``trials`` whose point the previous rung's selection file promoted."""
    chosen = {point_key(p) for p in json.loads(Path(selection).read_text())["promoted"]}
    return [t for t in trials if point_key(dict(t.point)) in chosen]


def selection_flags(trials: list[Run], tuning: Tuning, labels: dict[str, str], rung: int,
                    last_rung: int, dirs: list[str] | None = None) -> dict[str, Any]:
    """Flags of ``rnnbench.experiment.tuning select`` for the ``trials`` entering one rung of
    one model (``labels``: its corpus, experiment and model; ``dirs``: their folders, by
    default their training folders); the last rung keeps one."""
    if trials:
        cfg = trials[0].config
        labels = {**labels, "cell": cfg.cell, "hidden": cfg.hidden, "layers": cfg.layers,
                  "budget": cfg.budget, "budget_kind": cfg.budget_kind}
    return {
        "dirs": " ".join(shlex.quote(d) for d in (dirs or [t.path for t in trials])),
        "points": json.dumps([dict(t.point) for t in trials]),
        "labels": json.dumps(labels),
        "rungs": last_rung + 1,
        "keep": 1 if rung == last_rung else tuning.promoted_count(len(trials)),
    }


def planned_trials(groups: TrialGroups, tuning_of: Callable[[str], Tuning],
                   root: str = TUNING) -> list[Run]:
    """The trials successive halving trains if none diverges: every point at rung 0, then
    those a finished selection promoted, or as many as the rung promotes (the plan's count)."""
    planned = []
    for (corpus, experiment, group), rungs in groups.items():
        counts = tuning_of(experiment).planned()
        for rung, trials in sorted(rungs.items()):
            before = Path(f"{root}/{corpus}/{experiment}/{group}/rung{rung - 1}.json")
            if rung and before.exists():  # this rung's entrants are known already
                planned += promoted(trials, before)
            else:
                planned += trials[: counts[rung]]
    return planned


def tuning_flags(tunings: dict[str, Tuning], config: dict) -> str:
    """``rnnbench.experiment.tuning collect --tunings``: each tuned experiment's space, trial
    seed and final seeds (the edge and seed columns of trials.csv)."""
    return json.dumps({e: {"space": t.space, "trial_seed": t.trial_seed,
                           "seeds": config["experiments"][e]["seeds"]}
                       for e, t in tunings.items()})
