"""Tuning as data: an equal trial budget per model, successive halving on validation only.

No torch import (Snakemake imports this). An experiment may declare::

    tuning:
      space: {lr: [0.5, 1, 2, 4, 8], clip_norm: [1, 5]}  # candidate values per training key
      trials: 6          # optional: a random sample of the space (default: its full grid)
      rungs:             # training keys per rung, cheapest first (successive halving)
        - {epochs: 1, max_batches: 100}
        - {epochs: 2, max_batches: 300}
      keep: 0.5          # share of a rung's trials promoted to the next one (at least one)
      trial_seed: 0      # optional: the seed of every trial (default: one no final run uses)

Every model (a cell with its initialisation options, at one size and depth) trains every
point at rung 0; a rung's finished trials are ranked by their best **validation** perplexity
(history.csv; trials are never evaluated on test) and the best ``ceil(keep * n)`` of the
``n`` trials that entered it are promoted; the best point of the last rung is the model's
selected configuration, trained with the experiment's ``seeds`` to its full recipe and only then
evaluated on test (Li et al. 2018, Hyperband; Melis, Dyer and Blunsom 2018 on equal budgets).

The search cannot fool itself:
- a trial is *diverged* when training diverged, or its best validation perplexity is not
  finite or worse than a uniform guess over the vocabulary (perplexity = vocabulary size): a
  row with its reason, ranked after every finished one, never promoted;
- a rung with fewer finished trials than it should promote is *under-filled*, said in its
  log and in trials.csv;
- a selected value at the min or max of its key's values is on the *edge* of the space
  (trials.csv, comparisons.md); a config that publishes refuses to train final runs on one
  (widen the space) unless ``allow_edge``;
- the trials' seed is one no final run uses, unless ``allow_shared_seed`` says otherwise.

    python -m rnnbench.experiment.tuning select --rung 0 --keep 0.5 --out rung0.json RUN_DIR ...
    python -m rnnbench.experiment.tuning collect --tunings '{"fair": {"space": ..., "trial_seed": 1,
        "seeds": [1, 2]}}' --out results/studies/grid/tables/trials.csv SELECTION.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnbench.config import ConfigError
from rnnbench.experiment.trials import annotate, edge_flags, to_csv, trial_rows
from rnnbench.io import write_json, write_text

# What a tuning trial's published copy keeps (all that its rung's selection reads), under
# results/reference/{experiment}/trials/{run}/
TRIAL_FILES = ("train.json", "history.csv")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """An experiment's search space, trial budget and rungs."""

    space: dict[str, list]
    trials: int | None  # None: the full grid of the space
    rungs: list[dict]
    keep: float = 0.5
    trial_seed: int = 0
    # the trial seed may be one of the final runs' seeds (a published experiment made so)
    shared_seed: bool = False
    allow_edge: bool = False

    @classmethod
    def from_spec(cls, experiment: str, spec: dict, training_keys: tuple[str, ...],
                  seeds: list[int] | tuple[int, ...] = ()) -> Tuning:
        """From an experiment's ``tuning:`` block and its final ``seeds``, naming any key that
        is not a training key and refusing a trial seed that a final run uses."""
        unknown = sorted((set(spec["space"]) | {k for r in spec["rungs"] for k in r})
                         - set(training_keys))
        if unknown:
            raise ConfigError(
                f"experiments.{experiment}.tuning names {', '.join(unknown)}, which "
                f"{'is not a training key' if len(unknown) == 1 else 'are not training keys'}"
                f"; the space and the rungs take training keys ({', '.join(training_keys)}).")
        seed = spec.get("trial_seed", default_trial_seed(seeds))
        if seed in seeds and not spec.get("allow_shared_seed", False):
            raise ConfigError(
                f"experiments.{experiment}.tuning.trial_seed is {seed}, which is also one of "
                f"its final seeds ({list(seeds)}): the selection would then have seen the "
                "very initialisation (and every other draw) that final run is scored with. Remove "
                f"trial_seed (the default, {default_trial_seed(seeds)}, is a seed no final run "
                "uses), give one that is not in `seeds`, or, to keep a published experiment as "
                "it was, set `allow_shared_seed: true` in its tuning block.")
        return cls(space={k: list(v) for k, v in spec["space"].items()},
                   trials=spec.get("trials"), rungs=[dict(r) for r in spec["rungs"]],
                   keep=spec.get("keep", 0.5), trial_seed=seed, shared_seed=seed in seeds,
                   allow_edge=spec.get("allow_edge", False))

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the space, keys sorted, values in their declared order."""
        keys = sorted(self.space)
        return [dict(zip(keys, values, strict=True))
                for values in itertools.product(*(self.space[k] for k in keys))]

    def points(self) -> list[dict[str, Any]]:
        """The trial points: the full grid of the space, or, when ``trials`` asks for fewer,
        that many drawn without replacement (fixed seed), in grid order."""
        grid = self.grid()
        if self.trials is None or self.trials >= len(grid):
            return grid
        chosen = sorted(random.Random(0).sample(range(len(grid)), self.trials))
        return [grid[i] for i in chosen]

    def promoted_count(self, entered: int) -> int:
        """How many of the ``entered`` trials of a rung go on: ceil(keep * entered), >= 1."""
        return max(1, math.ceil(self.keep * entered))

    def planned(self) -> list[int]:
        """Trials per rung if none diverges: n, then ceil(keep * n), ..."""
        counts = [len(self.points())]
        for _ in self.rungs[1:]:
            counts.append(self.promoted_count(counts[-1]))
        return counts


    def describe(self, experiment: str, models: int, seeds: int) -> str:
        """One line of the plan: the budget per model, the rungs, the space and the finals."""
        space = "; ".join(f"{k} in {v}" for k, v in sorted(self.space.items()))
        n, grid = len(self.points()), len(self.grid())
        drawn = ("the full grid" if n == grid else
                 f"a random sample of {n} of the {grid} grid points (`trials: {self.trials}`)")
        seed = (f"trial seed {self.trial_seed}, shared with the final runs (allow_shared_seed)"
                if self.shared_seed else f"trial seed {self.trial_seed}")
        return (f"Tuning {experiment}: {models} models x {n} trials each "
                f"({drawn}, the same points; trials per rung {self.planned()}, ranked on "
                f"validation only; {space}; {seed}), then {seeds} seeds of each model's "
                "selected point.")


def default_trial_seed(seeds: list[int] | tuple[int, ...]) -> int:
    """The smallest non-negative seed that no final run uses."""
    return next(s for s in itertools.count() if s not in set(seeds))


def point_key(point: dict[str, Any]) -> str:
    """A canonical text for a point (the key of a dict of trials)."""
    return json.dumps(point, sort_keys=True)


def best_valid(run_dir: Path) -> float:
    """The lowest validation perplexity of a trial's finished epochs (NaN if none)."""
    with open(run_dir / "history.csv", newline="") as f:
        values = [float(r["valid_ppl"]) for r in csv.DictReader(f) if r.get("valid_ppl")]
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.nan


def divergence(meta: dict, valid: float) -> str:
    """Why a trial counts as diverged ('' when it finished): training diverged, no finite
    validation perplexity, or one worse than a uniform guess over the vocabulary."""
    if meta["status"] != "ok":
        step = meta.get("diverged_step")
        return f"training {meta['status']}" + (f" at step {step}" if step is not None else "")
    if not math.isfinite(valid):
        return "no finite validation perplexity"
    vocab = meta.get("vocab_size")  # a uniform guess over the vocabulary has perplexity V
    if vocab and valid > vocab:
        return (f"validation perplexity {valid:.4g} is worse than a uniform guess over the "
                f"{vocab}-word vocabulary (perplexity {vocab})")
    return ""


def score(run_dir: Path) -> dict[str, Any]:
    """A trial's row: run id, status (ok or diverged, with the reason), its best validation
    perplexity (NaN when diverged) and its config.

    Reads train.json and history.csv only: a trial has no eval.json, and nothing here would
    read one, so no test number can take part in a selection."""
    meta = json.loads((run_dir / "train.json").read_text())
    valid = best_valid(run_dir) if meta["status"] == "ok" else math.nan
    reason = divergence(meta, valid)
    return {"run_id": meta["run_id"], "status": "diverged" if reason else "ok",
            "reason": reason, "valid_ppl": math.nan if reason else valid,
            "config": meta["config"]}


def select(scored: list[dict], points: list[dict], keep_count: int) -> dict[str, Any]:
    """Rank ``scored`` trials (one per point, same order), finished ones by validation
    perplexity then diverged ones; promote the best ``keep_count`` finished ones. Fewer
    finished trials than ``keep_count`` make the rung under-filled."""
    rows = [{**s, "point": p} for s, p in zip(scored, points, strict=True)]
    ranked = sorted(rows, key=lambda r: (r["status"] != "ok",
                                          r["valid_ppl"] if r["status"] == "ok" else 0.0,
                                          r["run_id"]))
    finished = [r for r in ranked if r["status"] == "ok"]
    promoted = finished[:keep_count]
    return {"trials": [{"run_id": r["run_id"], "point": r["point"], "status": r["status"],
                        "reason": r.get("reason", ""),
                        "valid_ppl": r["valid_ppl"] if r["status"] == "ok" else None,
                        "rank": i + 1, "promoted": r in promoted}
                       for i, r in enumerate(ranked)],
            "finished": len(finished), "planned_promotions": keep_count,
            "underfilled": len(finished) < keep_count,
            "promoted": [r["point"] for r in promoted],
            "selected": promoted[0]["point"] if promoted else None}


def selected_config(run: Any, selection: Any, tuning: Tuning | None = None,
                    refuse_edge: bool = False) -> Any:
    """A final run's RunConfig with the point its model's last rung selected (``selection``:
    that rung's JSON file, or a one-item list of it); ConfigError when every trial failed, or,
    with ``refuse_edge`` (a config that publishes), when the point is on an edge of
    ``tuning``'s space and the experiment does not ``allow_edge``."""
    import dataclasses

    path = Path(selection if isinstance(selection, (str, Path)) else list(selection)[0])
    chosen = json.loads(path.read_text())["selected"]
    if chosen is None:
        raise ConfigError(
            f"No trial of {run.experiment}/{run.group} finished its last rung ({path}: every "
            "trial diverged or was not promoted), so there is no selected configuration to "
            "train its final runs with. Widen the search space (e.g. smaller learning rates) "
            "or make the rungs longer, then rerun.")
    edges = edge_flags(chosen, tuning.space) if tuning else []
    if refuse_edge and edges and not tuning.allow_edge:
        raise ConfigError(
            f"The tuning of {run.experiment}/{run.group} selected {chosen} ({path}), on the "
            f"edge of its search space ({', '.join(edges)}): the best value may lie outside "
            "it, and this config publishes its results, whose answer may not rest on an edge "
            f"selection. Widen experiments.{run.experiment}.tuning.space beyond that end "
            "(e.g. add a smaller or larger value), then rerun; or, to publish it anyway, set "
            "`allow_edge: true` in its tuning block (the tables still flag the edge).")
    return dataclasses.replace(run.config, **chosen)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``select`` one rung of one model, or ``collect`` trials.csv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sel = sub.add_parser("select", help="rank one rung's trials of one model, promote the best")
    sel.add_argument("runs", nargs="*", type=Path, help="the rung's trial run folders")
    sel.add_argument("--points", required=True, help="JSON list: each run's point, in order")
    sel.add_argument("--labels", required=True, help="JSON: the model's labels (trials.csv)")
    sel.add_argument("--rung", required=True, type=int)
    sel.add_argument("--rungs", required=True, type=int, help="rungs in all")
    sel.add_argument("--keep-count", required=True, type=int, help="trials to promote")
    sel.add_argument("--out", required=True, type=Path)
    col = sub.add_parser("collect", help="every selection's trials as one table")
    col.add_argument("selections", nargs="+", type=Path,
                     help="rung selections (.json), or published trials tables (.csv)")
    col.add_argument("--out", required=True, type=Path)
    col.add_argument("--tunings", default="{}", help="JSON: experiment -> {space, "
                     "trial_seed, seeds} (edge and seed columns)")
    spl = sub.add_parser("split", help="publish trials.csv per experiment")
    spl.add_argument("trials", type=Path)
    spl.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "collect":
        rows = []
        for path in args.selections:  # published tables are read back as they were written
            rows += (list(csv.DictReader(path.open(newline=""))) if path.suffix == ".csv"
                     else trial_rows([json.loads(path.read_text())]))
        write_text(args.out, to_csv(annotate(rows, json.loads(args.tunings))))
        log.info("%d trials -> %s", len(rows), args.out)
        return 0
    if args.command == "split":
        rows = list(csv.DictReader(args.trials.open(newline="")))
        for experiment in dict.fromkeys(r["experiment"] for r in rows):
            mine = [r for r in rows if r["experiment"] == experiment]
            write_text(args.out_dir / experiment / "trials.csv", to_csv(mine))
        return 0
    result = select([score(r) for r in args.runs], json.loads(args.points), args.keep_count)
    write_json(args.out, {"rung": args.rung, "rungs": args.rungs,
                          "labels": json.loads(args.labels), **result})
    log.info("rung %d: %d trials, %d finished, promoted %s, selected %s", args.rung,
             len(args.runs), result["finished"], result["promoted"], result["selected"])
    for t in result["trials"]:
        if t["status"] != "ok":
            log.warning("%s diverged: %s", t["run_id"], t["reason"])
    if result["underfilled"]:
        log.warning("rung %d is under-filled: %d finished trial(s), fewer than the %d it "
                    "should promote; only %d go on", args.rung, result["finished"],
                    result["planned_promotions"], len(result["promoted"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
