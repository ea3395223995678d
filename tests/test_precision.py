"""``precision: bf16``: autocast really in effect (weights fp32, products bf16), losses within
tolerance of fp32 on the same weights, both loss implementations, recorded, resumable."""

import math

import pandas as pd
import pytest
import torch
from helpers import tiny_run_config, train_to_end
from torch.utils._python_dispatch import TorchDispatchMode

from rnnbench.config import RunConfig
from rnnbench.data.batching import batchify
from rnnbench.experiment.grid import group_id, run_args
from rnnbench.model.fastloss import fused_linear_cross_entropy, naive_linear_cross_entropy
from rnnbench.model.losses import evaluate
from rnnbench.model.model import RNNModel
from rnnbench.model.precision import autocast
from rnnbench.training.train import Trainer

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
PRODUCTS = ("mm", "addmm", "bmm", "matmul", "linear", "rnn", "lstm", "gru")

pytestmark = pytest.mark.usefixtures("one_thread")


class ProductDtypes(TorchDispatchMode):
    """Records the floating dtypes of the tensor inputs of every product op dispatched."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if any(p in name for p in PRODUCTS):
            flat = [a for a in args if isinstance(a, torch.Tensor)]
            flat += [t for a in args if isinstance(a, (list, tuple)) for t in a
                     if isinstance(t, torch.Tensor)]
            self.seen.setdefault(name, set()).update(
                t.dtype for t in flat if t.is_floating_point())
        return func(*args, **(kwargs or {}))


def test_fp32_spelled_out_is_the_default_run_and_bad_values_are_refused():
    assert RunConfig("lstm", 8, precision="fp32") == RunConfig("lstm", 8)
    assert RunConfig("lstm", 8, precision="fp32").precision_name == "fp32"
    assert "--precision" not in run_args(RunConfig("lstm", 8, precision="fp32"))
    assert "--precision bf16" in run_args(RunConfig("lstm", 8, precision="bf16"))
    with pytest.raises(ValueError, match="invalid precision 'fp16'.*fp32, bf16"):
        RunConfig("lstm", 8, precision="fp16")
    assert group_id("lstm", 300, 1, {"precision": "bf16"}) == "lstm-h300-l1-bf16"
    assert group_id("lstm", 300, 1, {"precision": "fp32"}) == "lstm-h300-l1"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("impl", ["fused", "naive"])
def test_a_bf16_step_runs_its_products_in_bf16_and_keeps_fp32_weights(cell, impl, tiny_data,
                                                                        tmp_path):
    cfg = tiny_run_config(cell=cell, precision="bf16", loss_impl=impl, dropout=0.0)
    trainer = Trainer(cfg, tiny_data, tmp_path / "c.pt", torch.device("cpu"))
    x, y = trainer.train_data[:10], trainer.train_data[1:11]  # (seq, batch)
    record = torch.zeros(2 + len(trainer.treat.names))
    with ProductDtypes() as mode:
        hidden, total = trainer.step(x, y, trainer.model.init_hidden(cfg.batch_size), record)
    assert mode.seen, "no product op seen"
    for name, dtypes in mode.seen.items():
        assert torch.float32 not in dtypes, f"{name} ran with fp32 operands: {dtypes}"
    # master weights, their gradients and the step's loss and norms stay fp32
    for name, p in trainer.model.named_parameters():
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32, name
    assert total.dtype == torch.float32 and record.dtype == torch.float32
    assert torch.isfinite(record).all()
    with autocast("cpu", "bf16"):
        out, _ = trainer.model.features(x, trainer.model.init_hidden(cfg.batch_size))
    assert out.dtype == torch.bfloat16


def test_fp32_steps_run_no_product_in_bf16(tiny_data, tmp_path):
    cfg = tiny_run_config(cell="gru", dropout=0.0)
    trainer = Trainer(cfg, tiny_data, tmp_path / "c.pt", torch.device("cpu"))
    x, y = trainer.train_data[:10], trainer.train_data[1:11]
    with ProductDtypes() as mode:
        trainer.step(x, y, trainer.model.init_hidden(cfg.batch_size),
                     torch.zeros(2 + len(trainer.treat.names)))
    assert all(dtypes == {torch.float32} for dtypes in mode.seen.values()), mode.seen


def _loss_and_grads(fn, h, w, b, t):
    h, w, b = (x.detach().clone().requires_grad_() for x in (h, w, b))
    loss = fn(h, w, b, t)
    loss.backward()
    return loss.detach(), h.grad, w.grad, b.grad


def test_fused_bf16_loss_matches_autocast_naive_loss_and_fp32_within_tolerance():
    torch.manual_seed(0)
    n, hidden, vocab = 300, 32, 500
    h, w = torch.randn(n, hidden), 0.3 * torch.randn(vocab, hidden)
    b, t = 0.1 * torch.randn(vocab), torch.randint(0, vocab, (n,))
    fp32 = _loss_and_grads(fused_linear_cross_entropy, h, w, b, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = _loss_and_grads(fused_linear_cross_entropy, h, w, b, t)
        naive = _loss_and_grads(naive_linear_cross_entropy, h, w, b, t)
    for got in (fused, naive):
        assert got[0].dtype == torch.float32  # the loss: fp32 log-sum-exp
        assert [g.dtype for g in got[1:]] == [torch.float32] * 3  # fp32 leaves, fp32 grads
        assert got[0].item() == pytest.approx(fp32[0].item(), rel=1e-2)
    # the same bf16 products (to rounding of bf16 logits and their gradient)
    assert fused[0].item() == pytest.approx(naive[0].item(), rel=2e-3)
    for a, r in zip(fused[1:], naive[1:], strict=True):
        assert (a - r).norm() <= 2e-2 * r.norm()
    # and bf16 is really in effect: not bitwise the fp32 loss
    assert fused[0].item() != fp32[0].item()


def test_fused_bf16_loss_with_bf16_features_returns_bf16_feature_gradients():
    torch.manual_seed(1)
    h = torch.randn(40, 8, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(50, 8, requires_grad=True)
    b = torch.zeros(50, requires_grad=True)
    t = torch.randint(0, 50, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fused_linear_cross_entropy(h, w, b, t, chunk_size=16)  # 3 chunks
    loss.backward()
    assert (loss.dtype, h.grad.dtype, w.grad.dtype) == (torch.float32, torch.bfloat16,
                                                        torch.float32)
    ref = naive_linear_cross_entropy(h.detach().float(), w.detach(), b.detach(), t)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-2)


@pytest.mark.parametrize("cell", CELLS)
def test_bf16_evaluation_is_within_a_percent_of_fp32_on_the_same_weights(cell):
    torch.manual_seed(2)
    model = RNNModel(cell, 60, 24)
    data = batchify(torch.randint(0, 60, (3000,)), 6)
    fp32, n32 = evaluate(model, data, bptt=10)
    for impl in ("fused", "naive"):
        bf16, n16 = evaluate(model, data, bptt=10, impl=impl, precision="bf16")
        assert n16 == n32
        assert math.exp(bf16) == pytest.approx(math.exp(fp32), rel=1e-2)


def test_bf16_training_is_recorded_and_resumes_bitwise(tiny_data, tmp_path):
    cfg = tiny_run_config(precision="bf16")
    whole = train_to_end(cfg, tiny_data, tmp_path / "a.pt")
    pieces = train_to_end(cfg, tiny_data, tmp_path / "b.pt", stops=(7, 33))
    drop = ["seconds", "tokens_per_s"]
    a = pd.DataFrame(whole.state.history).drop(columns=drop)
    b = pd.DataFrame(pieces.state.history).drop(columns=drop)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for k, v in whole.state.best_state.items():
        assert v.dtype == torch.float32 or not v.is_floating_point(), k
        assert torch.equal(v, pieces.state.best_state[k]), k
    for x, y in zip(whole.state.steps, pieces.state.steps, strict=True):
        assert torch.equal(x, y)
    # another precision is another run: not bitwise the fp32 one, but close to it
    fp32 = train_to_end(tiny_run_config(), tiny_data, tmp_path / "c.pt")
    assert a["valid_ppl"].tolist() != [r["valid_ppl"] for r in fp32.state.history]
    for r16, r32 in zip(whole.state.history, fp32.state.history, strict=True):
        assert r16["valid_ppl"] == pytest.approx(r32["valid_ppl"], rel=0.05)


@pytest.mark.parametrize("cell", CELLS)
def test_bf16_carries_the_state_between_minibatches_in_fp32(cell, tiny_data, tmp_path):
    # the products are rounded to bf16, the state handed to the next segment is not
    model = RNNModel(cell, 60, 16)
    hidden = model.init_hidden(3)
    with autocast("cpu", "bf16"):
        out, hidden = model.features(torch.randint(0, 60, (5, 3)), hidden)
    assert out.dtype == torch.bfloat16
    for h in hidden if isinstance(hidden, tuple) else (hidden,):
        assert h.dtype == torch.float32
    # and so into a bf16 run's checkpoint, stopped mid-epoch
    from helpers import StopAfter

    from rnnbench.training.train import Preempted

    ckpt = tmp_path / "s.pt"
    with pytest.raises(Preempted):
        StopAfter(tiny_run_config(cell=cell, precision="bf16"), tiny_data, ckpt,
                  torch.device("cpu"), stop_after=7).run()
    saved = torch.load(ckpt, weights_only=True)["hidden"]
    for h in saved if isinstance(saved, (tuple, list)) else (saved,):
        assert h.dtype == torch.float32
