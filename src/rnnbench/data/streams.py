"""Whether a corpus's splits hold enough tokens for a run's batching (no torch import:
Snakemake imports this, through rnnbench.experiment.grid, to refuse a config before any job;
training and evaluation check the same again on the token files they load)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rnnbench.config import RunConfig
from rnnbench.io import read_json

if TYPE_CHECKING:  # only for the type hints: this module runs without torch
    import torch


def stream_errors(cfg: RunConfig, tokens: dict[str, int], corpus: str = "the corpus") -> list[str]:
    """Why ``cfg`` cannot give defined perplexities on splits of ``tokens`` (split -> count).

    A split is cut into ``batch_size`` columns of ``tokens // batch_size`` rows, and the
    targets are the rows one down (rnnbench.data.batching). Training needs one whole minibatch,
    ``batch_size * (bptt + 1)`` tokens; valid and test need one row of targets,
    ``2 * batch_size`` tokens, or their perplexity would be a mean over no tokens. Empty
    list: every split given is long enough.
    """
    need = {"train": cfg.batch_size * (cfg.bptt + 1), "valid": 2 * cfg.batch_size,
            "test": 2 * cfg.batch_size}
    unit = {"train": f"one minibatch (batch_size {cfg.batch_size} x (bptt {cfg.bptt} + 1))",
            "valid": f"one row of targets (2 x batch_size {cfg.batch_size})",
            "test": f"one row of targets (2 x batch_size {cfg.batch_size})"}
    problems = []
    for split in ("train", "valid", "test"):
        have = tokens.get(split)
        if have is None or have >= need[split]:
            continue
        what = "is empty" if have == 0 else f"has only {have:,} tokens"
        problems.append(f"the {split} split of {corpus} {what}, fewer than {unit[split]} = "
                        f"{need[split]:,} tokens")
    return problems


def split_tokens(streams: dict[str, torch.Tensor], data_dir: Path) -> dict[str, int]:
    """Tokens per split: of the ``streams`` loaded, and the test split's from the tokenizer's
    stats.json in ``data_dir`` when it is there (training loads no test stream)."""
    tokens = {split: s.numel() for split, s in streams.items()}
    if (stats := data_dir / "stats.json").exists():
        test = read_json(stats).get("splits", {}).get("test", {}).get("tokens")
        tokens.update({} if test is None else {"test": int(test)})
    return tokens
