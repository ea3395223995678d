"""Runs whose minibatches do not fit the corpus are refused before any job (no perplexity
over zero tokens)."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT, snakemake

from rnnbench.config import ConfigError, RunConfig
from rnnbench.data.sources import KNOWN_TOKENS, corpus_tokens
from rnnbench.data.streams import stream_errors
from rnnbench.experiment.grid import Run, check_streams

PTB = {"train": 929_589, "valid": 73_760, "test": 82_430}


def test_ptb_with_the_recipes_batch_sizes_fits():
    assert stream_errors(RunConfig(cell="lstm", hidden=8), PTB) == []


def test_a_batch_wider_than_valid_and_test_names_each_split_and_the_sizes():
    problems = stream_errors(RunConfig(cell="lstm", hidden=8, batch_size=80_000), PTB, "ptb")
    assert len(problems) == 3  # train: 11 rows < bptt + 1 = 36; valid, test: 0 rows of targets
    assert problems[1] == ("the valid split of ptb has only 73,760 tokens, fewer than one row "
                           "of targets (2 x batch_size 80000) = 160,000 tokens")


def test_an_empty_split_is_named_empty():
    problems = stream_errors(RunConfig(cell="gru", hidden=8), {**PTB, "test": 0}, "mine")
    assert problems == ["the test split of mine is empty, fewer than one row of targets "
                        "(2 x batch_size 20) = 40 tokens"]


def test_training_needs_one_whole_minibatch():
    cfg = RunConfig(cell="rnn_tanh", hidden=8, batch_size=2, bptt=5)
    assert stream_errors(cfg, {"train": 12, "valid": 4, "test": 4}) == []
    assert "train split" in stream_errors(cfg, {"train": 11, "valid": 4, "test": 4})[0]


def test_token_counts_come_from_stats_of_these_files_or_the_known_ptb_checksum(tmp_path):
    sha = {"train": next(iter(KNOWN_TOKENS)), "valid": "a" * 64, "test": "b" * 64}
    corpus = {"files": {s: {"url": f"https://x/{s}.txt", "sha256": h.upper()}
                        for s, h in sha.items()}}
    assert corpus_tokens(corpus, tmp_path / "none") == PTB
    splits = {"train": {"tokens": 5}, "valid": {"tokens": 0}, "test": {"tokens": 7}}
    (tmp_path / "stats.json").write_text(json.dumps({"splits": splits}))
    assert corpus_tokens(corpus, tmp_path) == PTB  # stats that do not name their files
    sources = {s: {"sha256": h} for s, h in sha.items()}
    (tmp_path / "stats.json").write_text(json.dumps({"splits": splits, "sources": sources}))
    assert corpus_tokens(corpus, tmp_path) == {"train": 5, "valid": 0, "test": 7}
    corpus["files"]["test"]["sha256"] = "c" * 64  # another test file: not these counts
    assert corpus_tokens(corpus, tmp_path) == PTB
    unknown = {"files": {s: {"url": f"https://x/{s}.txt"} for s in sha}}
    assert corpus_tokens(unknown, tmp_path / "none") is None


def test_check_streams_groups_runs_and_gives_the_fix():
    runs = [Run("quick", f"r{i}", RunConfig(cell="lstm", hidden=8, batch_size=80_000))
            for i in range(5)]
    with pytest.raises(ConfigError) as err:
        check_streams(runs, PTB, "ptb")
    text = str(err.value)
    assert "quick/r0, quick/r1, quick/r2 and 2 more" in text
    assert "lower batch_size or bptt" in text and "nothing was started" in text
    check_streams(runs, None, "ptb")  # unknown counts: the training job checks


def test_dry_run_refuses_a_batch_wider_than_the_corpus_before_any_job(tmp_path):
    config = tmp_path / "wide.yaml"
    config.write_text((ROOT / "config/quick.yaml").read_text().replace(
        "batch_size: 20", "batch_size: 80000"))
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the valid split of ptb has only 73,760 tokens" in out
    assert not (tmp_path / "results").exists()
