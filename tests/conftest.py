"""Shared fixtures: the PTB mirror, a tiny synthetic corpus, the repository root, a small real
file system that fills up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, snakemake, write_corpus

QUICK = ROOT / "config/quick.yaml"


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


@pytest.fixture(scope="session")
def clean_clone(tmp_path_factory) -> Path:
    """The repository's files as a clone would have them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a clone has")
    dest = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="session")
def converged_rebuilt(clean_clone, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The README's headline command run for real in a copy of the clean clone (the clone stays
    as a clone has it): the converged study's tables and figures rebuilt from the committed
    files, with no corpus and no training. The folder and Snakemake's result; tests that
    change the folder copy it. Tests using it share the xdist group ``converged``."""
    clone = tmp_path_factory.mktemp("converged") / "clone"
    shutil.copytree(clean_clone, clone)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile",
         "config/converged.yaml", "--config", "source=reference", "--show-failed-logs"],
        cwd=clone, capture_output=True, text=True, timeout=600)
    return clone, result


@dataclass(frozen=True)
class QuickPipeline:
    """config/quick.yaml run end to end once: its working folder, the run, the publish run."""

    work: Path
    run: subprocess.CompletedProcess
    published: subprocess.CompletedProcess

    def copy(self, dest: Path) -> Path:
        """A copy of the working folder at ``dest`` (times kept: Snakemake sees it as done)."""
        shutil.copytree(self.work, dest, symlinks=True)
        return dest


@pytest.fixture(scope="session")
def quick_pipeline(tmp_path_factory, ptb_mirror) -> QuickPipeline:
    """The README's first command (config/quick.yaml on PTB, 4 runs, tables, figures) run once
    for the session, then published (``publish=True``). Tests only read its folder; one that
    changes files works on ``quick_pipeline.copy(tmp_path / ...)``. Tests using it share the
    xdist group ``quick``, so a worker runs it once."""
    work = tmp_path_factory.mktemp("quick")
    run = snakemake(work, "--cores", "2", "--config", f"mirror={ptb_mirror}",
                    "--show-failed-logs", configfile=QUICK)
    published = snakemake(work, "--cores", "1", "--config", "publish=True",
                          "--show-failed-logs", configfile=QUICK)
    return QuickPipeline(work, run, published)
