"""Tests for rnnbench.model.fastloss: the chunked fused decoder + cross-entropy equals the
naive one."""

from __future__ import annotations

import pytest
import torch

from rnnbench.model import fastloss
from rnnbench.model.fastloss import (
    FusedLinearCrossEntropy,
    clear_workspaces,
    fused_linear_cross_entropy,
    naive_linear_cross_entropy,
)

Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]


def make_inputs(
    n: int,
    hidden: int,
    vocab: int,
    scale: float = 0.1,
    dtype: torch.dtype = torch.float32,
    bias: bool = True,
    seed: int = 0,
) -> Inputs:
    """Leaf h (n, hidden), weight (vocab, hidden) ~ U(-scale, scale), bias (vocab,), targets."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=gen, dtype=dtype).requires_grad_()
    weight = (torch.rand(vocab, hidden, generator=gen, dtype=dtype) * 2 - 1) * scale
    b = ((torch.rand(vocab, generator=gen, dtype=dtype) * 2 - 1) * scale) if bias else None
    target = torch.randint(0, vocab, (n,), generator=gen)
    weight.requires_grad_()
    if b is not None:
        b.requires_grad_()
    return h, weight, b, target


def loss_and_grads(fn, inputs: Inputs, divide: float = 1.0) -> list[torch.Tensor | None]:
    """Loss (detached) then the gradients of h, weight and bias after ``(fn(...) / divide)``."""
    h, weight, b, target = inputs
    params = [h, weight] + ([] if b is None else [b])
    for p in params:
        p.grad = None
    loss = fn(h, weight, b, target) / divide
    loss.backward()
    out = [loss.detach(), h.grad, weight.grad, None if b is None else b.grad]
    for p in params:
        p.grad = None
    return out


def assert_close(got: list, want: list, rtol: float = 1e-5) -> None:
    """Loss within ``rtol`` relative; each gradient within ``rtol`` of its max abs entry."""
    assert got[0].shape == torch.Size([])
    assert abs(got[0].item() - want[0].item()) <= rtol * abs(want[0].item())
    for g, w in zip(got[1:], want[1:], strict=True):
        assert (g is None) == (w is None)
        if w is None:
            continue
        assert g.shape == w.shape and g.dtype == w.dtype
        assert (g - w).abs().max().item() <= rtol * max(w.abs().max().item(), 1e-30)


def fused(chunk_size: int):
    """The fused loss with a given chunk size, in the naive function's signature."""

    def fn(h, weight, b, target):
        return fused_linear_cross_entropy(h, weight, b, target, chunk_size=chunk_size)

    return fn


@pytest.mark.parametrize("hidden", [150, 300])
@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_fused_loss_and_grads_match_naive_for_a_ptb_minibatch(hidden: int, scale: float) -> None:
    # 35 * 20 tokens, V = 10,000; weights U(-0.1, 0.1), and x10 for larger logits.
    inputs = make_inputs(700, hidden, 10_000, scale=scale)
    want = loss_and_grads(naive_linear_cross_entropy, inputs)
    assert_close(loss_and_grads(fused_linear_cross_entropy, inputs), want)  # default: 1 chunk
    assert_close(loss_and_grads(fused(256), inputs), want)  # 3 chunks of 234


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100, 256, 1000])
def test_fused_loss_matches_naive_for_any_chunk_size(chunk_size: int) -> None:
    inputs = make_inputs(100, 24, 500)
    want = loss_and_grads(naive_linear_cross_entropy, inputs)
    assert_close(loss_and_grads(fused(chunk_size), inputs), want)


def test_fused_loss_matches_naive_for_short_last_minibatch() -> None:
    # 9 * 20 tokens: fewer than a chunk, and not a multiple of the chunk size either.
    for n in (180, 300):
        inputs = make_inputs(n, 40, 2_000, seed=n)
        assert_close(
            loss_and_grads(fused(256), inputs), loss_and_grads(naive_linear_cross_entropy, inputs)
        )


def test_fused_loss_handles_large_logits_by_subtracting_the_max() -> None:
    # Logits of a few hundred: exp overflows float32 without the max subtraction.
    inputs = make_inputs(300, 64, 3_000, scale=10.0)
    got = loss_and_grads(fused(128), inputs)
    assert all(torch.isfinite(g).all() for g in got if g is not None)
    assert_close(got, loss_and_grads(naive_linear_cross_entropy, inputs))


def test_fused_loss_is_exact_in_double_precision() -> None:
    inputs = make_inputs(333, 32, 1_000, scale=3.0, dtype=torch.float64)
    assert_close(
        loss_and_grads(fused(64), inputs),
        loss_and_grads(naive_linear_cross_entropy, inputs),
        rtol=1e-12,
    )


def test_fused_loss_without_bias_matches_naive() -> None:
    inputs = make_inputs(150, 16, 700, bias=False)
    assert_close(
        loss_and_grads(fused(64), inputs), loss_and_grads(naive_linear_cross_entropy, inputs)
    )


def test_gradient_is_right_after_dividing_the_sum_by_the_token_count() -> None:
    inputs = make_inputs(210, 32, 1_000)
    n = inputs[0].shape[0]
    got = loss_and_grads(fused(64), inputs, divide=n)
    want = loss_and_grads(naive_linear_cross_entropy, inputs, divide=n)
    assert_close(got, want)
    # Also against the naive mean reduction the training loop would otherwise use.
    h, weight, b, target = inputs
    mean = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, weight, b), target)
    assert abs(got[0].item() - mean.item()) <= 1e-5 * mean.item()


def test_no_grad_path_returns_the_same_loss_and_builds_no_graph() -> None:
    inputs = make_inputs(200, 32, 1_000)
    want = naive_linear_cross_entropy(*inputs).detach()
    with torch.no_grad():
        got = fused_linear_cross_entropy(*inputs, chunk_size=64)
    assert got.grad_fn is None and not got.requires_grad
    assert abs(got.item() - want.item()) <= 1e-5 * want.item()
    h, weight, b, target = (x.detach() if x is not None else None for x in inputs)
    plain = fused_linear_cross_entropy(h, weight, b, target, chunk_size=64)
    assert plain.grad_fn is None and plain.item() == got.item()


def test_no_grad_path_skips_the_gradient_work(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = fastloss._chunked_loss_and_grads

    def spy(*args, **kwargs):
        loss, grads = real(*args, **kwargs)
        seen.append(grads)
        return loss, grads

    monkeypatch.setattr(fastloss, "_chunked_loss_and_grads", spy)
    inputs = make_inputs(50, 8, 100)
    with torch.no_grad():
        fused_linear_cross_entropy(*inputs, chunk_size=16)
    fused_linear_cross_entropy(*(x.detach() for x in inputs), chunk_size=16)
    assert seen == [(None, None, None), (None, None, None)]
    fused_linear_cross_entropy(*inputs, chunk_size=16)
    assert all(g is not None for g in seen[-1])


def test_only_the_gradients_asked_for_are_computed() -> None:
    h, weight, b, target = make_inputs(120, 16, 300)
    weight.requires_grad_(False)
    b.requires_grad_(False)
    fused_linear_cross_entropy(h, weight, b, target, chunk_size=50).backward()
    assert weight.grad is None and b.grad is None
    want = torch.autograd.grad(naive_linear_cross_entropy(h, weight, b, target), h)[0]
    assert (h.grad - want).abs().max() <= 1e-5 * want.abs().max()


def test_repeated_calls_with_different_shapes_reuse_the_workspace_safely() -> None:
    shapes = [(700, 32, 2_000), (140, 32, 2_000), (700, 48, 2_000), (30, 8, 500), (700, 32, 2_000)]
    for i, (n, hidden, vocab) in enumerate(shapes):
        inputs = make_inputs(n, hidden, vocab, seed=i)
        assert_close(
            loss_and_grads(fused(256), inputs), loss_and_grads(naive_linear_cross_entropy, inputs)
        )


def test_cached_workspace_is_reused_across_calls() -> None:
    clear_workspaces()
    inputs = make_inputs(300, 16, 1_000)
    loss_and_grads(fused(128), inputs)
    (first,) = fastloss._WORKSPACES.values()
    ptr = first.data_ptr()
    loss_and_grads(fused(128), make_inputs(300, 16, 1_000, seed=1))
    loss_and_grads(fused(128), make_inputs(100, 16, 1_000, seed=2))  # smaller: same buffer
    (again,) = fastloss._WORKSPACES.values()
    assert again.data_ptr() == ptr


def test_workspace_holds_one_balanced_chunk_not_all_logits() -> None:
    clear_workspaces()
    loss_and_grads(fused(64), make_inputs(300, 16, 1_000))  # 5 chunks of 60 rows
    (workspace,) = fastloss._WORKSPACES.values()
    assert workspace.numel() == 2 * 60 * 1_000


def test_returned_gradients_are_not_overwritten_by_later_calls() -> None:
    inputs = make_inputs(200, 16, 800)
    h, weight, b, target = inputs
    fused_linear_cross_entropy(h, weight, b, target, chunk_size=64).backward()
    grads = [h.grad.clone(), weight.grad.clone(), b.grad.clone()]
    kept = [h.grad, weight.grad, b.grad]
    other = make_inputs(200, 16, 800, seed=5)
    fused_linear_cross_entropy(*other, chunk_size=64).backward()
    for g, k in zip(grads, kept, strict=True):
        assert torch.equal(g, k)


def test_gradients_accumulate_over_two_losses_before_backward() -> None:
    a = make_inputs(100, 16, 400)
    h2 = torch.randn(60, 16, requires_grad=True)
    t2 = torch.randint(0, 400, (60,))
    _, weight, b, _ = a
    total = fused_linear_cross_entropy(*a, chunk_size=32)
    total = total + 0.5 * fused_linear_cross_entropy(h2, weight, b, t2, chunk_size=32)
    total.backward()
    got = [weight.grad.clone(), b.grad.clone(), a[0].grad.clone(), h2.grad.clone()]
    for p in (weight, b, a[0], h2):
        p.grad = None
    ref = naive_linear_cross_entropy(*a) + 0.5 * naive_linear_cross_entropy(h2, weight, b, t2)
    ref.backward()
    for g, w in zip(got, [weight.grad, b.grad, a[0].grad, h2.grad], strict=True):
        assert (g - w).abs().max() <= 1e-5 * w.abs().max()


def test_backward_twice_through_a_retained_graph_gives_the_same_gradients() -> None:
    h, weight, b, target = make_inputs(90, 8, 300)
    loss = fused_linear_cross_entropy(h, weight, b, target, chunk_size=32)
    g1 = torch.autograd.grad(loss / 3, (h, weight, b), retain_graph=True)
    g2 = torch.autograd.grad(loss / 3, (h, weight, b))
    for x, y in zip(g1, g2, strict=True):
        assert torch.equal(x, y)


def test_sequence_shaped_inputs_are_flattened() -> None:
    h, weight, b, target = make_inputs(35 * 4, 16, 300)
    h3 = h.detach().view(35, 4, 16).requires_grad_()
    loss = fused_linear_cross_entropy(h3, weight, b, target.view(35, 4), chunk_size=64)
    loss.backward()
    want = torch.autograd.grad(naive_linear_cross_entropy(h3, weight, b, target.view(35, 4)), h3)
    assert h3.grad.shape == (35, 4, 16)
    assert (h3.grad - want[0]).abs().max() <= 1e-5 * want[0].abs().max()


def test_function_class_matches_the_wrapper() -> None:
    h, weight, b, target = make_inputs(64, 8, 100)
    direct = FusedLinearCrossEntropy.apply(h, weight, b, target, 16)
    assert torch.equal(direct, fused_linear_cross_entropy(h, weight, b, target, chunk_size=16))


def test_bad_shapes_and_chunk_size_are_rejected() -> None:
    h, weight, b, target = make_inputs(10, 8, 50)
    with pytest.raises(ValueError, match="chunk_size"):
        fused_linear_cross_entropy(h, weight, b, target, chunk_size=0)
    with pytest.raises(ValueError, match="do not match"):
        fused_linear_cross_entropy(h[:, :4], weight, b, target)
    with pytest.raises(ValueError, match="does not match"):
        fused_linear_cross_entropy(h, weight, b, target[:5])


def test_empty_input_gives_zero_loss_and_zero_gradients() -> None:
    h, weight, b, target = make_inputs(0, 8, 50)
    loss = fused_linear_cross_entropy(h, weight, b, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(weight.grad) == 0 and torch.count_nonzero(b.grad) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_fused_loss_matches_naive_on_cuda(scale: float) -> None:
    h, weight, b, target = make_inputs(700, 150, 10_000, scale=scale)
    inputs = (
        h.detach().cuda().requires_grad_(),
        weight.detach().cuda().requires_grad_(),
        b.detach().cuda().requires_grad_(),
        target.cuda(),
    )
    got = loss_and_grads(fused(256), inputs)
    assert all(g.is_cuda for g in got)
    assert_close(got, loss_and_grads(naive_linear_cross_entropy, inputs))
