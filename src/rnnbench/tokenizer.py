"""Turn a three-file word-level corpus into id tensors, a vocabulary and statistics.

Each line is split on whitespace and ends with ``<eos>``. The vocabulary comes from train in
order of first appearance; words of valid/test outside it map to ``<unk>`` (added if train has
none). With ``max_vocab`` only the most frequent words are kept (ties: first appearance) and the
rest become ``<unk>``. Usage::

    python -m rnnbench.tokenizer --train T --valid V --test T --out-dir results/data/ptb
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rnnbench.io import write_atomic, write_json, write_text

log = logging.getLogger(__name__)
EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


def read_words(path: str | Path) -> list[str]:
    """All words of a file, with ``<eos>`` after every line."""
    words: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
            words.append(EOS)
    return words


def build_vocab(words: Iterable[str], max_vocab: int | None = None) -> list[str]:
    """Words in order of first appearance, cut to the ``max_vocab`` most frequent if given."""
    counts = Counter(words)
    order = list(counts)  # Counter keeps insertion order = first appearance
    if max_vocab is None or len(order) <= max_vocab:
        return order
    if max_vocab < 2:
        raise ValueError(f"max_vocab must be at least 2 (a word and {UNK}), got {max_vocab}")
    rank = {w: i for i, w in enumerate(order)}
    by_freq = sorted(order, key=lambda w: (-counts[w], rank[w]))
    kept = set(by_freq[:max_vocab])
    if UNK not in kept:  # make room for <unk>, which takes every dropped word
        kept.discard(by_freq[max_vocab - 1])
    vocab = [w for w in order if w in kept]
    return vocab if UNK in kept else vocab + [UNK]


def encode(words: list[str], index: dict[str, int]) -> tuple[list[int], int]:
    """Ids of ``words`` (unknown ones as ``<unk>``) and the number of unknown words."""
    unk = index[UNK]
    ids = [index.get(w, unk) for w in words]
    oov = sum(1 for w in words if w not in index)
    return ids, oov


def tokenize(paths: dict[str, Path], max_vocab: int | None = None):
    """Vocabulary, per-split id lists and stats for the three files in ``paths``."""
    words = {split: read_words(paths[split]) for split in SPLITS}
    vocab = build_vocab(words["train"], max_vocab)
    if UNK not in vocab:
        vocab.append(UNK)
    index = {w: i for i, w in enumerate(vocab)}
    ids, stats = {}, {"vocab_size": len(vocab), "max_vocab": max_vocab, "splits": {}}
    for split in SPLITS:
        ids[split], oov = encode(words[split], index)
        n = len(ids[split])
        unk_count = sum(1 for i in ids[split] if i == index[UNK])
        stats["splits"][split] = {
            "tokens": n,
            "types": len(set(words[split])),
            "oov": oov,
            "oov_rate": oov / n if n else 0.0,
            "unk_rate": unk_count / n if n else 0.0,
        }
    return vocab, ids, stats


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for split in SPLITS:
        parser.add_argument(f"--{split}", required=True, type=Path)
    parser.add_argument("--max-vocab", type=lambda s: int(s) if s else None, default=None,
                        help="keep the most frequent words only (empty: all)")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    vocab, ids, stats = tokenize({s: getattr(args, s) for s in SPLITS}, args.max_vocab)
    for split in SPLITS:
        tensor = torch.tensor(ids[split], dtype=torch.int64)
        write_atomic(args.out_dir / f"{split}.pt", lambda tmp, t=tensor: torch.save(t, tmp))
        log.info("%s: %d tokens", split, len(ids[split]))
    write_text(args.out_dir / "vocab.txt", "\n".join(vocab) + "\n")
    write_json(args.out_dir / "stats.json", stats)
    log.info("vocabulary: %d types", len(vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
