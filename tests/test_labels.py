"""One name per model (rnnbench.analysis.labels): every variant option and grid axis is in it, and a
trial's group id gets the same name as its final runs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rnnbench.analysis.labels import group_label, model_label, parse_group, with_model
from rnnbench.analysis.pairs import label_runs
from rnnbench.experiment.grid import expand

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("row", "name"), [
    ({"cell": "rnn_relu", "irnn": 1.0}, "irnn"),
    ({"cell": "rnn_relu", "irnn": 0.5}, "irnn0.5"),
    ({"cell": "rnn_relu", "irnn": math.nan, "precision": "fp32"}, "rnn_relu"),
    ({"cell": "lstm", "forget_bias": 1.0, "precision": "bf16"}, "lstm+fb1+bf16"),
    ({"cell": "lstm", "init": "uniform", "init_scale": 0.1, "dropout": 0.0}, "lstm+uniform"),
    ({"cell": "lstm", "init": "seed", "init_scale": 0.05, "dropout": 0.5},
     "lstm+scale0.05+drop0.5"),
    ({"cell": "gru", "run_id": "gru-h32-l1-lr0.5-s2", "lr": 0.5}, "gru+lr0.5"),
])
def test_a_model_name_holds_every_variant_option_and_grid_axis(row, name):
    assert model_label(row) == name
    assert label_runs(pd.DataFrame([{"hidden": 8, **row}]))["model"].iloc[0] == name  # tables


def test_run_ids_and_group_ids_parse_into_cell_and_axes():
    assert parse_group("rnn_relu-p250k-l1-irnn1-s3") == ("rnn_relu", {"irnn": "1"})
    assert parse_group("lstm-h300-l2-bf16-dropout0.5-s1") == (
        "lstm", {"precision": "bf16", "dropout": "0.5"})
    assert parse_group("lstm-h200-l1-init_scale0.05") == ("lstm", {"init_scale": "0.05"})


def test_trials_and_final_runs_of_the_fair_grid_share_one_name_per_model():
    cfg = yaml.safe_load((ROOT / "config/fair.yaml").read_text())
    runs, _ = expand(cfg)
    names: dict[str, set[str]] = {}
    for run in runs:  # a final run named from its config and id, a trial from its group id
        name = (model_label({**run.config.to_dict(), "run_id": run.run_id})
                if run.role == "final" else group_label(run.group))
        names.setdefault(run.group, set()).add(name)
    assert all(len(n) == 1 for n in names.values()), names
    assert sorted(n.pop() for n in names.values()) == sorted(
        ["rnn_tanh", "rnn_relu", "irnn", "gru", "lstm", "lstm+fb1"])


def test_tables_without_a_model_column_get_one():
    df = with_model(pd.DataFrame([{"cell": "lstm", "hidden": 176, "budget": 250000,
                                   "run_id": "lstm-p250k-l1-forget_bias1-s1"}]))
    assert df.loc[0, "model"] == "lstm+fb1" and df.loc[0, "size"] == "p250k"
