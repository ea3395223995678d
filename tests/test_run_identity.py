"""A run's identity is its whole configuration, a corpus copy's its content (issue #32, cases
a and b): a finished run whose recorded configuration differs from the configured one trains
again, named in the plan; going back to the configuration it was trained with reruns nothing;
a local corpus file replaced by other bytes of the same size and mtime is copied again."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import one_run_config, snakemake, write_config, write_corpus

from rnnbench.config import RunConfig
from rnnbench.experiment.grid import Run
from rnnbench.workflow.identity import changed_runs, changed_sources, describe

ROOT = Path(__file__).resolve().parents[1]
RUN = "results/runs/mine/tiny/lstm-h8-l1-s1"


def planned(workdir: Path, configfile: str) -> str:
    result = snakemake(workdir, "--cores", "1", f"{RUN}/train.json", "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_an_edited_key_or_another_config_retrains_the_run_and_reverting_does_not(tmp_path):
    write_corpus(tmp_path / "mine")
    first = write_config(tmp_path / "a.yaml", one_run_config())
    trained = snakemake(tmp_path, "--cores", "1", f"{RUN}/train.json", configfile=first)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Nothing to be done" in planned(tmp_path, first)
    # (a) lr 1.0 -> 2.0 in a copy of the config, and a second config with another epochs
    for key, value in (("lr", 2.0), ("epochs", 2)):
        edited = write_config(tmp_path / f"{key}.yaml", one_run_config({key: value}))
        out = planned(tmp_path, edited)
        assert "Nothing to be done" not in out and "train_model" in out, out[-2000:]
        assert f"{key} " in out and "made again" in out  # the plan names the key
    # reverting to the trained configuration trains nothing
    assert "Nothing to be done" in planned(tmp_path, first)
    again = snakemake(tmp_path, "--cores", "1", f"{RUN}/train.json", "--configfile",
                      write_config(tmp_path / "lr.yaml", one_run_config({"lr": 2.0})))
    assert again.returncode == 0, again.stderr[-3000:]
    meta = json.loads((tmp_path / RUN / "train.json").read_text())
    assert meta["config"]["lr"] == 2.0
    assert "Nothing to be done" in planned(tmp_path, str(tmp_path / "lr.yaml"))


def test_a_replaced_local_file_with_its_old_size_and_mtime_is_copied_again(tmp_path):
    write_corpus(tmp_path / "mine")
    configfile = write_config(tmp_path / "a.yaml", one_run_config())
    target = "results/data/mine/stats.json"
    first = snakemake(tmp_path, "--cores", "1", target, configfile=configfile)
    assert first.returncode == 0, first.stderr[-3000:]
    train = tmp_path / "mine/train.txt"
    before = train.stat()
    text = train.read_text()
    swapped = text.replace("w1 ", "w2 ", 1) if "w1 " in text else text.replace("w2 ", "w1 ", 1)
    assert swapped != text and len(swapped) == len(text)
    train.write_text(swapped)  # `cp -p` from a backup: same size, old mtime
    os.utime(train, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = snakemake(tmp_path, "--cores", "1", target, "-n", configfile=configfile)
    assert "download_corpus" in out.stdout and "tokenize_corpus" in out.stdout, out.stdout[-2000:]
    assert "corpus copies differ from their local files now" in out.stdout + out.stderr
    done = snakemake(tmp_path, "--cores", "1", target, configfile=configfile)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "results/data/mine/raw/train.txt").read_text() == swapped
    settled = snakemake(tmp_path, "--cores", "1", target, "-n", configfile=configfile)
    assert "Nothing to be done" in settled.stdout


def test_a_final_run_is_compared_without_its_tuned_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = Run("e", "lstm-h8-l1-s1", RunConfig("lstm", 8, lr=1.0, epochs=3), role="final")
    folder = Path(run.path)
    folder.mkdir(parents=True)
    recorded = {**run.config.to_dict(), "lr": 4.0}  # its tuning chose lr 4
    (folder / "train.json").write_text(json.dumps({"config": recorded}))
    assert changed_runs([run], {"e": {"lr"}}) == {}
    assert changed_runs([run], {}) == {f"{run.path}/train.json": {"lr": [4.0, 1.0]}}
    recorded["epochs"] = 2
    (folder / "train.json").write_text(json.dumps({"config": recorded}))
    changed = changed_runs([run], {"e": {"lr"}})
    assert describe(changed[f"{run.path}/train.json"]) == "epochs 2 -> 3"
    # a half-written train.json is no run (Snakemake's incomplete output), not a change
    (folder / "train.json").write_text('{"config": {')
    assert changed_runs([run], {}) == {}


def test_a_configured_sha256_is_checked_by_the_download_not_by_hashing_again(tmp_path):
    paths = write_corpus(tmp_path / "mine")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.txt").write_text("other\n")
    files = {"train": {"url": str(paths["train"])}}
    assert set(changed_sources(files, str(raw))) == {f"{raw}/train.txt"}
    files["train"]["sha256"] = "0" * 64
    assert changed_sources(files, str(raw)) == {}
