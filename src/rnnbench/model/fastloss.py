"""Exact fused ``Linear(H, V)`` decoder + softmax cross-entropy, computed in chunks of tokens.

The naive ``F.cross_entropy(F.linear(h, W, b), t)`` materialises several fresh ``N x V`` buffers
per step (logits, log-softmax, and their gradients). Here the tokens are processed ``chunk_size``
rows at a time in a cached workspace, and because the loss is a *sum* of per-token losses, the
gradient with respect to a chunk of logits (``softmax - onehot``) is known as soon as the chunk's
softmax is: it is used right away to accumulate the gradients of ``h``, ``W`` and ``b``, which the
backward pass then only scales by ``grad_output``. The result is exact (same float operations up
to summation order), not an approximation.

The chunk workspaces are cached per (device, dtype, thread, CUDA stream) and reused across calls,
so no large buffer is allocated per step except the gradient of ``W`` itself, which autograd owns.

Under bf16 autocast (``precision: bf16``, rnnbench.model.precision) the three products run in bf16:
the logits ``h W^T + b`` are formed in bf16 (as autocast's ``F.linear``), the softmax reads
them into an fp32 workspace in the same pass, and the log-sum-exp and ``softmax - onehot`` are
fp32 (as autocast's ``F.cross_entropy``); that gradient is narrowed to bf16 for the two
backward products, ``dh = G W`` (in h's dtype) and ``dW = G^T h`` (returned in fp32, the
weight's dtype), and the bias gradient is summed in fp32.
With the default ``chunk_size`` a PTB minibatch (35 x 20 tokens) is a single chunk, the fastest
choice in the bench (docs/performance.md); smaller chunks bound the memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnbench.model.precision import autocast_dtype

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FusedLinearCrossEntropy",
    "clear_workspaces",
    "fused_linear_cross_entropy",
    "naive_linear_cross_entropy",
]

# Rows per chunk; chunks are balanced (700 tokens at 256 make 3 x 234, not 256, 256, 188).
# Chosen by the bench (docs/performance.md) for N = 35 * 20 = 700, V = 10,000, H = 150 and 300: the
# three GEMMs dominate, and every extra chunk costs GEMM efficiency (MKL repacks W per chunk; the
# weight-gradient GEMM accumulates with inner dimension ``rows``) and, with 2 threads, OpenMP
# barriers, which are expensive when the cores are shared. So a PTB training minibatch is one
# chunk: the win over the naive loss comes from the cached workspace and the fused softmax-
# gradient, and chunking bounds the workspace (2 * rows * V floats) for longer inputs. Pass a
# smaller chunk_size to trade speed for memory.
DEFAULT_CHUNK_SIZE = 1024

# At most this many workspaces are kept (least recently used first out).
_MAX_WORKSPACES = 4
_WORKSPACES: OrderedDict[tuple[Any, ...], Tensor] = OrderedDict()
_WORKSPACES_LOCK = threading.Lock()

Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


def clear_workspaces() -> None:
    """Drop every cached chunk workspace (frees their memory)."""
    with _WORKSPACES_LOCK:
        _WORKSPACES.clear()


def _workspace_key(device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    """Cache key: one workspace per device, dtype, thread and (on CUDA) current stream."""
    stream = 0
    if device.type == "cuda":
        # Kernels on one stream run in order, so reuse across calls on that stream is safe.
        stream = torch.cuda.current_stream(device).cuda_stream
    return (device, dtype, threading.get_ident(), stream)


def _workspace(rows: int, vocab: int, device: torch.device, dtype: torch.dtype,
               planes: int = 2) -> Tensor:
    """A cached scratch tensor (planes, rows, vocab), grown when too small, never freshly per
    call."""
    key = _workspace_key(device, dtype)
    need = planes * rows * vocab
    with _WORKSPACES_LOCK:
        flat = _WORKSPACES.get(key)
        if flat is None or flat.numel() < need:
            _WORKSPACES.pop(key, None)  # free the old one before allocating the bigger one
            flat = torch.empty(need, device=device, dtype=dtype)
            _WORKSPACES[key] = flat
        _WORKSPACES.move_to_end(key)
        while len(_WORKSPACES) > _MAX_WORKSPACES:
            _WORKSPACES.popitem(last=False)
    return flat[:need].view(planes, rows, vocab)


def _chunked_loss_and_grads(
    h: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    chunk_size: int,
    needs: tuple[bool, bool, bool],
    low: torch.dtype | None = None,
) -> tuple[Tensor, Grads]:
    """Summed cross-entropy (0-dim) and, where ``needs`` asks, unscaled grads of h, W, b.

    ``h`` (N, H) contiguous, ``weight`` (V, H), ``bias`` (V,) or None, ``target`` (N,) int64.
    ``low``: the dtype of the three products (bf16 under autocast), None for ``weight``'s own;
    the loss, the softmax and the gradients of W and b are in ``weight``'s dtype either way.
    """
    n_tokens, hidden = h.shape
    vocab = weight.shape[0]
    need_h, need_w, need_b = needs
    need_b = need_b and bias is not None
    any_grad = need_h or need_w or need_b
    n_chunks = max(1, -(-n_tokens // chunk_size))
    rows = max(1, -(-n_tokens // n_chunks))
    wide = weight.dtype  # the workspace's, the loss's and the gradients of W and b
    low = None if low in (None, wide) else low
    if low is None:  # fp32: logits and probabilities, (rows, V) each
        logits_ws, probs_ws = _workspace(rows, vocab, h.device, wide)
        h_mm, weight_mm, bias_mm = h, weight, bias
    else:  # bf16: one bf16 plane for the logits, then the gradient; fp32 probabilities
        logits_ws = _workspace(rows, vocab, h.device, low, planes=1)[0]  # (rows, V)
        probs_ws = _workspace(rows, vocab, h.device, wide, planes=1)[0]  # (rows, V)
        h_mm, weight_mm = h.to(low), weight.to(low)  # (N, H), (V, H)
        bias_mm = None if bias is None else bias.to(low)  # (V,): as autocast's F.linear
    weight_t = weight_mm.t()  # (H, V)

    token_loss = torch.empty(n_tokens, dtype=wide, device=h.device)  # (N,) -log p(target)
    # Fresh per call: autograd takes ownership of the returned gradients.
    grad_h = h.new_empty(n_tokens, hidden) if need_h else None  # (N, H)
    grad_w = weight.new_zeros(vocab, hidden) if need_w and n_tokens == 0 else None  # (V, H)
    grad_b = bias.new_zeros(vocab) if need_b and n_tokens == 0 else None  # (V,)

    for start in range(0, n_tokens, rows):
        stop = min(start + rows, n_tokens)
        n = stop - start
        h_c = h_mm[start:stop]  # (n, H)
        t_c = target[start:stop].unsqueeze(1)  # (n, 1)
        logits = logits_ws[:n]  # (n, V)
        probs = probs_ws[:n]  # (n, V)
        loss_c = token_loss[start:stop].unsqueeze(1)  # (n, 1), a view to write into
        if bias_mm is None:
            torch.mm(h_c, weight_t, out=logits)
        else:
            torch.addmm(bias_mm, h_c, weight_t, out=logits)
        if not any_grad:
            # Evaluation: one fused pass, log_softmax into the second buffer (fp32 whatever
            # the logits' dtype: the widening is part of the same pass), then -logp[t].
            torch.log_softmax(logits, 1, dtype=wide, out=probs)
            torch.gather(probs, 1, t_c, out=loss_c).neg_()
            continue
        # Training: one fused softmax pass (a single exp per logit) gives the gradient, and
        # the loss follows from two cheap row maxima: with m = max_j z_j, the largest
        # probability is exactly exp(0) / sum_j exp(z_j - m), so
        #   -log p_t = logsumexp(z) - z_t = (m - z_t) - log(max_j p_j),
        # where max_j p_j >= 1 / V never underflows (unlike p_t itself).
        z_t = logits.gather(1, t_c).to(wide)  # (n, 1)
        z_max = logits.amax(1, keepdim=True).to(wide)  # (n, 1)
        torch.softmax(logits, 1, dtype=wide, out=probs)
        p_max = probs.amax(1, keepdim=True)  # (n, 1)
        torch.sub(z_max, z_t, out=loss_c).sub_(p_max.log_())
        # d loss / d logits = softmax - onehot(target), in place in the workspace: (n, V).
        grad_logits = probs
        grad_logits.scatter_(1, t_c, grad_logits.gather(1, t_c).sub_(1))
        # the products' operand: the fp32 gradient itself, or narrowed to bf16 over the
        # logits, which are no longer needed
        g_mm = grad_logits if low is None else logits.copy_(grad_logits)  # (n, V)
        if grad_h is not None:
            if grad_h.dtype == g_mm.dtype:
                torch.mm(g_mm, weight_mm, out=grad_h[start:stop])  # (n, H)
            else:  # fp32 features, bf16 products
                grad_h[start:stop] = torch.mm(g_mm, weight_mm)
        if need_w:
            if grad_w is None:
                grad_w = torch.mm(g_mm.t(), h_c).to(wide)  # (V, H)
            elif low is None:
                grad_w.addmm_(g_mm.t(), h_c)
            else:
                grad_w.add_(torch.mm(g_mm.t(), h_c))
        if need_b:
            if grad_b is None:
                grad_b = grad_logits.sum(0)  # (V,)
            else:
                grad_b.add_(grad_logits.sum(0))
    loss = token_loss.sum()  # 0-dim
    return loss, (grad_h, grad_w, grad_b)


class FusedLinearCrossEntropy(torch.autograd.Function):
    """Sum of -log softmax(h W^T + b)[target] over tokens, computed in chunks of tokens."""

    @staticmethod
    def forward(
        ctx: Any,
        h: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        chunk_size: int,
        low: torch.dtype | None = None,
    ) -> Tensor:
        """Loss (0-dim); the gradients are computed here too and kept for ``backward``."""
        needs = tuple(ctx.needs_input_grad[:3])
        loss, grads = _chunked_loss_and_grads(h, weight, bias, target, chunk_size, needs, low)
        ctx.grads = grads
        ctx.chunk_size, ctx.low = chunk_size, low
        # Only read again if backward runs a second time (retain_graph=True): see backward.
        ctx.save_for_backward(h, weight, bias, target)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        """Scale the precomputed gradients by ``grad_output`` (a 0-dim tensor)."""
        grads = ctx.grads
        ctx.grads = None  # drop our references so autograd can take the tensors over
        if grads is None:
            # A second backward through a retained graph: the first one scaled the stored
            # gradients in place and handed them to autograd, so recompute them.
            h, weight, bias, target = ctx.saved_tensors
            needs = tuple(ctx.needs_input_grad[:3])
            _, grads = _chunked_loss_and_grads(h, weight, bias, target, ctx.chunk_size, needs,
                                               ctx.low)
        # The stored gradients were allocated for this call only, so scaling in place is safe.
        grad_h, grad_w, grad_b = (None if g is None else g.mul_(grad_output) for g in grads)
        return grad_h, grad_w, grad_b, None, None, None


def fused_linear_cross_entropy(
    h: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Tensor:
    """Return the summed cross-entropy (0-dim), differentiable w.r.t. h, weight and bias.

    Equals ``F.cross_entropy(F.linear(h, weight, bias), target, reduction="sum")``. ``h`` is
    (N, H) (or (..., H) with ``target`` (...)), ``weight`` (V, H), ``bias`` (V,) or None,
    ``target`` (N,) class ids. Without grad mode or without inputs requiring grad, only the loss
    is computed (the evaluation path). Divide the result by N (or the batch size) for a mean.
    Under autocast (bf16) the products run in its dtype and the loss stays in weight's dtype
    (module docstring); autocast itself is off inside, where every dtype is explicit.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if weight.dim() != 2 or h.shape[-1] != weight.shape[1]:
        raise ValueError(f"h {tuple(h.shape)} and weight {tuple(weight.shape)} do not match")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias {tuple(bias.shape)} does not match weight {tuple(weight.shape)}")
    if h.shape[:-1] != target.shape:
        raise ValueError(f"target {tuple(target.shape)} does not match h {tuple(h.shape)}")
    h2 = h.reshape(-1, h.shape[-1]).contiguous()  # (N, H)
    target1 = target.reshape(-1)  # (N,)
    weight = weight.contiguous()  # (V, H)
    bias = None if bias is None else bias.contiguous()  # (V,)
    inputs = (h2, weight) if bias is None else (h2, weight, bias)
    low = autocast_dtype(h2.device.type)
    if low is None and h2.dtype != weight.dtype:  # e.g. bf16 features, fp32 weights
        low = h2.dtype
    if low is None:
        return _fused(h2, weight, bias, target1, chunk_size, inputs, None)
    with torch.autocast(h2.device.type, enabled=False):
        return _fused(h2, weight, bias, target1, chunk_size, inputs, low)


def _fused(h2: Tensor, weight: Tensor, bias: Tensor | None, target1: Tensor, chunk_size: int,
           inputs: tuple[Tensor, ...], low: torch.dtype | None) -> Tensor:
    """The Function when a gradient is wanted, else the loss alone."""
    if torch.is_grad_enabled() and any(x.requires_grad for x in inputs):
        return FusedLinearCrossEntropy.apply(h2, weight, bias, target1, chunk_size, low)
    loss, _ = _chunked_loss_and_grads(h2, weight, bias, target1, chunk_size, (False,) * 3, low)
    return loss


def naive_linear_cross_entropy(
    h: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor
) -> Tensor:
    """Reference: the same summed loss through ``F.linear`` and ``F.cross_entropy``."""
    logits = F.linear(h, weight, bias)  # (..., V)
    flat = logits.reshape(-1, logits.shape[-1])  # (N, V)
    return F.cross_entropy(flat, target.reshape(-1), reduction="sum")
