"""Data identity, not names (issue #22, items 4, 5, 6, 8, 9): a corpus file's content is what
the pipeline checks. An edited local file reruns tokenization, a local path is never replaced
by the mirror's file of the same name, a stats.json of other files is not trusted, identical
text gives byte-identical token files, a BOM is not a word, a symbolic link loop gets one
paragraph, and the plan of a custom corpus counts its own tokens."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import (
    SPLITS,
    corpus,
    local_config,
    run_logged,
    snakemake,
    tokenizer_args,
    write_corpus,
)

from rnnbench.data.download import download
from rnnbench.data.sources import KNOWN_TOKENS, corpus_tokens, plan_size
from rnnbench.data.tokenizer import main as tokenize_main
from rnnbench.data.tokenizer import tokenize

OUTPUTS = ("train.pt", "valid.pt", "test.pt", "vocab.txt", "stats.json")


def digests(folder: Path) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in OUTPUTS}


# 4. An edited local corpus file reruns tokenization (and so everything after it). ---------


def test_an_edited_local_file_reruns_download_and_tokenize(tmp_path):
    write_corpus(tmp_path / "mine")
    config = str(local_config(tmp_path / "c.yaml"))
    target = "results/data/mine/stats.json"
    first = snakemake(tmp_path, target, "--cores", "1", "--configfile", config)
    assert first.returncode == 0, first.stderr[-3000:]
    valid = tmp_path / "mine/valid.txt"
    # The edit: `head -250 valid.txt > v && mv v valid.txt` (here 25 of 40 lines).
    (tmp_path / "v").write_text("".join(valid.read_text().splitlines(keepends=True)[:25]))
    os.replace(tmp_path / "v", valid)
    planned = snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", config)
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "Nothing to be done" not in planned.stdout + planned.stderr
    assert "download_corpus" in planned.stdout and "tokenize_corpus" in planned.stdout
    again = snakemake(tmp_path, target, "--cores", "1", "--configfile", config)
    assert again.returncode == 0, again.stderr[-3000:]
    stats = json.loads((tmp_path / target).read_text())
    assert stats["splits"]["valid"]["tokens"] == len(valid.read_text().split()) + 25
    settled = snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", config)
    assert "Nothing to be done" in settled.stdout + settled.stderr


# 5. The mirror never replaces a local file of the same base name. -------------------------


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_a_local_file_is_copied_not_replaced_by_the_mirrors_namesake(tmp_path, ptb_mirror,
                                                                      as_url):
    mine = tmp_path / "x/ptb.valid.txt"
    mine.parent.mkdir()
    mine.write_text("".join((ptb_mirror / "ptb.valid.txt").read_text()
                            .splitlines(keepends=True)[:500]))
    out = tmp_path / "out/valid.txt"
    source = download(mine.as_uri() if as_url else str(mine), out, mirror=str(ptb_mirror))
    assert source == mine.as_uri()
    assert out.read_bytes() == mine.read_bytes() and len(out.read_text().splitlines()) == 500


# 6. A stats.json of earlier files does not refuse the fixed corpus. -----------------------


def test_a_fixed_train_file_is_not_refused_by_the_old_stats(tmp_path):
    corpus(tmp_path / "mine", train="a b c d\n" * 5,  # 25 tokens with <eos>
           valid="the cat sat on the mat\n" * 10, test="the cat sat on the mat\n" * 10)
    write_corpus(tmp_path / "long")
    short = str(local_config(tmp_path / "short.yaml"))
    tokenized = snakemake(tmp_path, "results/data/mine/stats.json", "--cores", "1",
                          "--configfile", short)
    assert tokenized.returncode == 0, tokenized.stderr[-3000:]
    refused = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", short)
    assert refused.returncode != 0  # the stats of the files configured: still checked
    assert "the train split of mine has only 25 tokens" in refused.stdout + refused.stderr
    fixed = str(local_config(tmp_path / "fixed.yaml", train="long/train.txt"))
    planned = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", fixed)
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "has only 25 tokens" not in planned.stdout + planned.stderr
    assert "download_corpus" in planned.stdout and "train_model" in planned.stdout


def test_stats_count_only_for_the_files_they_were_counted_from(tmp_path):
    paths = corpus(tmp_path / "mine")
    data = tmp_path / "results/data/mine"
    assert tokenize_main(tokenizer_args(paths, data)) == 0
    files = {s: {"url": str(p)} for s, p in paths.items()}
    assert corpus_tokens({"files": files}, data) == {"train": 8, "valid": 8, "test": 8}
    paths["test"].write_text("the cat\n")  # edited since: the counts are not its own
    assert corpus_tokens({"files": files}, data) is None
    files["test"]["sha256"] = hashlib.sha256(b"the cat sat\non the mat\n").hexdigest()
    assert corpus_tokens({"files": files}, data) == {"train": 8, "valid": 8, "test": 8}


# 8. Identical text gives identical token files. -------------------------------------------


def test_tokenizing_the_same_text_twice_gives_the_same_sha256(tmp_path):
    paths = write_corpus(tmp_path / "raw")
    seen = []
    for out in ("a", "b", "a"):  # another folder, and the same folder again
        assert tokenize_main(tokenizer_args(paths, tmp_path / out)) == 0
        seen.append(digests(tmp_path / out))
    assert seen[0] == seen[1] == seen[2]


# 9. A BOM is not a word; a symbolic link loop gets one paragraph; the plan's own size. ----


def test_a_utf8_bom_is_not_a_word(tmp_path):
    paths = corpus(tmp_path / "raw", train="\ufeffthe cat\nthe mat\n")
    vocab, ids, stats = tokenize(paths)
    assert vocab[:2] == ["the", "cat"] and not any("\ufeff" in w for w in vocab)
    assert stats["splits"]["train"]["tokens"] == 6


def test_a_non_utf8_byte_after_a_bom_is_named_at_its_file_offset(tmp_path, caplog):
    paths = corpus(tmp_path / "raw", valid=b"\xef\xbb\xbfok\ncaf\xe9\n")
    assert tokenize_main(tokenizer_args(paths, tmp_path / "data")) == 1
    assert f"{paths['valid']} is not UTF-8 text: byte 9 (line 2)" in caplog.text


def symlink_loop(folder: Path) -> Path:
    """``folder/train.txt`` -> ``folder/loop.txt`` -> ``folder/train.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").symlink_to("loop.txt")
    (folder / "loop.txt").symlink_to("train.txt")
    return folder / "train.txt"


def test_a_symlink_loop_is_one_paragraph_from_download_and_tokenizer(tmp_path):
    loop = symlink_loop(tmp_path / "mine")
    log = tmp_path / "download.log"
    args = ["--url", str(loop), "--out", str(tmp_path / "out/train.txt"), "--mirror", ""]
    assert run_logged("rnnbench.data.download", args, log) == 1
    text = log.read_text()
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert "Traceback" not in text and len(errors) == 1
    assert f"the corpus file {loop} is a symbolic link that loops" in errors[0]
    paths = {**corpus(tmp_path / "raw"), "train": loop}
    assert run_logged("rnnbench.data.tokenizer", tokenizer_args(paths, tmp_path / "data"), log) == 1
    text = log.read_text()
    assert "Traceback" not in text and f"cannot read the corpus file {loop}" in text


def test_a_symlink_loop_in_the_config_reaches_the_terminal_as_one_paragraph(tmp_path):
    write_corpus(tmp_path / "mine")
    (tmp_path / "mine/train.txt").unlink()
    symlink_loop(tmp_path / "mine")
    result = snakemake(tmp_path, "results/data/mine/raw/train.txt", "--cores", "1",
                       "--configfile", str(local_config(tmp_path / "c.yaml")))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"the corpus file {tmp_path / 'mine/train.txt'} is a symbolic link" in result.stderr


def test_the_plan_of_a_custom_corpus_counts_its_own_train_tokens(tmp_path, monkeypatch):
    paths = write_corpus(tmp_path / "mine")
    tokens = len(paths["train"].read_text().split()) + 300  # 300 lines, an <eos> each
    config = {"name": "mine", "files": {s: {"url": f"mine/{s}.txt"} for s in SPLITS}}
    monkeypatch.chdir(tmp_path)  # relative urls are resolved as from Snakemake's -d
    tokens_, vocab, note = plan_size(config, "results/data/mine")
    assert (tokens_, vocab) == (tokens, 42)  # w0..w39, <eos>, <unk>
    stats = tokenize(paths)[2]  # what the tokenizer will count
    assert (stats["splits"]["train"]["tokens"], stats["vocab_size"]) == (tokens, vocab)
    assert note == f" ({tokens:,} train tokens counted in mine/train.txt: not tokenized yet)"
    planned = snakemake(tmp_path, "-n", "--cores", "1", "--configfile",
                        str(local_config(tmp_path / "c.yaml")))
    assert planned.returncode == 0, planned.stderr[-3000:]
    plan = " ".join(planned.stderr.split())  # the plan's lines are wrapped
    assert f"{tokens:,} train tokens counted in mine/train.txt" in plan
    assert "PTB's" not in plan


def test_the_plan_says_when_it_assumes_ptbs_size(tmp_path):
    remote = {s: {"url": f"https://example.org/{s}.txt"} for s in SPLITS}
    ptb = {s: {**remote[s], "sha256": h} for s, h in
           zip(SPLITS, [next(iter(KNOWN_TOKENS)), "a" * 64, "b" * 64], strict=True)}
    assert plan_size({"name": "ptb", "files": ptb, "max_vocab": 5000}, tmp_path) == (
        929_589, 5000, " (PTB's 929,589 train tokens: not tokenized yet)")
    assert plan_size({"name": "web", "files": remote}, tmp_path) == (
        929_589, 10_000, " (PTB's 929,589 train tokens: assumed, web's train file is not here "
        "yet)")
