"""Training: lr schedule, gradient treatment, perplexity, resume, divergence, preemption,
splits too short for the batch."""

import gzip
import hashlib
import json
import math
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from helpers import StopAfter, tiny_run_config, train_to_end

from rnnbench.config import RunConfig
from rnnbench.data.batching import batchify
from rnnbench.io import read_json, write_json
from rnnbench.model.losses import evaluate
from rnnbench.model.model import RNNModel
from rnnbench.training.train import GradTreatment, Preempted, Trainer, main


def test_lr_schedule_of_the_published_recipes():
    rnn = RunConfig("rnn_tanh", 150, epochs=10, lr=1.0, decay_start=4, decay_factor=1.1)
    assert [rnn.lr_at(e) for e in range(6)] == pytest.approx([1, 1, 1, 1, 1 / 1.1, 1 / 1.21])
    lstm = RunConfig("lstm", 300, epochs=8, lr=5.0, decay_start=2, decay_factor=3.0)
    assert [lstm.lr_at(e) for e in range(4)] == pytest.approx([5, 5, 5 / 3, 5 / 9])
    zaremba = RunConfig("lstm", 200, epochs=13, lr=1.0, decay_start=4, decay_factor=2.0)
    assert [zaremba.lr_at(e) for e in (3, 4, 12)] == pytest.approx([1, 0.5, 2**-9])


def _grads(model, scale):
    for p in model.parameters():
        p.grad = torch.full_like(p, scale)


def test_unit_norm_step_gives_norm_one_and_reports_the_norm_before():
    model = RNNModel("rnn_tanh", 20, 4)
    _grads(model, 0.5)
    norms = GradTreatment(model, tiny_run_config(grad="normalize"))()
    n = sum(p.numel() for p in model.parameters())
    assert norms[0].item() == pytest.approx(0.5 * math.sqrt(n))
    after = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert after.item() == pytest.approx(1.0, rel=1e-6)


def test_unit_norm_step_zeroes_tiny_gradients():
    model = RNNModel("gru", 20, 4)
    _grads(model, 1e-9)
    GradTreatment(model, tiny_run_config(grad="normalize", normalize_eps=1e-4))()
    assert all(p.grad.abs().max() == 0 for p in model.parameters())


def test_clip_caps_the_global_norm_and_leaves_small_ones():
    model = RNNModel("lstm", 20, 4)
    _grads(model, 1.0)
    GradTreatment(model, tiny_run_config(grad="clip", clip_norm=5.0))()
    after = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert after.item() == pytest.approx(5.0, rel=1e-5)
    _grads(model, 1e-3)
    GradTreatment(model, tiny_run_config(grad="clip", clip_norm=5.0))()
    assert all(torch.all(p.grad == 1e-3) for p in model.parameters())


def test_group_norms_combine_to_the_global_norm():
    model = RNNModel("lstm", 30, 6, num_layers=2)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    norms = GradTreatment(model, tiny_run_config(grad="none"))()
    assert norms[0].item() == pytest.approx(norms[1:].pow(2).sum().sqrt().item(), rel=1e-6)
    assert len(norms) == 1 + 1 + 3 * 2 + 1


@pytest.mark.parametrize("impl", ["fused", "naive"])
def test_perplexity_of_a_uniform_model_equals_the_vocabulary_size(impl):
    model = RNNModel("rnn_relu", 37, 8)
    torch.nn.init.zeros_(model.decoder.weight)
    data = batchify(torch.randint(0, 37, (1000,)), 5)
    loss, tokens = evaluate(model, data, bptt=7, impl=impl)
    assert tokens == (200 - 1) * 5
    assert math.exp(loss) == pytest.approx(37, rel=1e-6)


def test_resume_after_preemption_equals_uninterrupted_run_bitwise(tiny_data, tmp_path):
    cfg = tiny_run_config()
    whole = train_to_end(cfg, tiny_data, tmp_path / "a.pt")
    pieces = train_to_end(cfg, tiny_data, tmp_path / "b.pt", stops=(5, 30, 50))
    drop = ["seconds", "tokens_per_s"]
    a = pd.DataFrame(whole.state.history).drop(columns=drop)
    b = pd.DataFrame(pieces.state.history).drop(columns=drop)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for k, v in whole.state.best_state.items():
        assert torch.equal(v, pieces.state.best_state[k]), k
    for x, y in zip(whole.state.steps, pieces.state.steps, strict=True):
        assert torch.equal(x, y)
    assert (whole.state.resumes, pieces.state.resumes) == (0, 3)


def test_wall_time_adds_up_across_resumes_and_an_old_checkpoint_starts_afresh(tiny_data,
                                                                             tmp_path):
    cfg, ckpt = tiny_run_config(), tmp_path / "c.pt"
    with pytest.raises(Preempted):
        StopAfter(cfg, tiny_data, ckpt, torch.device("cpu"), stop_after=20).run()
    saved = torch.load(ckpt, weights_only=True)
    assert saved["wall_seconds"] > 0 and saved["resumes"] == 0
    resumed = Trainer(cfg, tiny_data, ckpt, torch.device("cpu"))
    assert resumed.state.resumes == 1
    assert resumed.wall_seconds() >= saved["wall_seconds"]
    for key in ("wall_seconds", "resumes"):  # as written by rnnbench before they existed
        del saved[key]
    torch.save(saved, ckpt)
    old = Trainer(cfg, tiny_data, ckpt, torch.device("cpu"))  # set aside, not resumed in part
    assert old.state.resumes == 0 and old.state.batch == 0
    assert ckpt.with_name("c.pt.corrupt").exists()


def _train_cmd(data, run_dir, ckpt, *extra):
    return [sys.executable, "-m", "rnnbench.training.train", "--cell", "gru", "--hidden", "24",
            "--layers", "2", "--dropout", "0.1", "--epochs", "3", "--batch-size", "4",
            "--bptt", "10", "--device", "cpu", "--data-dir", str(data), "--run-dir",
            str(run_dir), "--checkpoint", str(ckpt), "--threads", "1", *extra]


def test_killed_job_resumes_mid_epoch_with_identical_results(tiny_data, tmp_path):
    ref = tmp_path / "ref"
    assert subprocess.run(_train_cmd(tiny_data, ref, tmp_path / "ref.pt"),
                          capture_output=True).returncode == 0
    run, ckpt = tmp_path / "run", tmp_path / "run.pt"
    cmd = _train_cmd(tiny_data, run, ckpt, "--checkpoint-interval", "0")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill -9 once a mid-epoch checkpoint of epoch 1 exists
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=True)
            if state["epoch"] >= 1 and state["batch"] > 0:
                break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not (run / "train.json").exists()
    wall_before_kill = torch.load(ckpt, weights_only=True)["wall_seconds"]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    meta_ref = json.loads((ref / "train.json").read_text())
    meta = json.loads((run / "train.json").read_text())
    assert (meta_ref["resumes"], meta["resumes"]) == (0, 1)
    assert meta["wall_seconds"] > wall_before_kill > 0
    assert meta["command"] == shlex.join(["python", "-m", "rnnbench.training.train", *cmd[3:]])
    a, b = pd.read_csv(ref / "history.csv"), pd.read_csv(run / "history.csv")
    cols = [c for c in a.columns if c not in ("seconds", "tokens_per_s")]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    assert gzip.decompress((ref / "steps.csv.gz").read_bytes()) == \
        gzip.decompress((run / "steps.csv.gz").read_bytes())
    ma = torch.load(ref / "model.pt", weights_only=True)["best_state"]
    mb = torch.load(run / "model.pt", weights_only=True)["best_state"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not ckpt.exists()  # removed once the outputs are written


def test_sigterm_checkpoints_and_exits_for_a_retry(tiny_data, tmp_path):
    run, ckpt = tmp_path / "run", tmp_path / "run.pt"
    cmd = _train_cmd(tiny_data, run, ckpt, "--epochs", "50")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:  # handler installed by then
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] > 0 or state["batch"] > 0
    assert not (run / "train.json").exists()


def test_nan_loss_is_recorded_as_diverged_and_exits_zero(tiny_data, tmp_path):
    run = tmp_path / "run"
    argv = ["--cell", "rnn_relu", "--hidden", "16", "--epochs", "3", "--lr", "1e30",
            "--grad", "none", "--batch-size", "4", "--bptt", "10", "--device", "cpu",
            "--data-dir", str(tiny_data), "--run-dir", str(run), "--checkpoint",
            str(tmp_path / "c.pt"), "--log-interval", "5"]
    assert main(argv) == 0
    meta = read_json(run / "train.json")
    assert meta["status"] == "diverged" and meta["diverged_step"] is not None
    assert (run / "steps.csv.gz").exists() and (run / "model.pt").exists()


def test_stream_test_reads_the_test_set_as_one_column(tiny_data, tmp_path):
    from rnnbench.diagnostics.evaluate import main as evaluate_main

    run = tmp_path / "run"
    argv = ["--cell", "gru", "--hidden", "8", "--epochs", "1", "--batch-size", "4",
            "--bptt", "10", "--device", "cpu", "--data-dir", str(tiny_data), "--run-dir",
            str(run), "--checkpoint", str(tmp_path / "c.pt")]
    assert main(argv) == 0
    common = ["--run-dir", str(run), "--data-dir", str(tiny_data), "--device", "cpu"]
    assert evaluate_main([*common, "--out", str(tmp_path / "plain.json")]) == 0
    assert evaluate_main([*common, "--stream-test", "--out", str(tmp_path / "s.json")]) == 0
    plain, stream = read_json(tmp_path / "plain.json"), read_json(tmp_path / "s.json")
    assert "test_stream_ppl" not in plain
    assert stream["test_ppl"] == plain["test_ppl"]
    n = torch.load(tiny_data / "test.pt").numel()
    assert stream["test_stream_tokens"] == n - 1  # every token but the first is predicted
    assert plain["test_tokens"] < n - 1
    assert math.isfinite(stream["test_stream_ppl"]) and stream["test_stream_ppl"] > 1


def test_final_weights_are_kept_and_evaluated(tiny_data, tmp_path):
    from rnnbench.diagnostics.evaluate import load_model
    from rnnbench.diagnostics.evaluate import main as evaluate_main

    run = tmp_path / "run"
    argv = ["--cell", "rnn_tanh", "--hidden", "8", "--epochs", "2", "--batch-size", "4",
            "--bptt", "10", "--lr", "5", "--device", "cpu", "--data-dir", str(tiny_data),
            "--run-dir", str(run), "--checkpoint", str(tmp_path / "c.pt")]
    assert main(argv) == 0
    blob = torch.load(run / "model.pt", weights_only=True)
    final = load_model(run / "model.pt", "final")
    for k, v in final.state_dict().items():
        assert torch.equal(v, blob["final_state"][k])
    common = ["--run-dir", str(run), "--data-dir", str(tiny_data), "--device", "cpu"]
    assert evaluate_main([*common, "--weights", "final", "--out", str(tmp_path / "f.json")]) == 0
    result = read_json(tmp_path / "f.json")
    assert result["weights"] == "final" and math.isfinite(result["test_ppl"])
    data = batchify(torch.load(tiny_data / "test.pt"), 4)
    loss, _ = evaluate(final, data, bptt=10)
    assert result["test_ppl"] == pytest.approx(math.exp(loss), rel=1e-9)

    # an ok run's model.pt without final weights (an older rnnbench) stops, naming the file
    del blob["final_state"]
    torch.save(blob, run / "model.pt")
    with pytest.raises(SystemExit, match="keeps no final weights although the run finished ok"):
        evaluate_main([*common, "--weights", "final", "--out", str(tmp_path / "g.json")])


def _short_data(tiny_data, tmp_path, split: str, tokens: int):
    """A copy of the tiny corpus whose ``split`` has only ``tokens`` tokens."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    if split == "test":  # the trainer counts test from stats.json, never loading it
        stats = read_json(data / "stats.json")
        stats["splits"]["test"]["tokens"] = tokens
        write_json(data / "stats.json", stats)
    else:
        torch.save(torch.arange(tokens, dtype=torch.int64) % 10, data / f"{split}.pt")
    return data


@pytest.mark.parametrize(("split", "tokens", "batch_size", "says"), [
    ("train", 0, 4, "the train split of data is empty, fewer than one minibatch"),
    ("train", 40, 4, "has only 40 tokens, fewer than one minibatch (batch_size 4 x (bptt 10"),
    ("valid", 100, 80, "the valid split of data has only 100 tokens"),
    ("test", 7, 4, "the test split of data has only 7 tokens"),
])
def test_split_too_short_for_batch_and_bptt_stops_with_one_paragraph_writing_nothing(
        tiny_data, tmp_path, split, tokens, batch_size, says):
    data = _short_data(tiny_data, tmp_path, split, tokens)
    run, ckpt = tmp_path / "run", tmp_path / "ckpt" / "c.pt"
    argv = ["--cell", "gru", "--hidden", "8", "--epochs", "1", "--batch-size", str(batch_size),
            "--bptt", "10", "--device", "cpu", "--data-dir", str(data), "--run-dir", str(run),
            "--checkpoint", str(ckpt)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    message = str(exc.value.code)
    assert message.startswith("cannot train: ") and says in message, message
    assert f"batch_size {batch_size} and bptt 10" in message and "Lower batch_size" in message
    assert "\n" not in message
    assert not run.exists() and not ckpt.exists()
    assert list(ckpt.parent.iterdir()) == []  # not even the lock file is left


def test_train_json_records_the_corpus_and_its_checksums(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["--cell", "rnn_tanh", "--hidden", "8", "--epochs", "1", "--batch-size", "4",
                 "--bptt", "10", "--device", "cpu", "--data-dir", str(tiny_data), "--run-dir",
                 str(run), "--checkpoint", str(tmp_path / "c.pt")]) == 0
    meta = read_json(run / "train.json")
    assert meta["corpus"] == tiny_data.name
    assert meta["data_sha256"] == {
        name: hashlib.sha256((tiny_data / name).read_bytes()).hexdigest()
        for name in ("train.pt", "valid.pt", "vocab.txt")}


def test_train_json_splits_the_parameters_into_embedding_decoder_and_recurrent(tiny_data,
                                                                                tmp_path):
    from rnnbench.model.params import param_counts

    run = tmp_path / "run"
    assert main(["--cell", "gru", "--hidden", "8", "--layers", "2", "--epochs", "1",
                 "--batch-size", "4", "--bptt", "10", "--device", "cpu", "--data-dir",
                 str(tiny_data), "--run-dir", str(run), "--checkpoint",
                 str(tmp_path / "c.pt")]) == 0
    meta = read_json(run / "train.json")
    expected = param_counts("gru", 8, 2, meta["vocab_size"])
    assert {k: meta[k] for k in expected} == expected
    assert meta["params"] == meta["embedding_decoder_params"] + meta["recurrent_params"]


def test_an_overflowing_perplexity_is_diverged_not_ok(tiny_data, tmp_path):
    # lr 1e30 without gradient treatment: the LSTM keeps the loss finite but far above the
    # ~709 nats where exp overflows, so the perplexity is infinite: not a number to report
    run = tmp_path / "run"
    assert main(["--cell", "lstm", "--hidden", "8", "--epochs", "2", "--batch-size", "4",
                 "--bptt", "10", "--lr", "1e30", "--grad", "none", "--device", "cpu",
                 "--data-dir", str(tiny_data), "--run-dir", str(run),
                 "--checkpoint", str(tmp_path / "c.pt")]) == 0
    meta = read_json(run / "train.json")
    assert meta["status"] == "diverged" and meta["diverged_step"] is not None
    assert meta["epochs_done"] == 1  # the epoch that overflowed is recorded, no later one


def test_a_signal_before_the_trainer_exists_is_kept_and_checkpoints_at_once(tiny_data, tmp_path,
                                                                            monkeypatch):
    # SIGTERM while the data loads (here: as the trainer is built) must not kill the process
    # with nothing saved: the trainer stops at its first minibatch with a checkpoint and exits
    # 75 (retry), and the rerun finishes from it
    import os

    import rnnbench.training.train as train_module

    built = Trainer.__init__

    def signalled_init(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        built(self, *args, **kwargs)

    run, ckpt = tmp_path / "run", tmp_path / "c.pt"
    argv = ["--cell", "rnn_tanh", "--hidden", "8", "--epochs", "1", "--batch-size", "4",
            "--bptt", "10", "--device", "cpu", "--data-dir", str(tiny_data), "--run-dir",
            str(run), "--checkpoint", str(ckpt)]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        monkeypatch.setattr(train_module.Trainer, "__init__", signalled_init)
        assert main(argv) == 75
        assert ckpt.exists() and not (run / "train.json").exists()
        monkeypatch.setattr(train_module.Trainer, "__init__", built)
        assert main(argv) == 0
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    meta = read_json(run / "train.json")
    assert meta["status"] == "ok" and meta["resumes"] == 1


def test_divergence_is_caught_at_the_first_non_finite_step_not_at_the_next_log_line(
        tiny_data, tmp_path):
    cfg = tiny_run_config(cell="rnn_relu", layers=1, dropout=0.0, lr=1e30, grad="none", epochs=3)
    trainer = Trainer(cfg, tiny_data, tmp_path / "c.pt", torch.device("cpu"), log_interval=200)
    assert trainer.run() == "diverged"
    losses = trainer.state.steps[0][:, 0]
    first = int((~torch.isfinite(losses)).nonzero()[0, 0])
    assert trainer.state.diverged_step == first < trainer.n_batches - 1
    # no minibatch ran after it (the log line every 200 would have let the epoch finish)
    assert trainer.state.batch == first + 1 and losses[first + 1:].isnan().all()


def test_progress_lines_count_epochs_from_one_and_show_the_recent_loss(tiny_data, tmp_path,
                                                                        caplog):
    caplog.set_level("INFO", logger="rnnbench.training.train")
    trainer = Trainer(tiny_run_config(epochs=2), tiny_data, tmp_path / "c.pt", torch.device("cpu"),
                      log_interval=3)
    assert trainer.run() == "ok"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert lines[0].startswith("epoch 1/2  batch ") and "epoch 0/" not in "\n".join(lines)
    assert any(line.startswith("epoch 2/2 done") for line in lines)
    # the loss of a line is the mean of its own minibatches' losses
    steps = trainer.state.steps[0][:, 0]
    line = next(li for li in lines if " batch 6/" in li)
    loss = float(line.split("loss ")[1].split()[0])
    assert loss == pytest.approx(float(steps[5:6].mean()) if " batch 5/" in "\n".join(lines)
                                 else float(steps[3:6].mean()), abs=1e-3)
