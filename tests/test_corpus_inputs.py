"""Bad corpus inputs: unreadable or empty files, a full disk, odd URLs, missing local paths,
an untrained <unk>, and checksums that guard content without rerunning jobs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SPLITS, corpus, run_logged, snakemake, tokenizer_args

from rnnbench.data.download import DownloadError, verify_downloaded
from rnnbench.data.download import main as download_main
from rnnbench.data.tokenizer import main as tokenize_main
from rnnbench.data.tokenizer import tokenize

OUTPUTS = ("train.pt", "valid.pt", "test.pt", "vocab.txt", "stats.json")
SHA = {  # from ../shared/data/ptb/SHA256SUMS
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("text", ["", "\n  \n\n"], ids=["empty", "blank-lines"])
def test_split_without_words_is_refused_with_no_output(tmp_path, caplog, split, text):
    paths = corpus(tmp_path / "raw", **{split: text})
    out = tmp_path / "data"
    assert tokenize_main(tokenizer_args(paths, out)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(paths[split]) in errors[0] and "has no words" in errors[0]
    assert f"corpus.files.{split}.url" in errors[0]
    assert not out.exists() or not list(out.iterdir())


def test_non_utf8_file_is_refused_naming_file_and_byte_offset(tmp_path, caplog):
    paths = corpus(tmp_path / "raw", test=b"fine words\ncaf\xe9 au lait\n")
    out = tmp_path / "data"
    assert tokenize_main(tokenizer_args(paths, out)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "Traceback" not in caplog.text
    assert f"{paths['test']} is not UTF-8 text: byte 14 (line 2)" in errors[0]
    assert "iconv" in errors[0]
    assert not out.exists() or not list(out.iterdir())


def test_unk_never_in_train_warns_in_stats_and_log(tmp_path, caplog):
    paths = corpus(tmp_path / "raw", train="a b\nb c\n", valid="a z\n", test="q q\n")
    out = tmp_path / "data"
    assert tokenize_main(tokenizer_args(paths, out)) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert len(stats["warnings"]) == 1
    warning = stats["warnings"][0]
    assert "<unk> never occurs in the training stream" in warning
    assert "1 valid tokens (33.3% of valid) and 2 test tokens (66.7% of test)" in warning
    assert "corpus.max_vocab" in warning
    assert warning in caplog.text
    assert stats["splits"]["train"]["unk"] == 0 and stats["splits"]["test"]["unk"] == 2


def test_capped_vocab_trains_unk_and_gives_no_warning(tmp_path):
    paths = corpus(tmp_path / "raw", train="a a b b c\n", valid="a z\n", test="q q\n")
    _, ids, stats = tokenize(paths, max_vocab=3)  # a, b, <unk>: c and <eos> become <unk>
    assert stats["splits"]["train"]["unk"] > 0 and stats["warnings"] == []


@pytest.fixture
def full_disk(tmp_path):
    """A 96 KiB tmpfs: a real file system that fills up (skipped where mount is refused)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_during_tokenize_says_so_in_one_line(tmp_path, full_disk):
    words = " ".join(f"w{i % 500}" for i in range(30_000))  # train.pt alone ~240 KB
    paths = corpus(tmp_path / "raw", train=words + "\n")
    out, log = full_disk / "data", full_disk / "tokenize.log"
    assert run_logged("rnnbench.data.tokenizer", tokenizer_args(paths, out), log) == 1
    text = log.read_text()
    assert f"ERROR no space left on device: {out / 'train.pt'}" in text, text
    assert "Traceback" not in text and len(text.splitlines()) == 1
    assert list(out.iterdir()) == []  # not even a temporary file


def test_disk_full_during_download_says_so_in_one_line(tmp_path, full_disk, ptb_mirror):
    out, log = full_disk / "raw/valid.txt", full_disk / "download.log"
    args = ["--url", "http://127.0.0.1:9/ptb.valid.txt", "--out", str(out),
            "--mirror", str(ptb_mirror)]
    assert run_logged("rnnbench.data.download", args, log) == 1
    text = log.read_text()
    assert f"ERROR no space left on device: {out}" in text, text
    assert "could not download" not in text and "Traceback" not in text
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/ptb valid.txt",
                                 "http://127.0.0.1:9'/ptb.valid.txt",
                                 'http://exa"mple .org/ptb.valid.txt',
                                 "https://[bad/ptb.valid.txt"])
def test_url_with_space_or_quote_gives_the_download_error(tmp_path, caplog, url):
    assert download_main(["--url", url, "--out", str(tmp_path / "v.txt"), "--mirror", ""]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "could not download" in errors[0] and repr(url) in errors[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_missing_local_file_names_its_resolved_path(tmp_path, monkeypatch, caplog, as_url):
    monkeypatch.chdir(tmp_path)
    url = (tmp_path / "corpus/train.txt").as_uri() if as_url else "corpus/train.txt"
    assert download_main(["--url", url, "--out", "out/train.txt", "--mirror", ""]) == 1
    error = next(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert f"the corpus file {tmp_path / 'corpus/train.txt'} does not exist" in error
    assert "Snakemake's working directory" in error and "mirror" not in error
    assert not (tmp_path / "out/train.txt").exists()


def test_verify_downloaded_names_file_both_hashes_and_fix(tmp_path, ptb_mirror):
    shutil.copy(ptb_mirror / "ptb.valid.txt", tmp_path / "valid.txt")
    files = {"train": {"url": "x", "sha256": "1" * 64},  # not downloaded yet: checked later
             "valid": {"url": "x", "sha256": SHA["valid"].upper()},
             "test": {"url": "x"}}
    verify_downloaded(files, tmp_path)
    files["valid"]["sha256"] = "0" * 64
    with pytest.raises(DownloadError) as err:
        verify_downloaded(files, tmp_path)
    message = str(err.value)
    assert str(tmp_path / "valid.txt") in message and SHA["valid"] in message
    assert "0" * 64 in message and "corpus.files.valid.sha256" in message
    assert f"delete {tmp_path / 'valid.txt'}" in message


# Through real Snakemake --------------------------------------------------------------------


def quick_config(path: Path, **corpus: object) -> Path:
    """config/quick.yaml with its corpus section updated by ``corpus``."""
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    config["corpus"].update(corpus)
    path.write_text(yaml.safe_dump(config))
    return path


def test_download_failure_paragraph_reaches_the_terminal(tmp_path):
    files = {s: {"url": f"http://127.0.0.1:9/ptb.{s}.txt"} for s in SPLITS}
    config = quick_config(tmp_path / "c.yaml", files=files)
    result = snakemake(tmp_path, "results/data/ptb/raw/train.txt", "--cores", "1",
                       "--configfile", str(config), "--config", f"mirror={tmp_path / 'none'}")
    assert result.returncode != 0
    assert "ERROR could not download ptb.train.txt: tried " in result.stderr
    assert "config key `mirror`" in result.stderr
    assert not list((tmp_path / "results/data/ptb/raw").glob("*"))


def test_missing_relative_path_is_named_resolved_against_the_workdir(tmp_path):
    files = {s: {"url": f"mine/{s}.txt"} for s in SPLITS}
    config = quick_config(tmp_path / "c.yaml", name="mine", files=files)
    result = snakemake(tmp_path, "results/data/mine/raw/valid.txt", "--cores", "1",
                       "--configfile", str(config))
    assert result.returncode != 0
    assert f"the corpus file {tmp_path / 'mine/valid.txt'} does not exist" in result.stderr
    assert "config key `mirror`" not in result.stderr


def test_relative_corpus_paths_and_tokenize_failure_in_the_terminal(tmp_path):
    # Relative urls resolve against -d (tmp_path), not the folder pytest runs in.
    corpus(tmp_path / "mine", valid=b"caf\xe9\n")
    files = {s: {"url": f"mine/{s}.txt"} for s in SPLITS}
    config = quick_config(tmp_path / "c.yaml", name="mine", files=files)
    result = snakemake(tmp_path, "results/data/mine/stats.json", "--cores", "1",
                       "--configfile", str(config))
    assert result.returncode != 0
    assert (tmp_path / "results/data/mine/raw/train.txt").exists()  # downloaded from mine/
    raw_valid = "results/data/mine/raw/valid.txt"
    assert f"ERROR {raw_valid} is not UTF-8 text: byte 3 (line 1)" in result.stderr
    assert not [p for p in (tmp_path / "results/data/mine").iterdir() if p.is_file()]


def test_adding_the_right_sha256_reruns_nothing_and_a_wrong_one_stops_first(tmp_path,
                                                                               ptb_mirror):
    files = {s: {"url": f"https://example.org/ptb.{s}.txt"} for s in SPLITS}
    unchecked = quick_config(tmp_path / "unchecked.yaml", files=files)
    target = "results/data/ptb/stats.json"
    first = snakemake(tmp_path, target, "--cores", "1", "--configfile", str(unchecked),
                      "--config", f"mirror={ptb_mirror}")
    assert first.returncode == 0, first.stderr[-3000:]
    sums = dict(line.split()[::-1] for line in (ptb_mirror / "SHA256SUMS").read_text()
                .splitlines())
    for s in SPLITS:
        files[s]["sha256"] = sums[f"ptb.{s}.txt"]
    checked = quick_config(tmp_path / "checked.yaml", files=files)
    again = snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", str(checked),
                      "--config", f"mirror={ptb_mirror}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout
    files["test"]["sha256"] = "0" * 64
    wrong = quick_config(tmp_path / "wrong.yaml", files=files)
    stopped = snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", str(wrong),
                        "--config", f"mirror={ptb_mirror}")
    assert stopped.returncode != 0
    out = stopped.stdout + stopped.stderr
    got = hashlib.sha256((tmp_path / "results/data/ptb/raw/test.txt").read_bytes()).hexdigest()
    assert f"the corpus file results/data/ptb/raw/test.txt has SHA-256 {got}" in out
    assert "0" * 64 in out and "delete results/data/ptb/raw/test.txt" in out
    assert "download_corpus" not in stopped.stdout  # no job was planned
