"""Evaluation: never a perplexity over zero tokens, capped evaluations marked, a full disk said
in one line."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnbench.diagnostics.evaluate import main as evaluate_main
from rnnbench.io import read_json, write_json
from rnnbench.model.losses import NoTokens, evaluate
from rnnbench.model.model import RNNModel
from rnnbench.training.train import main as train_main

# tiny models on one thread: fast, and immune to a busy second core (conftest.one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    """A run dir with one epoch of a tiny GRU (train.json, model.pt)."""
    tmp = tmp_path_factory.mktemp("trained")
    run = tmp / "run"
    assert train_main(["--cell", "gru", "--hidden", "8", "--epochs", "1", "--batch-size", "4",
                       "--bptt", "10", "--device", "cpu", "--data-dir", str(tiny_data),
                       "--run-dir", str(run), "--checkpoint", str(tmp / "c.pt")]) == 0
    return run


def _eval(run: Path, data: Path, out: Path, *extra: str) -> int:
    return evaluate_main(["--run-dir", str(run), "--data-dir", str(data), "--device", "cpu",
                          "--out", str(out), *extra])


@pytest.mark.parametrize("rows", [0, 1])
def test_evaluate_refuses_a_mean_over_zero_tokens(rows):
    model = RNNModel("lstm", 10, 4)
    data = torch.zeros(rows, 3, dtype=torch.long)  # (rows, batch): no row of targets
    with pytest.raises(NoTokens, match="nothing to score"):
        evaluate(model, data, bptt=5)


def test_eval_json_marks_an_evaluation_capped_by_max_eval_batches(trained, tiny_data, tmp_path):
    assert _eval(trained, tiny_data, tmp_path / "full.json", "--stream-test") == 0
    full = read_json(tmp_path / "full.json")
    for split in ("valid", "test", "test_stream"):
        assert full[f"{split}_tokens"] == full[f"{split}_tokens_total"] > 0
    assert full["eval_capped"] is False
    n = torch.load(tiny_data / "valid.pt").numel()
    assert full["valid_tokens_total"] == (n // 4 - 1) * 4  # every row of 4 columns but the first

    capped_run = tmp_path / "capped"
    shutil.copytree(trained, capped_run)
    meta = read_json(capped_run / "train.json")
    meta["config"]["max_eval_batches"] = 1
    write_json(capped_run / "train.json", meta)
    assert _eval(capped_run, tiny_data, tmp_path / "capped.json") == 0
    capped = read_json(tmp_path / "capped.json")
    assert capped["valid_tokens"] == 10 * 4 < capped["valid_tokens_total"]  # one bptt x batch
    assert capped["valid_tokens_total"] == full["valid_tokens_total"]
    assert capped["eval_capped"] is True


def test_split_too_short_for_the_batch_is_refused_and_writes_no_eval_json(trained, tiny_data,
                                                                        tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    torch.save(torch.arange(5), data / "test.pt")  # 5 tokens: one row of 4 columns, no targets
    out = tmp_path / "eval.json"
    with pytest.raises(SystemExit) as exc:
        _eval(trained, data, out)
    message = str(exc.value.code)
    assert "test split" in message and "only 5 tokens" in message
    assert "batch_size (4)" in message and "perplexity" in message
    assert not out.exists()


def test_full_disk_while_writing_eval_json_is_one_line(trained, tiny_data, small_fs):
    with open(small_fs / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (1 << 20))  # more than fits: the file system is full
    assert shutil.disk_usage(small_fs).free == 0
    out = small_fs / "eval.json"
    with pytest.raises(SystemExit) as exc:
        _eval(trained, tiny_data, out)
    assert str(exc.value.code).startswith(f"no space left on device: {out}")
    assert "\n" not in str(exc.value.code)
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]  # no eval.json, no temp


@pytest.mark.parametrize(("stage", "other"), [("training.train", "diagnostics.evaluate"),
                                              ("diagnostics.evaluate", "training.train")])
def test_training_and_evaluation_do_not_import_each_other(stage, other):
    code = (f"import sys, rnnbench.{stage}; "
            f"sys.exit('rnnbench.{other}' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture(scope="module")
def ptb_data(ptb_mirror, tmp_path_factory) -> Path:
    """Real PTB, tokenized (a few seconds)."""
    from rnnbench.data.tokenizer import main as tokenize_main

    out = tmp_path_factory.mktemp("ptb") / "data"
    assert tokenize_main([*(a for s in ("train", "valid", "test")
                            for a in (f"--{s}", str(ptb_mirror / f"ptb.{s}.txt"))),
                          "--out-dir", str(out)]) == 0
    return out


def test_an_overflowing_test_perplexity_makes_the_run_diverged_in_valid_json(ptb_data, tmp_path):
    # issue #22 case 3: one step at lr 1e-12 from a wide uniform init of a relu RNN leaves a
    # test loss of ~1286 nats (perplexity e^1286 overflows) and a valid one of ~317 nats
    run = tmp_path / "run"
    assert train_main(["--cell", "rnn_relu", "--hidden", "32", "--init", "uniform",
                       "--init-scale", "0.5901", "--lr", "1e-12", "--epochs", "1",
                       "--max-batches", "1", "--max-eval-batches", "20", "--device", "cpu",
                       "--data-dir", str(ptb_data), "--run-dir", str(run),
                       "--checkpoint", str(tmp_path / "c.pt")]) == 0
    assert read_json(run / "train.json")["status"] == "ok"  # training saw a finite valid ppl
    out = tmp_path / "eval.json"
    assert _eval(run, ptb_data, out) == 0
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert result["status"] == "diverged" and result["diverged_split"] == "test"
    assert result["test_ppl"] is None and result["test_loss"] > 709.8
    assert 1e100 < result["valid_ppl"] < math.inf  # finite, recorded as it is


def test_write_json_writes_null_for_nan_and_infinities(tmp_path):
    write_json(tmp_path / "x.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": 2})
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [None, None, 1.5], "c": 2}
