"""Expand the config's experiments into runs (no torch import: Snakemake imports this).

An experiment crosses ``cells x hidden x layers x seeds``; each cell takes a named recipe,
then the experiment's ``overrides`` and ``cell_overrides[cell]`` on top. Any training key whose
value is a list becomes one more axis, and its value is written into the run id, so adding a
grid point never renames (and so never reruns) an existing run::

    lstm-h300-l1-s1            # plain grid point
    lstm-h300-l2-dropout0.5-s1 # `dropout: [0, 0.5]` as an axis
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from rnnbench.config import TRAINING_KEYS, RunConfig

SAFE = re.compile(r"[^A-Za-z0-9_.]+")


@dataclass(frozen=True)
class Run:
    """One grid point: where its files go and its full configuration."""

    experiment: str
    run_id: str
    config: RunConfig

    @property
    def path(self) -> str:
        """Folder of the run's outputs."""
        return f"results/runs/{self.experiment}/{self.run_id}"


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


def run_id(cell: str, hidden: int, layers: int, seed: int, axes: dict[str, Any]) -> str:
    """Readable, stable id: ``{cell}-h{hidden}-l{layers}[-{key}{value}...]-s{seed}``."""
    parts = [cell, f"h{hidden}", f"l{layers}"]
    parts += [f"{key}{format_value(axes[key])}" for key in sorted(axes)]
    parts.append(f"s{seed}")
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


def skip_reason(cfg: RunConfig) -> str | None:
    """Why a combination is not worth running, or None."""
    if cfg.dropout > 0 and cfg.layers == 1:
        return "dropout acts between layers only, so it has no effect with layers=1"
    return None


def expand_experiment(name: str, spec: dict, recipes: dict, device: str = "auto"):
    """Yield Run or Skipped for every point of one experiment."""
    for cell, hidden, layers, seed in itertools.product(
        spec["cells"], spec["hidden"], spec["layers"], spec["seeds"]
    ):
        merged = _recipe_for(name, spec, recipes, cell)
        axis_keys = sorted(k for k, v in merged.items() if isinstance(v, list))
        for values in itertools.product(*(merged[k] for k in axis_keys)):
            axes = dict(zip(axis_keys, values, strict=True))
            keys = {**merged, **axes}
            cfg = RunConfig(cell=cell, hidden=hidden, layers=layers, seed=seed, device=device,
                            **keys)
            rid = run_id(cell, hidden, layers, seed, axes)
            reason = skip_reason(cfg)
            yield Skipped(name, rid, reason) if reason else Run(name, rid, cfg)


def expand(config: dict) -> tuple[list[Run], list[Skipped]]:
    """All runs and skipped points of the config's experiments, in config order."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    seen: dict[tuple[str, str], RunConfig] = {}
    for name, spec in config["experiments"].items():
        for item in expand_experiment(name, spec, config["recipes"], config.get("device", "auto")):
            if isinstance(item, Skipped):
                skipped.append(item)
                continue
            key = (item.experiment, item.run_id)
            if key in seen:
                if seen[key] != item.config:
                    raise ValueError(f"two different runs share the id {item.path}")
                continue
            seen[key] = item.config
            runs.append(item)
    return runs, skipped


def stream_errors(cfg: RunConfig, tokens: dict[str, int], corpus: str = "the corpus") -> list[str]:
    """Why ``cfg`` cannot give defined perplexities on splits of ``tokens`` (split -> count).

    A split is cut into ``batch_size`` columns of ``tokens // batch_size`` rows, and the
    targets are the rows one down (rnnbench.data). Training needs one whole minibatch,
    ``batch_size * (bptt + 1)`` tokens; valid and test need one row of targets,
    ``2 * batch_size`` tokens, or their perplexity would be a mean over no tokens. Empty
    list: every split given is long enough.
    """
    need = {"train": cfg.batch_size * (cfg.bptt + 1), "valid": 2 * cfg.batch_size,
            "test": 2 * cfg.batch_size}
    unit = {"train": f"one minibatch (batch_size {cfg.batch_size} x (bptt {cfg.bptt} + 1))",
            "valid": f"one row of targets (2 x batch_size {cfg.batch_size})",
            "test": f"one row of targets (2 x batch_size {cfg.batch_size})"}
    problems = []
    for split in ("train", "valid", "test"):
        have = tokens.get(split)
        if have is None or have >= need[split]:
            continue
        what = "is empty" if have == 0 else f"has only {have:,} tokens"
        problems.append(f"the {split} split of {corpus} {what}, fewer than {unit[split]} = "
                        f"{need[split]:,} tokens")
    return problems


def run_args(cfg: RunConfig) -> str:
    """Flags of ``python -m rnnbench.train`` for ``cfg`` (the inverse of its parser)."""
    args = []
    for key, value in cfg.to_dict().items():
        if value is None:
            continue
        args.append(f"--{key.replace('_', '-')} {value!r}" if isinstance(value, float)
                    else f"--{key.replace('_', '-')} {value}")
    return " ".join(args)
