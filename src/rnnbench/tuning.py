"""Tuning as data: an equal trial budget per model, successive halving on validation only.

No torch import (Snakemake imports this). An experiment may declare::

    tuning:
      space: {lr: [0.5, 1, 2, 4, 8], clip_norm: [1, 5]}  # candidate values per training key
      trials: 6          # points drawn from the space, the same points for every model
      rungs:             # training keys per rung, cheapest first (successive halving)
        - {epochs: 1, max_batches: 100}
        - {epochs: 2, max_batches: 300}
      keep: 0.5          # share of a rung's trials promoted to the next one (at least one)
      trial_seed: 1      # the seed of every trial run

Every model (a cell with its initialisation options, at one size and depth) trains every
point at rung 0; a rung's finished trials are ranked by their best **validation** perplexity
(history.csv; trials are never evaluated on test) and the best ``ceil(keep * n)`` of the
``n`` trials that entered it are promoted; the best point of the last rung is the model's
selected configuration, trained with the experiment's ``seeds`` to its full recipe and only then
evaluated on test (Li et al. 2018, Hyperband; Melis, Dyer and Blunsom 2018 on equal budgets).
A diverged trial is a row with its status, ranked after every finished one, never promoted.

    python -m rnnbench.tuning select --rung 0 --keep 0.5 --out rung0.json RUN_DIR ...
    python -m rnnbench.tuning collect --out results/studies/grid/tables/trials.csv SELECTION.json
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

from rnnbench.io import write_json, write_text
from rnnbench.schema import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """An experiment's search space, trial budget and rungs."""

    space: dict[str, list]
    trials: int
    rungs: list[dict]
    keep: float = 0.5
    trial_seed: int = 1

    @classmethod
    def from_spec(cls, experiment: str, spec: dict, training_keys: tuple[str, ...]) -> Tuning:
        """From an experiment's ``tuning:`` block, naming any key that is not a training key."""
        unknown = sorted((set(spec["space"]) | {k for r in spec["rungs"] for k in r})
                         - set(training_keys))
        if unknown:
            raise ConfigError(
                f"experiments.{experiment}.tuning names {', '.join(unknown)}, which "
                f"{'is not a training key' if len(unknown) == 1 else 'are not training keys'}"
                f"; the space and the rungs take training keys ({', '.join(training_keys)}).")
        return cls(space={k: list(v) for k, v in spec["space"].items()}, trials=spec["trials"],
                   rungs=[dict(r) for r in spec["rungs"]], keep=spec.get("keep", 0.5),
                   trial_seed=spec.get("trial_seed", 1))

    def points(self) -> list[dict[str, Any]]:
        """The trial points: the whole grid of the space when it has at most ``trials`` points,
        else ``trials`` of them drawn without replacement (fixed seed), in grid order."""
        keys = sorted(self.space)
        grid = [dict(zip(keys, values, strict=True))
                for values in itertools.product(*(self.space[k] for k in keys))]
        if self.trials >= len(grid):
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
        return (f"Tuning {experiment}: {models} models x {len(self.points())} trials each "
                f"(the same points; trials per rung {self.planned()}, ranked on validation "
                f"only; {space}), then {seeds} seeds of each model's selected point.")


def point_key(point: dict[str, Any]) -> str:
    """A canonical text for a point (the key of a dict of trials)."""
    return json.dumps(point, sort_keys=True)


def best_valid(run_dir: Path) -> float:
    """The lowest validation perplexity of a trial's finished epochs (NaN if none)."""
    with open(run_dir / "history.csv", newline="") as f:
        values = [float(r["valid_ppl"]) for r in csv.DictReader(f) if r.get("valid_ppl")]
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.nan


def score(run_dir: Path) -> dict[str, Any]:
    """A trial's row: run id, status, its point's keys and best validation perplexity.

    Reads train.json and history.csv only: a trial has no eval.json, and nothing here would
    read one, so no test number can take part in a selection."""
    meta = json.loads((run_dir / "train.json").read_text())
    valid = best_valid(run_dir) if meta["status"] == "ok" else math.nan
    return {"run_id": meta["run_id"], "status": meta["status"], "valid_ppl": valid,
            "config": meta["config"]}


def select(scored: list[dict], points: list[dict], keep_count: int) -> dict[str, Any]:
    """Rank ``scored`` trials (one per point, same order), finished ones by validation
    perplexity then diverged ones; promote the best ``keep_count`` finished ones."""
    rows = [{**s, "point": p} for s, p in zip(scored, points, strict=True)]
    ranked = sorted(rows, key=lambda r: (not math.isfinite(r["valid_ppl"]),
                                          r["valid_ppl"] if math.isfinite(r["valid_ppl"])
                                          else 0.0, r["run_id"]))
    finished = [r for r in ranked if math.isfinite(r["valid_ppl"])]
    promoted = finished[:keep_count]
    return {"trials": [{"run_id": r["run_id"], "point": r["point"], "status": r["status"],
                        "valid_ppl": r["valid_ppl"] if math.isfinite(r["valid_ppl"]) else None,
                        "rank": i + 1, "promoted": r in promoted}
                       for i, r in enumerate(ranked)],
            "promoted": [r["point"] for r in promoted],
            "selected": promoted[0]["point"] if promoted else None}


def selected_config(run: Any, selection: Any) -> Any:
    """A final run's RunConfig with the point its model's last rung selected (``selection``:
    that rung's JSON file, or a one-item list of it); ConfigError when every trial failed."""
    import dataclasses

    path = Path(selection if isinstance(selection, (str, Path)) else list(selection)[0])
    chosen = json.loads(path.read_text())["selected"]
    if chosen is None:
        raise ConfigError(
            f"No trial of {run.experiment}/{run.group} finished its last rung ({path}: every "
            "trial diverged or was not promoted), so there is no selected configuration to "
            "train its final runs with. Widen the search space (e.g. smaller learning rates) "
            "or make the rungs longer, then rerun.")
    return dataclasses.replace(run.config, **chosen)


def trial_rows(selections: list[dict]) -> list[dict]:
    """trials.csv: one row per trial and rung, with the group's labels and the point's keys."""
    rows = []
    for sel in selections:
        last = sel["rung"] == sel["rungs"] - 1
        for t in sel["trials"]:
            rows.append({**sel["labels"], "rung": sel["rung"], "run_id": t["run_id"],
                         **t["point"], "status": t["status"], "valid_ppl": t["valid_ppl"],
                         "rank": t["rank"], "promoted": t["promoted"] and not last,
                         "selected": last and t["point"] == sel["selected"]})
    return rows


def _csv(rows: list[dict]) -> str:
    """Rows as CSV text (quoted where a value needs it), columns in order of first use."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


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
        write_text(args.out, _csv(rows))
        log.info("%d trials -> %s", len(rows), args.out)
        return 0
    if args.command == "split":
        rows = list(csv.DictReader(args.trials.open(newline="")))
        for experiment in dict.fromkeys(r["experiment"] for r in rows):
            mine = [r for r in rows if r["experiment"] == experiment]
            write_text(args.out_dir / experiment / "trials.csv", _csv(mine))
        return 0
    result = select([score(r) for r in args.runs], json.loads(args.points), args.keep_count)
    write_json(args.out, {"rung": args.rung, "rungs": args.rungs,
                          "labels": json.loads(args.labels), **result})
    log.info("rung %d: %d trials, promoted %s, selected %s", args.rung, len(args.runs),
             result["promoted"], result["selected"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
