"""Bad configs are refused before any job, each with one paragraph naming the key and the fix."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from helpers import ROOT, quick, snakemake

from rnnbench.config import FLOAT_FIELDS, INT_FIELDS, ConfigError, RunConfig
from rnnbench.config.schema import check_config
from rnnbench.experiment.grid import expand

SCHEMA = ROOT / "config/schema/config.schema.yaml"


def refusal(edit) -> str:
    """The one-paragraph message check_config gives for the quick config after ``edit``."""
    config = quick()
    edit(config)
    with pytest.raises(ConfigError) as err:
        check_config(config, SCHEMA)
    message = str(err.value)
    assert "\n" not in message and "config/schema/config.schema.yaml" in message
    return message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["recipes"]["quick"].update(epochs=2.0),
         "recipes.quick.epochs = 2.0 is written with a decimal point, and this key takes an "
         "integer: write 2"),
        (lambda c: c["experiments"]["quick"].update(hidden=[32.0]),
         "experiments.quick.hidden[0] = 32.0 is written with a decimal point"),
        (lambda c: c["recipes"]["quick"].update(bptt=[35, 2.5]),
         "recipes.quick.bptt[1] = 2.5 is not an integer, as this key needs: give a whole "
         "number such as 2 or 3"),
        (lambda c: c["experiments"]["quick"].update(seeds=[1.0]),
         "experiments.quick.seeds[0] = 1.0 is written with a decimal point"),
        (lambda c: c["corpus"].update(max_vocab=10000.0), "corpus.max_vocab = 10000.0"),
        (lambda c: c["recipes"]["quick"].update(max_batches=30.0), "write 30"),
    ],
)
def test_float_for_an_integer_key_is_refused_with_the_integer_to_write(edit, expected):
    assert expected in refusal(edit)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["recipes"]["quick"].update(lr=float("nan")), "recipes.quick.lr = nan"),
        (lambda c: c["recipes"]["quick"].update(clip_norm=float("inf")),
         "recipes.quick.clip_norm = inf"),
        (lambda c: c["recipes"]["quick"].update(decay_factor=[2.0, float("-inf")]),
         "recipes.quick.decay_factor[1] = -inf"),
        (lambda c: c["experiments"]["quick"].update(
            published={"test_ppl": float("nan"), "source": "x"}),
         "experiments.quick.published.test_ppl = nan"),
        (lambda c: c["experiments"]["quick"].update(
            overrides={"normalize_eps": float("nan")}),
         "experiments.quick.overrides.normalize_eps = nan"),
    ],
)
def test_non_finite_numbers_are_refused_everywhere(edit, expected):
    message = refusal(edit)
    assert expected + " is not a finite number; give a finite value" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["recipes"]["quick"].update(lr=True), "recipes.quick.lr = True is a boolean"),
        (lambda c: c["experiments"]["quick"].update(hidden=[True]),
         "experiments.quick.hidden[0] = True is a boolean"),
        (lambda c: c["recipes"]["quick"].update(max_eval_batches=False),
         "recipes.quick.max_eval_batches = False is a boolean"),
    ],
)
def test_booleans_are_not_numbers(edit, expected):
    assert expected + ", and this key takes a number" in refusal(edit)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lr: 1e-3", "recipes.quick.lr = '1e-3' is a string, and this key takes a number: "
         "write 1.0e-3, without quotes (PyYAML reads an exponent as a number only with a "
         "decimal point and a signed exponent)"),
        ("lr: [1.0e3, 2.5E-2]", "recipes.quick.lr[0] = '1.0e3' is a string, and this key takes "
         "a number: write 1.0e+3"),
        ("clip_norm: '5'", "recipes.quick.clip_norm = '5' is a string, and this key takes a "
         "number: write 5, without quotes (quotes make a string)"),
        ("epochs: \"3\"", "recipes.quick.epochs = '3' is a string"),
    ],
)
def test_numbers_that_yaml_reads_as_strings_are_refused_with_the_form_to_write(line, expected):
    value = yaml.safe_load(line)  # as PyYAML reads the config file
    assert expected in refusal(lambda c: c["recipes"]["quick"].update(value))


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda c: c["experiments"].update({"x" * 300: c["experiments"].pop("quick")}),
         "experiments: the name 'xxxx"),
        (lambda c: c["corpus"].update(name="p" * 65), "corpus.name: the name 'pppp"),
    ],
)
def test_names_too_long_for_a_file_system_are_refused(edit, where):
    message = refusal(edit)
    assert where in message and "more than the 64 allowed" in message
    assert "shorten it" in message and "x" * 41 not in message  # not 300 characters of x


def test_a_64_character_experiment_name_is_accepted():
    config = quick()
    config["experiments"] = {"e" * 64: config["experiments"]["quick"]}
    check_config(config, SCHEMA)


@pytest.mark.parametrize("name", [".", "..", ".hidden"])
def test_corpus_names_that_leave_results_data_are_refused(name):
    message = refusal(lambda c: c["corpus"].update(name=name))
    assert f"corpus.name = {name!r} is invalid: Folder name under results/data/" in message
    assert "not starting with '.'" in message


@pytest.mark.parametrize("name", ["ptb", "my-corpus.v2", "wiki_103"])
def test_ordinary_corpus_names_are_accepted(name):
    config = quick()
    config["corpus"]["name"] = name
    check_config(config, SCHEMA)


@pytest.mark.parametrize(
    "kw", [{"epochs": 2.0}, {"seed": True}, {"max_batches": 3.0}, {"lr": float("nan")},
           {"dropout": float("inf")}, {"init_scale": float("-inf")}],
)
def test_run_config_refuses_non_integers_and_non_finite_numbers(kw):
    key = next(iter(kw))
    with pytest.raises(ValueError, match=f"^{key} must be an? (integer|finite number), got"):
        RunConfig("lstm", 32, **kw)


def test_every_numeric_run_config_field_is_checked():
    numeric = {f.name for f in dataclasses.fields(RunConfig)
               if f.type in ("int", "float", "int | None", "float | None")}
    assert numeric == set(INT_FIELDS) | set(FLOAT_FIELDS)


def test_a_config_whose_points_are_all_skipped_says_why_before_any_job():
    config = quick()
    config["experiments"]["quick"].update(hidden=[32, 64])
    config["recipes"]["quick"]["dropout"] = 0.5
    with pytest.raises(ConfigError) as err:
        expand(config)
    message = str(err.value)
    assert message.startswith("The config has no runs: every grid point is skipped")
    # Eight points, one reason: grouped, with a few ids shown and the rest counted.
    assert ("experiment 'quick': 8 point(s) skipped because dropout acts between layers only, "
            "so it has no effect with layers=1 (rnn_tanh-h32-l1-s1, rnn_tanh-h64-l1-s1, "
            "rnn_relu-h32-l1-s1 and 5 more)") in message
    assert "layers of 2 or more (or set dropout to 0)" in message and "\n" not in message


def test_an_experiment_without_runs_is_refused_beside_one_with_runs():
    config = quick()
    config["experiments"]["deep"] = {**config["experiments"]["quick"],
                                     "overrides": {"dropout": 0.5}}
    with pytest.raises(ConfigError, match="^Experiment 'deep' has no runs: every grid point"):
        expand(config)


def test_colliding_run_ids_name_the_id_both_values_and_the_fix():
    config = quick()
    config["experiments"]["quick"].update(cells=["lstm"])
    config["recipes"]["quick"]["lr"] = [0.1, 0.1000001]
    with pytest.raises(ConfigError) as err:
        expand(config)
    message = str(err.value)
    assert ("Two different grid points of experiment 'quick' share the run id "
            "lstm-h32-l1-lr0.1-s1 (results/runs/ptb/quick/lstm-h32-l1-lr0.1-s1): one has lr=0.1, "
            "the other lr=0.1000001. Fix: ") in message
    assert "choose values that differ there, or put them in separate experiments" in message


def test_a_point_listed_twice_is_one_run():
    config = quick()
    config["experiments"]["quick"].update(seeds=[1, 1])
    runs, skipped = expand(config)
    assert len(runs) == 4 and not skipped


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    epochs: 2\n", "    epochs: 2.0\n",
         "recipes.quick.epochs = 2.0 is written with a decimal point, and this key takes an "
         "integer: write 2"),
        ("    lr: 1.0\n", "    lr: .nan\n", "recipes.quick.lr = nan is not a finite number"),
        ("    lr: 1.0\n", "    lr: 1e-3\n", "recipes.quick.lr = '1e-3' is a string, and this key "
         "takes a number: write 1.0e-3"),
        ("  quick:\n    cells", f"  {'q' * 300}:\n    cells", "more than the 64 allowed"),
        ("    lr: 1.0\n", "    lr: 1.0\n    dropout: 0.5\n",
         "The config has no runs: every grid point is skipped"),
    ],
)
def test_bad_config_fails_the_dry_run_before_any_job(tmp_path, old, new, expected):
    text = (ROOT / "config/quick.yaml").read_text()
    assert old in text
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(text.replace(old, new, 1))
    result = snakemake(tmp_path / "work", "-n", "--cores", "1", configfile=configfile)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "work/results").exists()
