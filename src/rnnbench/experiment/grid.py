"""Expand the config's experiments into runs (no torch import: Snakemake imports this).

An experiment crosses ``cells x hidden x layers x seeds``; each cell takes a named recipe,
then the experiment's ``overrides`` and ``cell_overrides[cell]`` on top. Any training key whose
value is a list becomes one more axis, and its value is written into the run id, so adding a
grid point never renames (and so never reruns) an existing run::

    lstm-h300-l1-s1            # plain grid point
    lstm-h300-l2-dropout0.5-s1 # `dropout: [0, 0.5]` as an axis
    lstm-p250k-l1-s1           # `budgets: [250000]`: 250k recurrent parameters
    lstm-t4M-l1-s1             # with `budget_kind: total`: 4M parameters in all
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from rnnbench.config import TRAINING_KEYS, ConfigError, RunConfig
from rnnbench.data.streams import stream_errors
from rnnbench.experiment.tuning import Tuning
from rnnbench.model.params import check_budget_kind, check_size_axis, size_part, solve_hidden

SAFE = re.compile(r"[^A-Za-z0-9_.]+")


@dataclass(frozen=True)
class Run:
    """One grid point: the corpus it trains on, where its files go, its full configuration."""

    experiment: str
    run_id: str
    config: RunConfig
    corpus: str = "ptb"
    # tuned experiments (rnnbench.experiment.tuning): role "trial" (one point at one rung) or
    # "final" (the selected point, per seed); "run" otherwise. group: the model's id without
    # the seed.
    role: str = "run"
    group: str = ""
    rung: int | None = None
    point: tuple = ()

    @property
    def path(self) -> str:
        """Folder of the run's outputs: the corpus is part of a run's identity, so a PTB and
        a custom-corpus config with the same experiment name never share a folder."""
        return f"results/runs/{self.corpus}/{self.experiment}/{self.run_id}"


@dataclass(frozen=True)
class Skipped:
    """A grid point left out on purpose, with the reason."""

    experiment: str
    run_id: str
    reason: str


def format_value(value: Any) -> str:
    """Short, file-name-safe text for an axis value (``0.5``, ``1e-05``, ``clip``)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return SAFE.sub("_", text)


def run_id(cell: str, hidden: int, layers: int, seed: int, axes: dict[str, Any],
           budget: int | None = None, budget_kind: str | None = None) -> str:
    """Readable, stable id: ``{cell}-h{hidden}-l{layers}[-{key}{value}...]-s{seed}``, or with
    a recurrent-parameter budget ``{cell}-p{budget}-l{layers}...`` (``lstm-p250k-l1-s1``), a
    total one ``{cell}-t{budget}-l{layers}...`` (``lstm-t4M-l1-s1``)."""
    return f"{group_id(cell, hidden, layers, axes, budget, budget_kind)}-s{seed}"


def group_id(cell: str, hidden: int, layers: int, axes: dict[str, Any],
             budget: int | None = None, budget_kind: str | None = None) -> str:
    """A run id without its seed; an axis whose value is null (an option left off, such as
    ``forget_bias: [null, 1]``) is not written, so the plain point keeps the plain id. The
    precision is written as its name alone (``lstm-h300-l1-bf16``), fp32 not at all."""
    parts = [cell, size_part(hidden, budget, budget_kind), f"l{layers}"]
    for key in sorted(axes):
        value = axes[key]
        if key == "precision":
            parts += [] if value in (None, "fp32") else [format_value(value)]
        elif value is not None:
            parts.append(f"{key}{format_value(value)}")
    return "-".join(parts)


def _recipe_for(experiment: str, spec: dict, recipes: dict, cell: str) -> dict:
    """The merged training keys (values may still be lists) for one cell."""
    name = spec["recipe"] if isinstance(spec["recipe"], str) else spec["recipe"].get(cell)
    if name is None or name not in recipes:
        raise ValueError(
            f"experiment {experiment!r}: no recipe {name!r} for cell {cell!r}; "
            f"define it under `recipes:` (known: {', '.join(sorted(recipes))}) or set "
            f"`experiments.{experiment}.recipe.{cell}`"
        )
    merged = dict(recipes[name])
    merged.update(spec.get("overrides") or {})
    merged.update((spec.get("cell_overrides") or {}).get(cell) or {})
    unknown = sorted(set(merged) - set(TRAINING_KEYS))
    if unknown:
        raise ValueError(
            f"experiment {experiment!r}, cell {cell!r}: unknown training key(s) "
            f"{', '.join(unknown)}; known keys are {', '.join(TRAINING_KEYS)}"
        )
    return merged


# (test, reason, fix) of every combination left out on purpose (benchopt's skip with a reason).
SKIP_RULES = (
    (lambda cfg: cfg.dropout > 0 and cfg.layers == 1,
     "dropout acts between layers only, so it has no effect with layers=1",
     "give dropout > 0 only with layers of 2 or more (or set dropout to 0)"),
)


def skip_reason(cfg: RunConfig) -> str | None:
    """Why a combination is not worth running, or None."""
    return next((reason for test, reason, _ in SKIP_RULES if test(cfg)), None)


def _collision(experiment: str, rid: str, first: tuple, second: tuple,
               corpus: str) -> ConfigError:
    """The error for two different configurations on one run id, with the fix."""
    (cfg_a, axes_a), (cfg_b, axes_b) = first, second
    a, b = cfg_a.to_dict(), cfg_b.to_dict()
    keys = [k for k in a if a[k] != b[k]]
    one = ", ".join(f"{k}={a[k]!r}" for k in keys)
    other = ", ".join(f"{k}={b[k]!r}" for k in keys)
    if all(k in axes_a and k in axes_b for k in keys):
        fix = ("these values print alike in the id (6 significant digits, characters other "
               "than letters, digits, _ and . become _): choose values that differ there, or "
               "put them in separate experiments")
    else:
        fix = ("a key that is not a list is not part of the id: make it an axis (a list) so "
               "it is part of the id, or put the two in separate experiments")
    return ConfigError(
        f"Two different grid points of experiment {experiment!r} share the run id {rid} "
        f"({Run(experiment, rid, cfg_a, corpus).path}): one has {one}, the other {other}. "
        f"Fix: {fix}."
    )


def expand_experiment(name: str, spec: dict, recipes: dict, device: str = "auto",
                      corpus: str = "ptb", vocab: int | None = None):
    """Yield Run or Skipped for every distinct point of one experiment (for a tuned one, its
    trial runs at every rung and its final runs; rnnbench.experiment.tuning). ``vocab``: the
    corpus's vocabulary size, which total-parameter budgets need."""
    seen: dict[str, tuple[RunConfig, dict]] = {}
    # sizes: hidden sizes, or parameter budgets whose hidden size is solved per cell and depth
    check_size_axis(name, spec)
    by_budget = "budgets" in spec
    kind = check_budget_kind(name, spec, vocab)
    tuning = (Tuning.from_spec(name, spec["tuning"], TRAINING_KEYS, spec["seeds"])
              if "tuning" in spec else None)
    for cell, size, layers in itertools.product(
        spec["cells"], spec["budgets"] if by_budget else spec["hidden"], spec["layers"]
    ):
        merged = _recipe_for(name, spec, recipes, cell)
        tuned = set(tuning.space) if tuning else set()
        axis_keys = sorted(k for k, v in merged.items() if isinstance(v, list) and k not in tuned)
        for values in itertools.product(*(merged[k] for k in axis_keys)):
            axes = dict(zip(axis_keys, values, strict=True))
            keys = {**merged, **axes}
            hidden = (solve_hidden(cell, size, layers, keys.get("embedding_size"),
                                   vocab if kind else None)[0] if by_budget else size)
            base = {"cell": cell, "hidden": hidden, "layers": layers, "device": device,
                    "budget": size if by_budget else None, "budget_kind": kind, **keys}
            group = group_id(cell, hidden, layers, axes, base["budget"], kind)
            runs = list(_points(name, corpus, group, base, axes, spec["seeds"], tuning))
            for run in runs:
                if run.run_id in seen:
                    if seen[run.run_id][0] != run.config:
                        raise _collision(name, run.run_id, seen[run.run_id],
                                         (run.config, axes), corpus)
                    continue  # the same point listed twice (e.g. `seeds: [1, 1]`)
                seen[run.run_id] = (run.config, axes)
                reason = skip_reason(run.config)
                yield Skipped(name, run.run_id, reason) if reason else run


def _points(name: str, corpus: str, group: str, base: dict, axes: dict, seeds: list,
            tuning: Tuning | None):
    """The runs of one model: a run per seed; tuned, a trial per point and rung (at the trial
    seed) and a final run per seed, configured with the recipe's values until selection."""
    cell, hidden, layers = base["cell"], base["hidden"], base["layers"]
    size = (base["budget"], base["budget_kind"])
    role = "final" if tuning else "run"
    for seed in seeds:
        yield Run(name, run_id(cell, hidden, layers, seed, axes, *size),
                  RunConfig(seed=seed, **base), corpus, role, group)
    if tuning is None:
        return
    for rung, overrides in enumerate(tuning.rungs):
        for point in tuning.points():
            trial_axes = {**axes, **point, "rung": rung}
            cfg = RunConfig(seed=tuning.trial_seed, **{**base, **point, **overrides})
            yield Run(name, run_id(cell, hidden, layers, tuning.trial_seed, trial_axes, *size),
                      cfg, corpus, "trial", group, rung, tuple(sorted(point.items())))


def _no_runs(empty: list[str], skipped: list[Skipped], everything: bool) -> ConfigError:
    """The error for experiments whose every grid point is skipped, reasons grouped."""
    groups: dict[tuple[str, str], list[str]] = {}
    for s in skipped:
        if s.experiment in empty:
            groups.setdefault((s.experiment, s.reason), []).append(s.run_id)
    parts, fixes = [], []
    for (experiment, reason), ids in groups.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        parts.append(f"experiment {experiment!r}: {len(ids)} point(s) skipped because "
                     f"{reason} ({shown})")
        fix = next(f for _, r, f in SKIP_RULES if r == reason)
        fixes += [fix] if fix not in fixes else []
    names = ", ".join(map(repr, empty))
    if everything:
        head = "The config has no runs: every grid point is skipped, so there is nothing to train"
    elif len(empty) == 1:
        head = f"Experiment {names} has no runs: every grid point of it is skipped"
    else:
        head = f"Experiments {names} have no runs: every grid point of them is skipped"
    return ConfigError(f"{head}. {'; '.join(parts)}. Fix the grid so that every experiment has "
                       f"a point that runs (or remove the experiment): {'; '.join(fixes)}.")


def expand(config: dict, vocab: int | None = None) -> tuple[list[Run], list[Skipped]]:
    """All runs and skipped points of the config's experiments, in config order (``vocab``:
    the corpus's vocabulary size, for total-parameter budgets; rnnbench.model.params.corpus_vocab).

    Raises ConfigError before any job when two different points share a run id, when an
    experiment has no runs at all (every point skipped), or when total budgets lack ``vocab``.
    """
    runs: list[Run] = []
    skipped: list[Skipped] = []
    for name, spec in config["experiments"].items():
        for item in expand_experiment(name, spec, config["recipes"], config.get("device", "auto"),
                                      config["corpus"]["name"], vocab):
            (skipped if isinstance(item, Skipped) else runs).append(item)
    empty = [name for name in config["experiments"] if not any(r.experiment == name for r in runs)]
    if empty:
        raise _no_runs(empty, skipped, everything=not runs)
    return runs, skipped


def check_streams(runs: list[Run], tokens: dict[str, int] | None, corpus: str) -> None:
    """Raise ConfigError, before any job, naming every batch_size/bptt whose minibatches do
    not fit the corpus's splits (rnnbench.data.streams.stream_errors), with the runs affected."""
    if tokens is None:
        return
    problems: dict[str, list[str]] = {}
    for run in runs:
        for problem in stream_errors(run.config, tokens, corpus):
            problems.setdefault(problem, []).append(f"{run.experiment}/{run.run_id}")
    if not problems:
        return
    parts = []
    for problem, ids in problems.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        parts.append(f"{problem} ({shown})")
    raise ConfigError(
        f"Some runs cannot give a defined perplexity: {'; '.join(parts)}. A perplexity over no "
        "tokens is undefined, so nothing was started. Fix: lower batch_size or bptt in the "
        "recipe (or in the experiment's overrides), or use longer corpus files."
    )


def run_args(cfg: RunConfig) -> str:
    """Flags of ``python -m rnnbench.training.train`` for ``cfg`` (the inverse of its parser)."""
    args = []
    for key, value in cfg.to_dict().items():
        if value is None:
            continue
        args.append(f"--{key.replace('_', '-')} {value!r}" if isinstance(value, float)
                    else f"--{key.replace('_', '-')} {value}")
    return " ".join(args)
