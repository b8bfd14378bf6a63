"""Varlen attention for packed training batches, registered with transformers'
``AttentionInterface`` as ``"judgelm_varlen"``.

The model receives the packed row plus ``cu_seq_lens_q/k`` and ``max_length_q/k`` (see
`judgelm.train.collate.PackedCollator`); transformers builds no mask for a custom attention
name and forwards those keyword arguments here. Backends, fastest first:

1. ``flash_attn.flash_attn_varlen_func`` (CUDA, fp16/bf16, when flash-attn is installed);
2. ``torch.nn.attention.varlen.varlen_attn`` (CUDA, fp16/bf16, torch >= 2.10), causal through
   ``window_size=(-1, 0)``;
3. causal SDPA per sample, cut at ``cu_seq_lens`` (any device, any dtype): equal to SDPA with
   a block-diagonal causal mask (`block_diagonal_causal_mask`, kept as the test reference)
   without its [T, T] memory; what CPU runs use.

The inference engine registers its own packed attention (``judgelm.engine.attention``,
``"judgelm_packed"``); on the same inputs both compute the same thing (checked in
tests/test_train_packing.py). This one stays separate because training needs what inference does
not: attention dropout in train mode, and autograd through whichever backend is picked (the
engine picks and caches its backend per device and dtype for inference).
"""

from __future__ import annotations

import importlib.util
import itertools
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "VARLEN_ATTENTION",
    "block_diagonal_causal_mask",
    "register_varlen_attention",
    "varlen_attention",
]

VARLEN_ATTENTION = "judgelm_varlen"


def block_diagonal_causal_mask(cu_seq_lens: torch.Tensor, total: int, device: torch.device) -> torch.Tensor:
    """Bool [total, total]: token i may attend to token j iff both are in one sample and j <= i."""
    bounds = cu_seq_lens.to(device=device, dtype=torch.long)
    positions = torch.arange(total, device=device)
    segment = torch.bucketize(positions, bounds[1:], right=True)  # sample index of every token
    same = segment[:, None] == segment[None, :]
    return same & (positions[None, :] <= positions[:, None])


def _torch_varlen() -> Any:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def _flash_varlen() -> Any:
    if importlib.util.find_spec("flash_attn") is None:
        return None
    from flash_attn import flash_attn_varlen_func

    return flash_attn_varlen_func


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over a packed row. ``query`` is [1, H, T, D], ``key``/``value`` [1, Hkv, T, D];
    returns [1, T, H, D] as transformers expects. Without ``cu_seq_lens`` the row is one causal
    sequence (unpadded batches only: no padding mask is applied)."""
    if query.shape[0] != 1 and cu_seq_lens_q is not None:
        raise ValueError("packed attention expects one row (batch size 1)")
    total = query.shape[2]
    if cu_seq_lens_q is None:
        cu_seq_lens_q = cu_seq_lens_k = torch.tensor([0, total], dtype=torch.int32, device=query.device)
        max_length_q = max_length_k = total
    cu_k = cu_seq_lens_q if cu_seq_lens_k is None else cu_seq_lens_k
    fast = query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and query.shape[0] == 1
    if fast:
        q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))  # [T, H, D]
        cu_q32, cu_k32 = (
            cu_seq_lens_q.to(query.device, torch.int32),
            cu_k.to(query.device, torch.int32),
        )
        max_q, max_k = int(max_length_q or total), int(max_length_k or total)
        flash = _flash_varlen()
        if flash is not None:
            out = flash(
                q,
                k,
                v,
                cu_q32,
                cu_k32,
                max_q,
                max_k,
                dropout_p=dropout if module.training else 0.0,
                softmax_scale=scaling,
                causal=True,
            )
            return out.unsqueeze(0), None
        varlen = _torch_varlen()
        if varlen is not None and dropout == 0.0:
            out = varlen(
                q,
                k,
                v,
                cu_q32,
                cu_k32,
                max_q,
                max_k,
                scale=scaling,
                window_size=(-1, 0),
                enable_gqa=k.shape[1] != q.shape[1],
            )
            return out.unsqueeze(0), None
    # One causal SDPA call per sample: the same result as a block-diagonal mask over the row,
    # without materialising a [T, T] mask (quadratic in the packed length).
    bounds = cu_seq_lens_q.tolist()
    p = dropout if module.training else 0.0
    gqa = key.shape[1] != query.shape[1]
    pieces = [
        F.scaled_dot_product_attention(
            query[:, :, a:b],
            key[:, :, a:b],
            value[:, :, a:b],
            dropout_p=p,
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]
    out = torch.cat(pieces, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register_varlen_attention() -> str:
    """Register `varlen_attention` (idempotent) and return its name for ``attn_implementation``."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention)
    return VARLEN_ATTENTION
