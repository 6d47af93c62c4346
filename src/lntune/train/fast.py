"""Dropout masks sampled faster on CPU: the same Bernoulli(1 - p) inverted dropout, other random numbers.

On CPU, torch's dropout draws its mask with bernoulli_, about twice as slow as torch.rand, and a
step of LN-tuning spends a fifth of its time there (MiniLM, batch 32 x 128: 20 masks, 58M
elements). Inside `FastDropout()` every F.dropout (nn.Dropout, eager attention) and the dropout
inside F.scaled_dot_product_attention draw their masks as `torch.rand(...) >= p` from the same
global generator instead: the same distribution (to float32's 2^-24 resolution, as CUDA's dropout),
the same placement and rate, so the training algorithm is unchanged; only the random stream
differs from plain PyTorch's, and a seed still fixes it. Attention with dropout computes what
SDPA's math kernel computes (its mask, causal and GQA handling; a query that sees no key gets
zeros) without the kernel's extra passes, and keeps for backward the probabilities and a one-byte
mask where autograd would keep three float tensors of that size.
CUDA tensors and p = 0 pass through untouched."""
from __future__ import annotations

import inspect
import warnings

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_SDPA = inspect.Signature([
    inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
    for n, d in [("query", inspect.Parameter.empty), ("key", inspect.Parameter.empty),
                 ("value", inspect.Parameter.empty), ("attn_mask", None), ("dropout_p", 0.0),
                 ("is_causal", False), ("scale", None), ("enable_gqa", False)]
])
_DROPOUT = inspect.signature(F.dropout)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        # drawn in float32 whatever x is: bf16 uniforms would round p to 8 bits
        noise = torch.rand(x.shape, device=x.device).ge_(p).mul_(1.0 / (1.0 - p)).to(x.dtype)  # 0 or 1/(1-p)
        ctx.save_for_backward(noise)
        return x * noise

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (noise,) = ctx.saved_tensors
        return grad * noise, None


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with a torch.rand mask; p must lie in (0, 1)."""
    if p >= 1.0:
        return x * 0.0
    return _Dropout.apply(x, p)


def _additive(mask: torch.Tensor | None, causal: bool, q: torch.Tensor, k: torch.Tensor):
    """SDPA's mask as an additive float mask (small: no head dimension), and its fully masked rows."""
    if causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is None:
        return None, None
    if mask.dtype == torch.bool:
        dead = ~mask.any(-1, keepdim=True)
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
    else:
        dead = torch.isneginf(mask).all(-1, keepdim=True)
    if not dead.any():
        return mask, None
    # a row that may see no key would softmax to NaN, and NaN times a zero gradient is NaN: give it
    # finite scores here and zero probabilities after the softmax (SDPA's result, and a zero gradient)
    return mask.masked_fill(dead, 0.0), dead


class _Attention(torch.autograd.Function):
    """softmax(q k^T * scale + mask) with dropout, times v. Keeps q, k, v, the probabilities and a
    one-byte keep mask for backward; the dropped probabilities are recomputed there rather than
    kept (autograd through the same ops would keep the float noise and the dropped copy too:
    two more score-sized tensors per layer)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, dead, scale: float, p: float):
        # the scales go onto the small (tokens x head size) tensors, not the (tokens x tokens) ones
        scores = torch.matmul(q * scale, k.transpose(-2, -1))
        if mask is not None:
            scores.add_(mask)
        probs = torch.softmax(scores, dim=-1)
        del scores
        if dead is not None:  # a query that may see no key attends to nothing, as in SDPA's math kernel
            probs.masked_fill_(dead, 0.0)
        keep = torch.rand(probs.shape, device=probs.device) >= p
        out = torch.matmul(torch.where(keep, probs, 0.0), v * (1.0 / (1.0 - p)))
        ctx.save_for_backward(q, k, v, probs, keep)
        ctx.scale, ctx.p = scale, p
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, probs, keep = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        dout = dout * (1.0 / (1.0 - ctx.p))
        dq = dk = dv = None
        if need_v:
            dv = torch.matmul(torch.where(keep, probs, 0.0).transpose(-2, -1), dout)
        if need_q or need_k:
            dprobs = torch.where(keep, torch.matmul(dout, v.transpose(-2, -1)), 0.0)
            dscores = torch._softmax_backward_data(dprobs, probs, -1, probs.dtype)
            del dprobs
            dq = torch.matmul(dscores, k).mul_(ctx.scale) if need_q else None
            dk = torch.matmul(dscores.transpose(-2, -1), q).mul_(ctx.scale) if need_k else None
        return dq, dk, dv, None, None, None, None


def _attention(a) -> torch.Tensor:
    """SDPA's math with the dropout mask drawn by torch.rand."""
    q, k, v, p = a["query"], a["key"], a["value"], a["dropout_p"]
    if q.dtype != torch.float32 or (a["is_causal"] and a["attn_mask"] is not None):
        # PyTorch's own math kernel, given the mask; like F.scaled_dot_product_attention, turn a
        # boolean attention mask into an additive one first (the kernel adds what it gets)
        mask = a["attn_mask"]
        if mask is not None and mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        keep = torch.rand((*q.shape[:-1], k.shape[-2]), device=q.device) >= p
        with warnings.catch_warnings():  # the kernel says a given mask is meant for tests; here it is the point
            warnings.simplefilter("ignore")
            return torch.ops.aten._scaled_dot_product_attention_math(
                q, k, v, mask, p, a["is_causal"], keep, scale=a["scale"], enable_gqa=a["enable_gqa"])[0]
    if a["enable_gqa"] and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)
    scale = a["scale"] if a["scale"] is not None else q.shape[-1] ** -0.5
    mask, dead = _additive(a["attn_mask"], a["is_causal"], q, k)
    return _Attention.apply(q, k, v, mask, dead, scale, p)


class FastDropout(TorchFunctionMode):
    """Reroutes CPU dropout (F.dropout and SDPA's) to masks sampled with torch.rand."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            a = _DROPOUT.bind(*args, **kwargs).arguments
            x, p = a["input"], a.get("p", 0.5)
            if a.get("training", True) and 0.0 < p and x.device.type == "cpu" and not a.get("inplace", False):
                return dropout(x, p)
        elif func is F.scaled_dot_product_attention:
            a = _SDPA.bind(*args, **kwargs)
            a.apply_defaults()
            a = a.arguments
            if a["dropout_p"] > 0.0 and a["query"].device.type == "cpu":
                return _attention(a)
        return func(*args, **kwargs)
