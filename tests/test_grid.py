"""Grid expansion, run ids, and config validation messages."""

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from rnnbench.config import TRAINING_KEYS, ConfigError, RunConfig
from rnnbench.config.schema import check_config
from rnnbench.experiment.grid import expand, run_args, run_id
from rnnbench.model.params import corpus_vocab
from rnnbench.training.train import build_parser

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config/schema/config.schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_default_grid_has_72_runs_with_readable_ids():
    runs, skipped = expand(load("grid.yaml"))
    assert len(runs) == 72 and not skipped
    ids = {r.run_id for r in runs}
    assert "lstm-h300-l1-s1" in ids and "rnn_relu-h650-l2-s3" in ids
    lstm = next(r for r in runs if r.run_id == "lstm-h300-l1-s1").config
    assert (lstm.epochs, lstm.lr, lstm.decay_start, lstm.decay_factor) == (8, 5.0, 2, 3.0)
    rnn = next(r for r in runs if r.run_id == "rnn_tanh-h150-l1-s1").config
    assert (rnn.epochs, rnn.lr, rnn.decay_start, rnn.decay_factor) == (10, 1.0, 4, 1.1)


def test_list_valued_key_becomes_an_axis_and_keeps_existing_ids():
    config = load("quick.yaml")
    before = {r.run_id for r in expand(config)[0]}
    config["experiments"]["quick"]["hidden"] = [32, 64]
    after = {r.run_id for r in expand(config)[0]}
    assert before < after
    config["experiments"]["quick"]["cell_overrides"] = {"lstm": {"lr": [0.5, 1.0]}}
    ids = {r.run_id for r in expand(config)[0]}
    assert {"lstm-h32-l1-lr0.5-s1", "lstm-h32-l1-lr1-s1"} <= ids


def test_dropout_with_one_layer_is_skipped_with_a_reason():
    config = load("quick.yaml")
    config["experiments"]["quick"]["layers"] = [1, 2]
    config["experiments"]["quick"]["overrides"] = {"dropout": [0.0, 0.5]}
    runs, skipped = expand(config)
    assert len(runs) == 4 * 3 and len(skipped) == 4
    assert all("layers=1" in s.reason for s in skipped)


def test_run_args_round_trip_through_the_train_parser():
    cfg = RunConfig("gru", 300, 2, 7, lr=1 / 3, dropout=0.25, max_batches=5, device="cpu")
    args = build_parser().parse_args(run_args(cfg).split() + [
        "--data-dir", "d", "--run-dir", "r", "--checkpoint", "c"])
    fields = {k: v for k, v in vars(args).items() if k in cfg.to_dict()}
    assert RunConfig(**fields) == cfg


def test_run_id_formats_values_safely():
    rid = run_id("lstm", 300, 1, 2, {"lr": 0.5, "grad": "clip"})
    assert rid == "lstm-h300-l1-gradclip-lr0.5-s2"


def test_schema_defaults_equal_the_dataclass_defaults():
    schema = yaml.safe_load(SCHEMA.read_text())
    props = schema["$defs"]["training"]["properties"]
    assert set(props) == set(TRAINING_KEYS)
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    assert {k: props[k]["default"] for k in props} == {k: defaults[k] for k in props}


@pytest.mark.parametrize("name", ["grid.yaml", "scaling.yaml", "quick.yaml", "reproduce.yaml",
                                  "gradients.yaml", "fair.yaml", "converged.yaml"])
def test_shipped_configs_are_valid(name, tmp_path):
    check_config(load(name), SCHEMA)
    # total-parameter budgets need the vocabulary: PTB's is known from its checksum
    vocab = corpus_vocab(load(name)["corpus"], tmp_path / "stats.json")
    runs, _ = expand(load(name), vocab)
    assert runs


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.update(epochz=3), "unknown key(s) 'epochz' in the top level; allowed keys"),
        (lambda c: c["experiments"]["quick"].update(cells=["lstm", "transformer"]),
         "experiments.quick.cells[1] is 'transformer', which is not allowed; choose one of "
         "rnn_tanh, rnn_relu, lstm, gru"),
        (lambda c: c["experiments"]["quick"].update(hidden=[0]),
         "experiments.quick.hidden[0] = 0 is invalid: 0 is less than the minimum of 1"),
        (lambda c: c["recipes"]["quick"].update(grad="clipp"), "recipes.quick.grad = 'clipp'"),
        (lambda c: c["recipes"]["quick"].update(lr=-1), "recipes.quick.lr = -1"),
        (lambda c: c.update(device="tpu"), "device is 'tpu', which is not allowed; choose one of "
         "auto, cpu, cuda"),
    ],
)
def test_bad_config_values_get_one_clear_message(edit, expected):
    config = copy.deepcopy(load("quick.yaml"))
    edit(config)
    with pytest.raises(ConfigError) as err:
        check_config(config, SCHEMA)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
