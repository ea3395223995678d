"""Tokenizer: vocabulary order, <unk> handling, max_vocab, and the exact PTB counts."""

import json

import pytest
import torch

from rnnbench.data.batching import batchify, get_batch, num_batches
from rnnbench.data.tokenizer import EOS, UNK, build_vocab, encode, main, tokenize


def test_vocab_is_in_order_of_first_appearance():
    assert build_vocab("b a b c a <eos>".split()) == ["b", "a", "c", "<eos>"]


def test_max_vocab_keeps_most_frequent_and_makes_room_for_unk():
    words = "a a a b b c d d d d e".split()
    assert build_vocab(words, max_vocab=3) == ["a", "d", UNK]
    ids, oov = encode(words, {w: i for i, w in enumerate(["a", "d", UNK])})
    assert oov == 4 and ids.count(2) == 4


def test_max_vocab_keeps_unk_when_train_has_it():
    words = f"a a a {UNK} {UNK} b".split()
    assert build_vocab(words, max_vocab=2) == ["a", UNK]


def test_unseen_words_map_to_created_unk(tmp_path):
    for split, text in {"train": "a b\nb c\n", "valid": "a z\n", "test": "q q\n"}.items():
        (tmp_path / f"{split}.txt").write_text(text)
    vocab, ids, stats = tokenize({s: tmp_path / f"{s}.txt" for s in ("train", "valid", "test")})
    assert vocab == ["a", "b", EOS, "c", UNK]
    assert ids["valid"] == [0, 4, 2]
    assert stats["splits"]["test"]["oov"] == 2
    assert stats["splits"]["test"]["oov_rate"] == pytest.approx(2 / 3)


def test_ptb_counts_match_the_published_ones(ptb_mirror, tmp_path):
    paths = {s: ptb_mirror / f"ptb.{s}.txt" for s in ("train", "valid", "test")}
    assert main([f"--{s}={p}" for s, p in paths.items()] + ["--out-dir", str(tmp_path)]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["vocab_size"] == 10_000
    counts = {s: stats["splits"][s]["tokens"] for s in ("train", "valid", "test")}
    assert counts == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert all(stats["splits"][s]["oov"] == 0 for s in ("train", "valid", "test"))
    assert stats["warnings"] == []  # PTB's train has <unk> (45,020 of them): it is trained
    assert stats["splits"]["train"]["unk"] == 45_020
    train = torch.load(tmp_path / "train.pt", weights_only=True)
    assert train.dtype == torch.int64 and train.shape == (929_589,)
    assert batchify(train, 20).shape == (46_479, 20)
    vocab = (tmp_path / "vocab.txt").read_text().splitlines()
    assert len(vocab) == 10_000 and vocab[int(train[0])] == "aer"


def test_batchify_columns_are_contiguous_text():
    data = batchify(torch.arange(26), 4)  # 6 rows, 2 tokens dropped
    assert data.shape == (6, 4)
    assert data[:, 1].tolist() == [6, 7, 8, 9, 10, 11]


def test_get_batch_targets_are_next_tokens_and_last_batch_is_short():
    data = batchify(torch.arange(24), 2)  # 12 rows
    assert num_batches(data, 5) == 3
    x, y = get_batch(data, 10, 5)
    assert x.shape == (1, 2) and y.tolist() == [[11, 23]]
    x, y = get_batch(data, 0, 5)
    assert torch.equal(y[:-1], x[1:])
