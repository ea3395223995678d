"""One name per model, the same in every table and figure (no torch import).

A *model* is what an experiment compares: a cell together with every option that makes it a
variant of that cell, and any other training key that the grid varies (an axis, written in
the run id). Its size (hidden size or recurrent-parameter budget) and depth are not part of
the name: they are the panels and axes of the figures and the ``size``/``layers`` columns of
the tables. Examples::

    rnn_tanh         the plain cell
    irnn             rnn_relu with the IRNN initialisation, W_hh = I (Le et al. 2015)
    lstm+fb1         an LSTM with forget-gate bias 1 (Jozefowicz et al. 2015)
    lstm+bf16        bf16 products
    lstm+uniform     every parameter uniform(-init_scale, init_scale) (init: uniform)
    lstm+lr0.5       an axis that is no variant option (`lr: [0.5, 1]`), from the run id

Trials (trials.csv) carry only their model's group id (``rnn_relu-p250k-l1-irnn1``):
:func:`group_label` names it the same way from the axes written there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from rnnbench.config import PRECISIONS, TRAINING_KEYS
from rnnbench.model.params import size_part

# The comparison's order: vanilla cells, their rescue, the gated cells, then the gated cells
# without a recurrent matrix (minGRU, minLSTM: Feng et al. 2024) (models.csv).
MODEL_ORDER = ["rnn_tanh", "rnn_relu", "irnn", "gru", "lstm", "min_gru", "min_lstm"]
SEED = re.compile(r"-s\d+$")


def _set(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _num(value: Any) -> float:
    """A number, also as written in a run id (``1e_05``: rnnbench.experiment.grid writes ``-``
    as ``_``)."""
    try:
        return float(str(value).replace("_", "-"))
    except ValueError:
        return math.nan


def _g(value: Any) -> str:
    """``1``, ``0.5``: a number as the run id writes it (the text itself if none)."""
    number = _num(value)
    return str(value) if math.isnan(number) else f"{number:g}"


# Options that make a cell a variant, in the order their suffixes are written: key ->
# (whether the value makes a variant, i.e. differs from RunConfig's default; its suffix).
VARIANTS: dict[str, tuple[Callable[[Any], bool], Callable[[Any], str]]] = {
    "forget_bias": (_set, lambda v: f"fb{_g(v)}"),
    "init": (lambda v: _set(v) and v != "seed", str),
    "init_scale": (lambda v: _set(v) and _num(v) != 0.1, lambda v: f"scale{_g(v)}"),
    "dropout": (lambda v: _set(v) and _num(v) > 0, lambda v: f"drop{_g(v)}"),
    "embedding_size": (_set, lambda v: f"emb{_g(v)}"),
    "precision": (lambda v: _set(v) and v != "fp32", str),
}
IDENTITY = ("irnn", *VARIANTS)  # every config column that enters the name


def parse_group(group: str) -> tuple[str, dict[str, str]]:
    """The cell and the axes (key -> value text) of a run id or group id, e.g.
    ``rnn_relu-p250k-l1-irnn1-s3`` -> ``("rnn_relu", {"irnn": "1"})`` (rnnbench.experiment.grid)."""
    cell, *parts = SEED.sub("", group).split("-")
    axes: dict[str, str] = {}
    for part in parts[2:]:  # after the size (h150, p250k) and the depth (l1)
        key = max((k for k in TRAINING_KEYS if part.startswith(k)), key=len, default=None)
        if part in PRECISIONS:
            axes["precision"] = part
        elif key is not None:
            axes[key] = part[len(key):]
        elif not part.startswith("rung"):
            axes[part] = ""
    return cell, axes


def _label(cell: str, options: Mapping[str, Any], others: Mapping[str, str]) -> str:
    irnn = options.get("irnn")
    base = cell
    if cell == "rnn_relu" and _set(irnn):
        base = "irnn" if _num(irnn) == 1 else f"irnn{_g(irnn)}"
    suffixes = [fmt(options[k]) for k, (is_variant, fmt) in VARIANTS.items()
                if is_variant(options.get(k))]
    suffixes += [f"{k}{v}" for k, v in sorted(others.items())]
    return "+".join([base, *suffixes])


def model_label(row: Mapping) -> str:
    """The model's name from a row of a table of runs: its cell, its variant options and, from
    its ``run_id`` where there is one, any other axis of the grid."""
    run_id = row.get("run_id")
    axes = parse_group(run_id)[1] if isinstance(run_id, str) else {}
    options = {k: row.get(k) for k in IDENTITY}
    for key in IDENTITY:  # an option only the id names (a table without the column)
        if not _set(options[key]) and key in axes:
            options[key] = axes[key]
    return _label(row["cell"], options, {k: v for k, v in axes.items() if k not in IDENTITY})


def group_label(group: str) -> str:
    """The model's name from its group id (trials.csv's ``model``): the same name its final
    runs get from :func:`model_label`."""
    cell, axes = parse_group(group)
    return _label(cell, {k: axes.get(k) for k in IDENTITY},
                  {k: v for k, v in axes.items() if k not in IDENTITY})


def size_label(row: Mapping) -> str:
    """``p250k`` for a recurrent-parameter budget, ``t4M`` for a total one, else ``h150``."""
    budget = row.get("budget")
    kind = row.get("budget_kind")
    return size_part(int(row["hidden"]), int(budget) if _set(budget) else None,
                     kind if isinstance(kind, str) else None)


def base_cell(model: str) -> str:
    """The cell a model is a variant of: ``irnn2`` -> ``rnn_relu``, ``lstm+fb1`` -> ``lstm``."""
    base = model.split("+")[0]
    return "rnn_relu" if base.startswith("irnn") else base


def model_rank(model: str) -> tuple[int, str]:
    """Sort key: MODEL_ORDER of the name before its options, then the name."""
    base = model.split("+")[0]
    base = "irnn" if base.startswith("irnn") else base
    return (MODEL_ORDER.index(base) if base in MODEL_ORDER else len(MODEL_ORDER), model)


def with_model(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``model`` and ``size`` columns (kept where it has them already)."""
    out = df.copy()
    if "model" not in out or out["model"].isna().any():
        out["model"] = out.apply(model_label, axis=1) if len(out) else pd.Series(dtype=str)
    if "size" not in out:
        out["size"] = out.apply(size_label, axis=1) if len(out) else pd.Series(dtype=str)
    return out
