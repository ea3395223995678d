"""Turn a three-file word-level corpus into id tensors, a vocabulary and statistics.

Each line is split on whitespace and ends with ``<eos>``. The vocabulary comes from train in
order of first appearance; words of valid/test outside it map to ``<unk>`` (added if train has
none). With ``max_vocab`` only the most frequent words are kept (ties: first appearance) and the
rest become ``<unk>``. A UTF-8 byte order mark opening a file is dropped (it is not a word). A
file that cannot be read, is not UTF-8 or has no words is refused with one paragraph, and
either every output is written or none is. stats.json records each input file's SHA-256
(``sources``), so a check before any job can tell whether it describes the files configured
now (rnnbench.data.sources). Identical text gives byte-identical outputs. Usage::

    python -m rnnbench.data.tokenizer --train T --valid V --test T --out-dir results/data/ptb
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import io
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rnnbench.io import DiskFullError, write_all_atomic

log = logging.getLogger(__name__)
EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


class CorpusError(ValueError):
    """A corpus file cannot be tokenized (not UTF-8, or no words)."""


def read_bytes(path: str | Path) -> bytes:
    """A corpus file's bytes; CorpusError (one paragraph naming the file) if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise CorpusError(
            f"cannot read the corpus file {path}: {err.strerror or err}. Check that the path "
            "names a readable file (`ls -l` shows where a symbolic link points), then rerun. "
            "Nothing was written."
        ) from None


def decode(data: bytes, path: str | Path) -> str:
    """UTF-8 text of a file's bytes, without a leading byte order mark."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = start + err.start  # offsets in the file, not in the text after the mark
        line = data.count(b"\n", 0, at) + 1
        raise CorpusError(
            f"{path} is not UTF-8 text: byte {at} (line {line}) is "
            f"{data[at:start + err.end]!r}, which is {err.reason}. The tokenizer reads "
            "UTF-8 only; convert the file (for example `iconv -f latin1 -t utf-8`) or replace "
            "it with the right one, then rerun. Nothing was written."
        ) from None


def read_words(path: str | Path, data: bytes | None = None) -> list[str]:
    """All words of a file (or of its ``data``, already read), ``<eos>`` after every line."""
    text = decode(read_bytes(path) if data is None else data, path)
    words: list[str] = []
    for line in io.StringIO(text, newline=None):  # the line ends of open() in text mode
        words.extend(line.split())
        words.append(EOS)
    return words


def read_split(split: str, path: str | Path, data: bytes | None = None) -> list[str]:
    """The words of one split's file; refuse a file without a single word."""
    words = read_words(path, data)
    if len(words) == words.count(EOS):
        # valid/test too: a perplexity over no tokens is undefined, not 1.0.
        what = f"only {len(words)} blank line(s)" if words else "it is empty"
        use = "train on" if split == "train" else "compute a perplexity on"
        raise CorpusError(
            f"the {split} file {path} has no words ({what}), so there is nothing to {use}. "
            f"Check that corpus.files.{split}.url in the config names the right file and that "
            "the file is complete (a downloaded copy under results/data/<corpus>/raw/ is "
            "fetched again once deleted), then rerun. Nothing was written."
        )
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
    data = {split: read_bytes(paths[split]) for split in SPLITS}
    words = {split: read_split(split, paths[split], data[split]) for split in SPLITS}
    vocab = build_vocab(words["train"], max_vocab)
    if UNK not in vocab:
        vocab.append(UNK)
    index = {w: i for i, w in enumerate(vocab)}
    ids, stats = {}, {"vocab_size": len(vocab), "max_vocab": max_vocab, "splits": {}}
    for split in SPLITS:
        ids[split], oov = encode(words[split], index)
        n, unk = len(ids[split]), ids[split].count(index[UNK])
        stats["splits"][split] = {
            "tokens": n,
            "types": len(set(words[split])),
            "oov": oov,
            "oov_rate": oov / n,  # n > 0: read_split refuses a file without words
            "unk": unk,
            "unk_rate": unk / n,
        }
    stats["warnings"] = untrained_unk_warnings(stats)
    # What these counts describe: the pre-job checks trust them for these files only.
    stats["sources"] = {split: {"sha256": hashlib.sha256(data[split]).hexdigest(),
                                "bytes": len(data[split])} for split in SPLITS}
    return vocab, ids, stats


def untrained_unk_warnings(stats: dict) -> list[str]:
    """Why valid/test perplexities are not comparable when ``<unk>`` occurs there but never in
    train, and the remedy (empty otherwise)."""
    splits = stats["splits"]
    unseen = {s: splits[s] for s in ("valid", "test") if splits[s]["unk"]}
    if splits["train"]["unk"] or not unseen:
        return []
    counts = " and ".join(f"{info['unk']:,} {s} tokens ({info['unk_rate']:.1%} of {s})"
                          for s, info in unseen.items())
    return [
        f"<unk> never occurs in the training stream, but {counts} are <unk> (words that train "
        "lacks): the model never trained on <unk>, so each is scored with the probability of "
        "an untrained output. The valid/test perplexity is then not comparable with any other "
        "and usually wrong in either direction (an untrained output row can give <unk> far "
        "more or far less probability than a trained one would). Remedy: set corpus.max_vocab "
        f"below the vocabulary size {stats['vocab_size']:,} (the cap counts <eos> and <unk>; "
        "10000 is the PTB choice) so that the rarest train words become <unk> and its rows "
        "train, or map rare words to <unk> in the train file itself."
    ]


def write_outputs(out_dir: Path, vocab: list[str], ids: dict[str, list[int]],
                  stats: dict) -> None:
    """The id tensors, vocab.txt and stats.json, all written or none."""
    import torch

    def save(split):
        # Saved to memory, not to the temporary file: torch.save names the archive's folder
        # after the file it writes, and that random name would change the file's SHA-256
        # (the checkpoints' `data` identity) between two tokenizations of the same text.
        buffer = io.BytesIO()
        torch.save(torch.tensor(ids[split], dtype=torch.int64), buffer)
        return lambda tmp: tmp.write_bytes(buffer.getvalue())

    writers = {out_dir / f"{split}.pt": save(split) for split in SPLITS}
    vocab_text, stats_text = "\n".join(vocab) + "\n", json.dumps(stats, indent=2) + "\n"
    writers[out_dir / "vocab.txt"] = lambda tmp: tmp.write_text(vocab_text)
    writers[out_dir / "stats.json"] = lambda tmp: tmp.write_text(stats_text)
    write_all_atomic(writers)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for split in SPLITS:
        parser.add_argument(f"--{split}", required=True, type=Path)
    parser.add_argument("--max-vocab", type=lambda s: int(s) if s else None, default=None,
                        help="keep the most frequent words only (empty: all)")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        vocab, ids, stats = tokenize({s: getattr(args, s) for s in SPLITS}, args.max_vocab)
        write_outputs(args.out_dir, vocab, ids, stats)
    except (CorpusError, DiskFullError) as err:
        log.error("%s", err)
        return 1
    for split in SPLITS:
        log.info("%s: %d tokens", split, len(ids[split]))
    for warning in stats["warnings"]:
        log.warning("%s", warning)
    log.info("vocabulary: %d types", len(vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
