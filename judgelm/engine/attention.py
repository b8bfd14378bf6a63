"""Attention on packed tokens, for inference and training: the backend is chosen once per
(device, dtype) and logged with why.

- ``varlen(q, k, v, cu_q, cu_k, max_q, max_k)``: segment ``i`` of the queries attends causally to
  segment ``i`` of the keys, aligned at the end (FlashAttention's "bottom-right" convention), so a
  segment may have fewer queries than keys (a suffix after a cached prefix, a decoding step) or
  none (a *gap* over unused cache rows). Prefill, shared-prefix suffixes, decoding and packed
  training batches are all this one call.
- ``masked(q, k, v, allowed)``: attention under an explicit boolean mask over cache rows (the
  verdict tree step; decoding on CPU). Always SDPA.

Varlen backends, fastest first: ``flash_attn`` (``flash_attn_varlen_func``, when it imports),
``torch_varlen`` (``torch.nn.attention.varlen.varlen_attn``, torch >= 2.10; both CUDA fp16/bf16),
``sdpa`` (one SDPA call per segment: any device and dtype, exact). ``JUDGELM_ATTENTION`` forces
one. `register_transformers_attention` exposes ``varlen`` to transformers as
``attn_implementation="judgelm_packed"`` (packed training; any HF Llama-style model runs a packed
forward unchanged); attention dropout is an argument there (training mode only).
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BACKENDS",
    "HF_ATTENTION_NAME",
    "AttentionBackend",
    "available_backends",
    "choose_backend",
    "packed_attention",
    "register_transformers_attention",
    "segment_bounds",
]

log = logging.getLogger(__name__)

BACKENDS = ("flash_attn", "torch_varlen", "sdpa")
HF_ATTENTION_NAME = "judgelm_packed"
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def segment_bounds(rows: Sequence[tuple[int, int, int]], row_stride: int) -> tuple[list[int], list[int], int, int]:
    """``cu_q``, ``cu_k``, ``max_q``, ``max_k`` for queries packed row after row that attend to
    rows of a slot cache flattened to ``[slots * row_stride, ...]``.

    ``rows`` are ``(slot, n_queries, n_keys)`` in increasing slot order: the row's queries attend
    to cache positions ``[0, n_keys)`` of its slot (its own new tokens are the last ``n_queries``
    of those). Unused cache stretches between rows become segments without queries."""
    cu_q, cu_k = [0], [0]
    max_q = max_k = 1
    for slot, n_q, n_k in rows:
        start = slot * row_stride
        if start < cu_k[-1]:
            raise ValueError("rows must be in increasing slot order")
        if start > cu_k[-1]:  # a gap: cache rows nobody reads
            max_k = max(max_k, start - cu_k[-1])
            cu_q.append(cu_q[-1])
            cu_k.append(start)
        if not 0 < n_k <= row_stride or n_q > n_k:
            raise ValueError(f"a row attends to {n_k} keys with {n_q} queries (row stride {row_stride})")
        cu_q.append(cu_q[-1] + n_q)
        cu_k.append(start + n_k)
        max_q, max_k = max(max_q, n_q), max(max_k, n_k)
    return cu_q, cu_k, max_q, max_k


@dataclass(frozen=True)
class AttentionBackend:
    """One attention backend. ``fast_varlen``: a fused varlen kernel (not the per-segment loop),
    which decoding uses through gap segments instead of a mask over whole cache rows.
    ``dropout``: the kernel applies attention dropout itself (else a call with dropout runs the
    per-segment SDPA loop, which does)."""

    name: str
    reason: str
    fast_varlen: bool
    _kernel: Callable[..., Tensor] | None = field(default=None, repr=False, compare=False)
    dropout: bool = False

    def varlen(
        self,
        q: Tensor,  # [Nq, Hq, D]
        k: Tensor,  # [Nk, Hkv, D]
        v: Tensor,  # [Nk, Hkv, D]
        cu_q: Tensor,  # [S+1] int32, on q's device
        cu_k: Tensor,  # [S+1] int32
        max_q: int,
        max_k: int,
        *,
        scale: float,
        dropout: float = 0.0,
        cu_host: tuple[Sequence[int], Sequence[int]] | None = None,
    ) -> Tensor:  # [Nq, Hq, D]
        """Causal, bottom-right aligned attention per segment (see the module docstring), with
        attention ``dropout`` (training). ``cu_host``: the same bounds as Python lists, saving
        the sdpa loop a device sync."""
        if self._kernel is not None and (dropout == 0.0 or self.dropout):
            return self._kernel(q, k, v, cu_q, cu_k, max_q, max_k, scale, dropout)
        bq, bk = cu_host if cu_host is not None else (cu_q.tolist(), cu_k.tolist())
        return _sdpa_segments(q, k, v, bq, bk, scale, dropout)

    def masked(
        self,
        q: Tensor,  # [B, T, Hq, D]
        k: Tensor,  # [B, S, Hkv, D] (a view of cache rows; strided is fine)
        v: Tensor,  # [B, S, Hkv, D]
        allowed: Tensor,  # [B, T, S] bool; every query must allow at least one key
        *,
        scale: float,
    ) -> Tensor:  # [B, T, Hq, D]
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T|S, D]
        if kh.shape[1] != qh.shape[1]:  # GQA: repeat the kv heads so SDPA's fused kernels apply
            rep = qh.shape[1] // kh.shape[1]
            kh, vh = (t.repeat_interleave(rep, dim=1) for t in (kh, vh))
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed[:, None], scale=scale)
        return out.transpose(1, 2)


def _sdpa_segments(
    q: Tensor, k: Tensor, v: Tensor, bq: Sequence[int], bk: Sequence[int], scale: float, dropout: float = 0.0
) -> Tensor:
    """The reference varlen: one causal SDPA per segment (autograd flows through the slice
    writes). SDPA's ``is_causal`` aligns top-left, so a segment with fewer queries than keys
    gets an explicit bottom-right mask."""
    out = torch.empty_like(q)
    rep = q.shape[1] // k.shape[1]
    for (q0, q1), (k0, k1) in zip(itertools.pairwise(bq), itertools.pairwise(bk), strict=True):
        n_q, n_k = q1 - q0, k1 - k0
        if n_q == 0:
            continue
        qs = q[q0:q1].transpose(0, 1)[None]  # [1, Hq, n_q, D]
        ks, vs = (t[k0:k1].transpose(0, 1)[None] for t in (k, v))  # [1, Hkv, n_k, D]
        if rep > 1:
            ks, vs = (t.repeat_interleave(rep, dim=1) for t in (ks, vs))
        if n_q == n_k:
            o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale, dropout_p=dropout)
        else:
            mask = torch.ones((n_q, n_k), dtype=torch.bool, device=q.device).tril(diagonal=n_k - n_q)
            o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale, dropout_p=dropout)
        out[q0:q1] = o[0].transpose(0, 1)
    return out


# ---- fused kernels --------------------------------------------------------------------------
def _flash_attn_kernel() -> Callable[..., Tensor] | None:
    if importlib.util.find_spec("flash_attn") is None:
        return None
    try:
        from flash_attn import flash_attn_varlen_func
    except Exception as e:  # a wheel built for another torch fails at import
        log.info("flash_attn is installed but does not import: %s", e)
        return None

    def kernel(
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cu_q: Tensor,
        cu_k: Tensor,
        max_q: int,
        max_k: int,
        scale: float,
        dropout: float,
    ):
        return flash_attn_varlen_func(
            q, k, v, cu_q, cu_k, max_q, max_k, dropout_p=dropout, softmax_scale=scale, causal=True
        )

    return kernel


def _torch_varlen_kernel(gqa: bool) -> tuple[Callable[..., Tensor] | None, str]:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None, f"torch {torch.__version__} has no torch.nn.attention.varlen"
    params = inspect.signature(varlen_attn).parameters
    if "window_size" in params:
        causal: dict[str, Any] = {"window_size": (-1, 0)}
    elif "is_causal" in params:
        causal = {"is_causal": True}
    else:
        return None, "varlen_attn takes neither window_size nor is_causal"
    if gqa and "enable_gqa" not in params:
        return None, "this torch's varlen_attn has no enable_gqa and the model uses grouped KV heads"
    extra = {"enable_gqa": True} if gqa else {}
    takes_scale = "scale" in params

    def kernel(
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cu_q: Tensor,
        cu_k: Tensor,
        max_q: int,
        max_k: int,
        scale: float,
        dropout: float,
    ):
        assert dropout == 0.0, "varlen_attn has no dropout (AttentionBackend.dropout is False)"
        if takes_scale:
            return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, scale=scale, **causal, **extra)
        default = q.shape[-1] ** -0.5  # an older signature: fold a non-default scale into q
        q = q if abs(scale - default) < 1e-12 else q * (scale / default)
        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **causal, **extra)

    return kernel, ""


def available_backends(device: torch.device, dtype: torch.dtype, *, gqa: bool = False) -> list[str]:
    """The backends that can run on ``device`` / ``dtype``, fastest first (``sdpa`` always)."""
    names = []
    if device.type == "cuda" and dtype in _LOW_PRECISION:
        if _flash_attn_kernel() is not None:
            names.append("flash_attn")
        if _torch_varlen_kernel(gqa)[0] is not None:
            names.append("torch_varlen")
    return [*names, "sdpa"]


def choose_backend(
    device: torch.device | str, dtype: torch.dtype, *, gqa: bool = False, force: str | None = None
) -> AttentionBackend:
    """The backend for ``device``/``dtype``: ``force``, else ``$JUDGELM_ATTENTION``, else the
    fastest available. Logged once per choice with the reason."""
    wanted = force or os.environ.get("JUDGELM_ATTENTION") or None
    if wanted is not None and wanted not in BACKENDS:
        raise ValueError(f"unknown attention backend {wanted!r}; choose from {BACKENDS}")
    return _choose(torch.device(device), dtype, gqa, wanted)


@lru_cache(maxsize=32)
def _choose(device: torch.device, dtype: torch.dtype, gqa: bool, wanted: str | None) -> AttentionBackend:
    backend = _pick(device, dtype, gqa, wanted)
    log.info("judgelm attention backend on %s/%s: %s (%s)", device, dtype, backend.name, backend.reason)
    return backend


def _pick(device: torch.device, dtype: torch.dtype, gqa: bool, wanted: str | None) -> AttentionBackend:
    cuda_low = device.type == "cuda" and dtype in _LOW_PRECISION
    why_not = "the fused varlen kernels need CUDA and fp16/bf16" if not cuda_low else ""
    if wanted in (None, "flash_attn") and cuda_low:
        kernel = _flash_attn_kernel()
        if kernel is not None:
            return AttentionBackend("flash_attn", "flash_attn is installed: flash_attn_varlen_func", True, kernel, True)
        why_not = "flash_attn is not installed"
        if wanted == "flash_attn":
            raise RuntimeError(f"attention backend flash_attn requested but {why_not}")
    if wanted in (None, "torch_varlen") and cuda_low:
        kernel, reason = _torch_varlen_kernel(gqa)
        if kernel is not None:
            why = f"{why_not}; torch {torch.__version__} has varlen_attn (FlashAttention-2, causal window)"
            return AttentionBackend("torch_varlen", why.lstrip("; "), True, kernel)
        why_not = f"{why_not}; {reason}".lstrip("; ")
        if wanted == "torch_varlen":
            raise RuntimeError(f"attention backend torch_varlen requested but {reason}")
    if wanted in ("flash_attn", "torch_varlen"):
        raise RuntimeError(f"attention backend {wanted} requested but {why_not}")
    reason = "requested" if wanted == "sdpa" else why_not
    return AttentionBackend("sdpa", f"{reason}: causal SDPA per packed segment", False)


# ---- transformers integration -------------------------------------------------------------
def packed_attention(
    module: torch.nn.Module,
    query: Tensor,  # [1, Hq, N, D]
    key: Tensor,  # [1, Hkv, N, D]
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: Tensor | None = None,
    cu_seq_lens_k: Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """transformers' attention-function contract over one packed row: returns [1, N, Hq, D].
    ``cu_seq_lens_q/k`` and ``max_length_q/k`` (what `judgelm.train.collate.PackedCollator`
    sends; transformers forwards them) cut the row into samples; without them the row is one
    causal sequence (no padding mask is applied: pack, don't pad). ``dropout`` applies in
    training mode only."""
    if query.shape[0] != 1:
        raise ValueError(f"{HF_ATTENTION_NAME} attention expects one packed row (batch size 1)")
    n = query.shape[2]
    if cu_seq_lens_q is None:
        cu_seq_lens_q = torch.tensor([0, n], dtype=torch.int32, device=query.device)
        max_length_q = n
    cu_k = cu_seq_lens_q if cu_seq_lens_k is None else cu_seq_lens_k
    backend = choose_backend(query.device, query.dtype, gqa=key.shape[1] != query.shape[1])
    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))  # [N, H, D]
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    max_q = int(max_length_q or n)
    cu_q32, cu_k32 = cu_seq_lens_q.to(query.device, torch.int32), cu_k.to(query.device, torch.int32)
    p = dropout if module.training else 0.0
    out = backend.varlen(q, k, v, cu_q32, cu_k32, max_q, int(max_length_k or max_q), scale=scale, dropout=p)
    return out[None], None


def register_transformers_attention() -> str:
    """Register `packed_attention` with transformers (idempotent); returns its name for
    ``model.set_attn_implementation(name)`` / ``attn_implementation=``."""
    from transformers import AttentionInterface

    AttentionInterface.register(HF_ATTENTION_NAME, packed_attention)
    return HF_ATTENTION_NAME
