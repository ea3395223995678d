"""The configured corpus files, known by their content rather than by their names (no torch).

A corpus file given as a plain path or a ``file://`` URL is *local*. It is an input of
download_corpus, so editing it (a newer file) reruns the copy, the tokenization and everything
after them; the mirror is never consulted for it (rnnbench.data.download). The tokenizer records the
SHA-256 of the files it counted in stats.json (``sources``), and what Snakemake reads before
any job (token counts for the stream check, corpus size for the plan) is taken from it only
when those are the files configured now: a stats.json of earlier files is ignored, not trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from rnnbench.data.download import local_path, sha256_of, to_url
from rnnbench.data.tokenizer import (
    UNK,
    CorpusError,
    build_vocab,
    read_words,
    untrained_unk_warnings,
)

# Token counts of Mikolov's PTB (train, valid, test with <eos>), by the train file's SHA-256,
# and its vocabulary: a stream check and a plan before the corpus is tokenized.
KNOWN_TOKENS = {
    "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf":
        {"train": 929_589, "valid": 73_760, "test": 82_430},
}
PTB_SHA256 = next(iter(KNOWN_TOKENS))
PTB_VOCAB = 10_000


def local_source(url: str) -> Path | None:
    """The file behind a plain path or ``file://`` URL (absolute, links kept), or None for a
    network URL. A relative path is taken from the working directory (Snakemake's -d)."""
    try:
        return local_path(to_url(url))
    except ValueError:  # a malformed URL: the download job names it
        return None


def source_inputs(url: str) -> list[str]:
    """download_corpus's input: the local file when it is one (Snakemake copies it again once
    it is newer than the copy); nothing for a network URL, or a local file that is missing or
    unreadable, which the download job then names in one paragraph."""
    path = local_source(url)
    return [str(path)] if path is not None and path.is_file() else []


def _sha256_or_none(path: Path) -> str | None:
    """SHA-256 of a readable regular file, else None."""
    try:
        return sha256_of(path) if path.is_file() else None
    except OSError:
        return None


def expected_sha256(files: dict[str, dict], raw_dir: Path) -> dict[str, str | None]:
    """Per split, the SHA-256 of the text that will be tokenized: the config's ``sha256``,
    else the local file's, else (network URL) the downloaded copy's; None when unknown."""
    expected = {}
    for split, spec in files.items():
        sha = (spec.get("sha256") or "").lower() or None
        if sha is None:
            local = local_source(spec["url"])
            sha = _sha256_or_none(local if local is not None else raw_dir / f"{split}.txt")
        expected[split] = sha
    return expected


def current_stats(data_dir: Path, files: dict[str, dict]) -> dict | None:
    """stats.json of ``data_dir`` when it was counted from the files configured now (every
    split's SHA-256 recorded there, known here and equal), else None."""
    expected = expected_sha256(files, data_dir / "raw")
    try:
        stats = json.loads((data_dir / "stats.json").read_text())
        recorded = {split: stats["sources"][split]["sha256"] for split in expected}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable, or written before stats.json named its sources
    same = all(sha is not None and recorded[split] == sha for split, sha in expected.items())
    return stats if same else None


def unk_warnings(corpus: dict, data_dir: str | Path) -> list[str]:
    """The tokenizer's warnings about ``<unk>`` in valid/test that train never has, from
    stats.json when it describes the files configured now (else none: not tokenized yet)."""
    stats = current_stats(Path(data_dir), corpus["files"])
    return [] if stats is None else untrained_unk_warnings(stats)


def unk_shares(stats_path: str | Path) -> dict[str, float]:
    """``{split}_unk_share``: the share of each split's tokens that are ``<unk>`` (stats.json);
    empty when the file is absent (a table built from published runs alone)."""
    try:
        splits = json.loads(Path(stats_path).read_text())["splits"]
    except (OSError, ValueError, KeyError):
        return {}
    return {f"{split}_unk_share": float(info["unk_rate"]) for split, info in splits.items()}


def corpus_tokens(corpus: dict, data_dir: str | Path) -> dict[str, int] | None:
    """Token counts per split: from stats.json when it describes the files configured now,
    else from KNOWN_TOKENS for a checksummed known corpus, else None (checked by the
    training job itself)."""
    stats = current_stats(Path(data_dir), corpus["files"])
    if stats is not None:
        return {split: int(info["tokens"]) for split, info in stats["splits"].items()}
    sha = (corpus["files"]["train"].get("sha256") or "").lower()
    return KNOWN_TOKENS.get(sha)  # max_vocab does not change token counts, only ids


def _train_words(corpus: dict, data_dir: Path) -> tuple[list[str], str] | None:
    """The words of the train file that will be tokenized (the local file, else the
    downloaded copy) and how to name it; None when it is not here or not readable text."""
    url = corpus["files"]["train"]["url"]
    local = local_source(url)
    path, shown = (local, url) if local is not None else (data_dir / "raw/train.txt", None)
    try:
        return (read_words(path), shown or str(path)) if path.is_file() else None
    except CorpusError:  # the tokenize job names it
        return None


def plan_size(corpus: dict, data_dir: str | Path) -> tuple[int, int, str]:
    """Train tokens, vocabulary size and how they are known (a note for the plan, empty when
    measured by the tokenizer): from stats.json of the files configured now, else a known
    corpus's counts, else counted in the train file, else PTB's, said to be assumed."""
    data_dir, max_vocab = Path(data_dir), corpus.get("max_vocab")
    stats = current_stats(data_dir, corpus["files"])
    if stats is not None:
        return int(stats["splits"]["train"]["tokens"]), int(stats["vocab_size"]), ""
    sha = (corpus["files"]["train"].get("sha256") or "").lower()
    counted = None if sha in KNOWN_TOKENS else _train_words(corpus, data_dir)
    if counted is not None:
        words, shown = counted
        vocab = build_vocab(words, max_vocab)
        return len(words), len(vocab) + (UNK not in vocab), (
            f" ({len(words):,} train tokens counted in {shown}: not tokenized yet)")
    tokens, vocab = KNOWN_TOKENS.get(sha, KNOWN_TOKENS[PTB_SHA256])["train"], PTB_VOCAB
    why = ("not tokenized yet" if sha in KNOWN_TOKENS else
           f"assumed, {corpus['name']}'s train file is not here yet")
    return tokens, min(max_vocab or vocab, vocab), f" (PTB's {tokens:,} train tokens: {why})"
