"""Shared fixtures: the PTB mirror, a tiny synthetic corpus, the repository root, a small real
file system that fills up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import write_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return ROOT


@pytest.fixture(scope="session")
def ptb_mirror() -> Path:
    """The local PTB copy (``$RNNBENCH_PTB_MIRROR``, default ``../shared/data/ptb``)."""
    path = Path(os.environ.get("RNNBENCH_PTB_MIRROR", ROOT.parent / "shared/data/ptb")).resolve()
    if not (path / "ptb.train.txt").exists():
        message = f"no PTB mirror at {path}; set RNNBENCH_PTB_MIRROR to a folder with ptb.*.txt"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A tokenized tiny corpus folder (train/valid/test.pt, vocab.txt, stats.json)."""
    from rnnbench.data.tokenizer import main as tokenize_main

    folder = tmp_path_factory.mktemp("tiny")
    paths = write_corpus(folder / "raw")
    out = folder / "data"
    assert tokenize_main(["--train", str(paths["train"]), "--valid", str(paths["valid"]),
                          "--test", str(paths["test"]), "--out-dir", str(out)]) == 0
    return out


@pytest.fixture
def small_fs(tmp_path):
    """A real 256 KiB file system (tmpfs) at tmp_path/fs; skipped where mount is refused."""
    where = tmp_path / "fs"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (tiny models: fast, immune to a busy second core)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
