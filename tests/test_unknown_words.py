"""Unknown words reported (issue #32, item 7, case g): with ``max_vocab: null`` and valid/test
words that train never has, ``<unk>`` is a word the model never trained on. The terminal says
so before training (after tokenizing on a first run, and at every later DAG build from
stats.json), with what it does to perplexity and the remedy; runs.csv, summary.csv and the
summary tables give each split's ``<unk>`` share and mark the perplexities."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from helpers import local_config, snakemake, write_corpus

pytestmark = pytest.mark.slow
UNSEEN = "never occurs in the training stream"


def corpus_with_unseen_valid_words(folder):
    """write_corpus's random words, with every 11th valid token a word train lacks."""
    paths = write_corpus(folder, lines=(2000, 300, 300))
    words = paths["valid"].read_text().split("\n")
    lines, count = [], 0
    for line in words:
        tokens = line.split()
        for i in range(0, len(tokens), 11):
            tokens[i] = f"new{count}"
            count += 1
        lines.append(" ".join(tokens))
    paths["valid"].write_text("\n".join(lines))
    return paths


def test_unk_that_train_never_has_is_said_before_training_and_in_every_table(tmp_path):
    paths = corpus_with_unseen_valid_words(tmp_path / "mine")
    config_path = local_config(tmp_path / "c.yaml")
    config = yaml.safe_load(config_path.read_text())
    config["experiments"]["quick"]["cells"] = ["lstm"]
    config["recipes"]["quick"].update(epochs=1, max_batches=5, max_eval_batches=5)
    config_path.write_text(yaml.safe_dump(config))
    args = ("--cores", "1", "--configfile", str(config_path))
    # a first run: the tokenizer's warning reaches the terminal as the corpus is tokenized
    first = snakemake(tmp_path, "results/data/mine/stats.json", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert UNSEEN in first.stderr and "not comparable" in first.stderr
    assert "max_vocab" in first.stderr  # the remedy
    # every later invocation says it while building the DAG, before any training job
    planned = snakemake(tmp_path, "-n", *args)
    assert planned.returncode == 0, planned.stderr[-3000:]
    said = planned.stdout + planned.stderr
    assert f"WARNING (mine): <unk> {UNSEEN}" in said
    assert said.index(UNSEEN) < said.index("train_model")
    done = snakemake(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    tokens = [w for line in paths["valid"].read_text().splitlines() for w in line.split()]
    expected = sum(w.startswith("new") for w in tokens) / (len(tokens) + 300)  # + <eos>
    tables = tmp_path / "results/studies/c/tables"
    runs = pd.read_csv(tables / "runs.csv")
    assert runs["valid_unk_share"].iloc[0] == pytest.approx(expected)
    assert runs["train_unk_share"].iloc[0] == 0 and runs["test_unk_share"].iloc[0] == 0
    summary = pd.read_csv(tables / "summary.csv")
    assert summary["valid_unk_share"].iloc[0] == pytest.approx(expected)
    md = (tables / "summary.md").read_text()
    assert f"WARNING: <unk> is {expected:.1%} of valid and 0.0% of test tokens" in md
    assert "| mine | quick | lstm |" in md and "† |" in md  # the perplexities are marked
    assert f"<unk> in mine: {expected:.1%} of valid" in md
    assert "WARNING: &lt;unk&gt; is" in (tables / "summary.html").read_text()
