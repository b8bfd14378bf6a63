"""Fused Triton verdict head: full-vocabulary log-softmax statistics without [P, V] logits.

Two launches. ``_partials_kernel`` (grid: position blocks x vocabulary splits) computes logit
tiles with ``tl.dot`` (fp32 accumulation) and folds each into a streaming triple per position in
log2 units, ``m = max z2``, ``s = sum 2^(z2 - m)``, ``t = sum 2^(z2 - m) (z2 - m)`` (``t`` relative
to the running max, so the entropy has no cancellation); the tile lives only in registers.
``_finish_kernel`` merges the splits' triples, computes the few candidate logits by a gather-dot,
and finishes log-probabilities, entropy and grammar mass in one small launch (an eager-torch
epilogue would be ~20 launches, more than the main kernel at P=1).

Splitting the vocabulary gives parallelism when P is small (P=1: ~2 programs per SM, each
streaming a slice of W); for large P the position blocks fill the GPU. Besides the outputs the
kernels allocate ``3 * n_splits * P`` fp32, never ``[P, V]``. Tile orientation, register use and
the reasons for these choices: docs/scoring.md ("The verdict head").

Interpreter (``TRITON_INTERPRET=1``, CPU tensors) is supported for testing; its ``tl.dot`` is
wrong for bf16 operands, so there bf16 tiles are upcast to fp32 first (exact: only the summation
order differs from the GPU path).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from judgelm.scoring.head_contract import HeadOutput, check_inputs, check_values, empty_output

__all__ = ["MAX_CANDIDATES", "HeadKernelConfig", "pick_config", "verdict_head_triton"]

# The finish kernel holds [BLOCK_P2, C, BLOCK_K2] gathered weights and a [BLOCK_P2, C, C]
# duplicate test in registers, so C is bounded. The trie has C <= 16;
# verdict_head(backend="auto") falls back to the reference above this.
MAX_CANDIDATES = 64

_LOG2E = tl.constexpr(1.4426950408889634)  # 1 / ln 2: the kernels work in log2 units
_LN2 = tl.constexpr(0.6931471805599453)  # back to nats in the finish kernel


@dataclass(frozen=True)
class HeadKernelConfig:
    """Launch parameters of the main kernel (``n_splits=None``: chosen from the SM count)."""

    block_p: int = 16  # positions per program; >= 16 (tl.dot)
    block_v: int = 128  # vocabulary rows per tile
    block_k: int = 64  # hidden-size step of the dot
    n_splits: int | None = None  # vocabulary splits (programs along grid axis 1)
    num_warps: int = 4
    num_stages: int = 4
    v_axis: int = 0  # 0: tile [block_v, block_p] (swap-AB, small P); 1: [block_p, block_v]


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return 4  # the interpreter runs programs one by one: few programs keep tests quick
    return _sm_count(device.index if device.index is not None else torch.cuda.current_device())


def pick_config(n_pos: int, vocab: int, dtype: torch.dtype, device: torch.device) -> HeadKernelConfig:
    """A small heuristic for H100-class GPUs (no autotuning: a first call should not pay for
    tens of compilations; ``benchmarks/scoring_head.py --sweep`` times alternatives).

    * P <= 64: swap-AB tile ``[128, block_p]`` (block_p = 16/32/64), 4 warps, 4 stages: this
      regime is bandwidth-bound on streaming W once; a narrow N wastes little MMA work.
    * P > 64: ``[128 positions, 128 vocab]`` tile, 8 warps, 3 stages (turning compute-bound).
    * ``block_k`` = 64 for 16-bit inputs (128-byte rows per load), 32 for fp32.
    * ``n_splits`` makes ~2 programs per SM in total, and every split gets >= 1 tile.
    """
    if n_pos <= 64:
        block_p = 16 if n_pos <= 16 else (32 if n_pos <= 32 else 64)
        v_axis, warps, stages = 0, 4, 4
    else:
        block_p, v_axis, warps, stages = 128, 1, 8, 3
    block_k = 32 if dtype == torch.float32 else 64
    n_splits = _auto_splits(n_pos, triton.cdiv(vocab, 128), block_p, device)
    return HeadKernelConfig(block_p, 128, block_k, n_splits, warps, stages, v_axis)


def _auto_splits(n_pos: int, n_tiles: int, block_p: int, device: torch.device) -> int:
    """Vocabulary splits for ~2 programs per SM in total, at most one split per tile."""
    p_blocks = triton.cdiv(n_pos, block_p)
    return max(1, min(n_tiles, triton.cdiv(2 * _num_sms(device), p_blocks)))


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _partials_kernel(
    h_ptr,  # [P, H] hidden, rows stride_hp, unit stride along H
    w_ptr,  # [V, H] LM head weight, rows stride_wv, unit stride along H
    b_ptr,  # [V] bias (unused unless HAS_BIAS)
    part_m_ptr,  # [NS, P] fp32 out: running max (log2 units)
    part_s_ptr,  # [NS, P] fp32 out: sum 2^(z2 - m)
    part_t_ptr,  # [NS, P] fp32 out: sum 2^(z2 - m) (z2 - m)
    P,
    V,
    H,
    stride_hp,
    stride_wv,
    tiles_per_split,
    HAS_BIAS: tl.constexpr,
    EVEN_K: tl.constexpr,  # H % BLOCK_K == 0: no masks along H
    EVEN_V: tl.constexpr,  # V % BLOCK_V == 0: no ragged last tile (true for 32,000 and 49,152)
    DOT_F32: tl.constexpr,  # upcast to fp32 before tl.dot (fp32/mixed dtypes, interpreted bf16)
    DOT_PRECISION: tl.constexpr,  # "ieee" for fp32 dots: the reference is fp32, not TF32
    V_AXIS: tl.constexpr,  # 0: tile [BLOCK_V, BLOCK_P]; 1: tile [BLOCK_P, BLOCK_V]
    BLOCK_P: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_s = tl.program_id(1)

    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)  # [BP]
    p_ok = offs_p < P
    # Rows past P read row 0 instead of masking every H load; their results are dropped.
    offs_p_ld = tl.where(p_ok, offs_p, 0).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)  # [BK]
    if V_AXIS == 0:
        h_ptrs = h_ptr + offs_p_ld[None, :] * stride_hp + offs_k[:, None]  # [BK, BP] = h^T
    else:
        h_ptrs = h_ptr + offs_p_ld[:, None] * stride_hp + offs_k[None, :]  # [BP, BK]

    m = tl.full([BLOCK_P], float("-inf"), dtype=tl.float32)
    s = tl.zeros([BLOCK_P], dtype=tl.float32)
    t = tl.zeros([BLOCK_P], dtype=tl.float32)

    tile_lo = pid_s * tiles_per_split
    tile_hi = tl.minimum(tile_lo + tiles_per_split, tl.cdiv(V, BLOCK_V))
    for tile in range(tile_lo, tile_hi):
        offs_v = tile * BLOCK_V + tl.arange(0, BLOCK_V)  # [BV]
        # A ragged last tile reads row 0 for its padding columns (masked to -inf below).
        offs_v_ld = (offs_v if EVEN_V else tl.where(offs_v < V, offs_v, 0)).to(tl.int64)
        if V_AXIS == 0:
            w_ptrs = w_ptr + offs_v_ld[:, None] * stride_wv + offs_k[None, :]  # [BV, BK]
            acc = tl.zeros([BLOCK_V, BLOCK_P], dtype=tl.float32)
        else:
            w_ptrs = w_ptr + offs_v_ld[None, :] * stride_wv + offs_k[:, None]  # [BK, BV] = W^T
            acc = tl.zeros([BLOCK_P, BLOCK_V], dtype=tl.float32)

        for k0 in range(0, H, BLOCK_K):
            if EVEN_K:
                w = tl.load(w_ptrs + k0)
                hh = tl.load(h_ptrs + k0)
            else:
                k_ok = (offs_k + k0) < H
                w = tl.load(w_ptrs + k0, mask=tl.expand_dims(k_ok, V_AXIS), other=0.0)
                hh = tl.load(h_ptrs + k0, mask=tl.expand_dims(k_ok, 1 - V_AXIS), other=0.0)
            if DOT_F32:  # exact upcast; then an IEEE fp32 dot (no tensor-core TF32 rounding)
                w = w.to(tl.float32)
                hh = hh.to(tl.float32)
                if V_AXIS == 0:
                    acc = tl.dot(w, hh, acc, input_precision=DOT_PRECISION)
                else:
                    acc = tl.dot(hh, w, acc, input_precision=DOT_PRECISION)
            elif V_AXIS == 0:  # 16-bit operands straight into the tensor cores
                acc = tl.dot(w, hh, acc)
            else:
                acc = tl.dot(hh, w, acc)

        if HAS_BIAS:
            acc += tl.expand_dims(tl.load(b_ptr + offs_v_ld).to(tl.float32), 1 - V_AXIS)
        z = acc * _LOG2E  # logits in log2 units, registers only
        if not EVEN_V:
            z = tl.where(tl.expand_dims(offs_v < V, 1 - V_AXIS), z, float("-inf"))

        # Online update. m starts at -inf: alpha = 0 and the (m - m_new) * s term is guarded,
        # so no -inf * 0. Every tile holds >= 1 real column, so m_new is finite.
        m_new = tl.maximum(m, tl.max(z, axis=V_AXIS))  # [BP]
        d = z - tl.expand_dims(m_new, V_AXIS)  # <= 0 (-inf on vocabulary padding)
        e = tl.exp2(d)  # 0 on padding
        if not EVEN_V:
            d = tl.where(tl.expand_dims(offs_v < V, 1 - V_AXIS), d, 0.0)  # 0 * -inf -> 0
        alpha = tl.exp2(m - m_new)
        shift = tl.where(s > 0, m - m_new, 0.0) * s
        t = alpha * (t + shift) + tl.sum(e * d, axis=V_AXIS)
        s = alpha * s + tl.sum(e, axis=V_AXIS)
        m = m_new

    out = pid_s * P + offs_p
    tl.store(part_m_ptr + out, m, mask=p_ok)
    tl.store(part_s_ptr + out, s, mask=p_ok)
    tl.store(part_t_ptr + out, t, mask=p_ok)


@triton.jit
def _finish_kernel(
    part_m_ptr,  # [NS, P] fp32
    part_s_ptr,  # [NS, P] fp32
    part_t_ptr,  # [NS, P] fp32
    h_ptr,  # [P, H]
    w_ptr,  # [V, H]
    b_ptr,  # [V] (unused unless HAS_BIAS)
    ids_ptr,  # [P, C] int, -1 pads, rows stride_ip
    lp_ptr,  # [P, C] fp32 out: candidate log-probabilities (nats)
    ent_ptr,  # [P] fp32 out
    mass_ptr,  # [P] fp32 out
    P,
    V,
    H,
    C,
    NS,
    stride_hp,
    stride_wv,
    stride_ip,
    HAS_BIAS: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_p = pid * BLOCK_P + tl.arange(0, BLOCK_P)  # [BP]
    p_ok = offs_p < P
    offs_p_ld = tl.where(p_ok, offs_p, 0).to(tl.int64)

    # 1. Merge the split triples: rescale each to the global max (guarded: empty slots have
    #    m = -inf, s = 0, and must contribute 0 rather than -inf * 0).
    offs_s = tl.arange(0, BLOCK_S)  # [BS]
    part = offs_s[None, :] * P + offs_p[:, None]  # [BP, BS]
    msk = p_ok[:, None] & (offs_s[None, :] < NS)
    pm = tl.load(part_m_ptr + part, mask=msk, other=float("-inf"))
    ps = tl.load(part_s_ptr + part, mask=msk, other=0.0)
    pt = tl.load(part_t_ptr + part, mask=msk, other=0.0)
    mx = tl.max(pm, axis=1)  # [BP]
    mx = tl.where(mx > float("-inf"), mx, 0.0)  # rows past P: keep them NaN-free
    w_s = tl.exp2(pm - mx[:, None])  # [BP, BS]
    shift = tl.where(ps > 0, pm - mx[:, None], 0.0) * ps
    s_tot = tl.sum(ps * w_s, axis=1)
    t_tot = tl.sum(w_s * (pt + shift), axis=1)
    log2_s = tl.log2(s_tot)
    lse2 = mx + log2_s  # [BP] log-sum-exp in log2 units
    ent = (log2_s - t_tot / tl.where(s_tot > 0, s_tot, 1.0)) * _LN2
    tl.store(ent_ptr + offs_p, ent, mask=p_ok)

    # 2. Candidate logits: gather-dot of the C weight rows with h, fp32 accumulation.
    offs_c = tl.arange(0, BLOCK_C)  # [BC]
    pc_ok = p_ok[:, None] & (offs_c[None, :] < C)
    ids = tl.load(ids_ptr + offs_p_ld[:, None] * stride_ip + offs_c[None, :], mask=pc_ok, other=-1)
    valid = (ids >= 0) & (ids < V)  # [BP, BC]
    ids_ld = tl.where(valid, ids, 0).to(tl.int64)
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    offs_k = tl.arange(0, BLOCK_K)
    for k0 in tl.range(0, H, BLOCK_K, num_stages=3):  # ask for pipelined (cp.async) loads
        k_ok = (offs_k + k0) < H
        wc = tl.load(
            w_ptr + ids_ld[:, :, None] * stride_wv + (offs_k + k0)[None, None, :],
            mask=valid[:, :, None] & k_ok[None, None, :],
            other=0.0,
        ).to(tl.float32)  # [BP, BC, BK]; padding rows are not read
        hk = tl.load(
            h_ptr + offs_p_ld[:, None] * stride_hp + (offs_k + k0)[None, :],
            mask=k_ok[None, :],
            other=0.0,
        ).to(tl.float32)  # [BP, BK]
        acc += tl.sum(wc * hk[:, None, :], axis=2)  # exact 16-bit products, fp32 sums
    if HAS_BIAS:
        acc += tl.load(b_ptr + ids_ld, mask=valid, other=0.0).to(tl.float32)
    lp2 = tl.where(valid, acc * _LOG2E - lse2[:, None], float("-inf"))  # log2 p
    tl.store(lp_ptr + offs_p[:, None] * C + offs_c[None, :], lp2 * _LN2, mask=pc_ok)

    # 3. Grammar mass over the first occurrence of each id (slot i is a duplicate if a slot
    #    j < i holds the same id).
    same = (ids[:, :, None] == ids[:, None, :]) & (offs_c[None, None, :] < offs_c[None, :, None])
    dup = tl.max(same.to(tl.int32), axis=2)  # [BP, BC]
    uniq = valid & (dup == 0)
    mass = tl.sum(tl.where(uniq, tl.exp2(lp2), 0.0), axis=1)
    tl.store(mass_ptr + offs_p, mass, mask=p_ok)


# ----------------------------------------------------------------------------- launcher


def verdict_head_triton(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None = None,
    config: HeadKernelConfig | None = None,
    validate: bool = True,
) -> HeadOutput:
    """The fused kernel; same contract as :func:`judgelm.scoring.head.verdict_head_reference`.

    Needs CUDA tensors, or CPU tensors with ``TRITON_INTERPRET=1`` set before triton was
    imported. ``validate`` checks the id range (one host sync); it is skipped automatically
    while a CUDA graph is being captured. ``config`` overrides the heuristic (:func:`pick_config`).
    """
    check_inputs(hidden, weight, cand_ids, bias)
    dev = hidden.device
    if dev.type != "cuda" and not _interpreting():
        raise RuntimeError(
            "the Triton verdict head needs CUDA tensors (or TRITON_INTERPRET=1 for testing); use backend='torch' on CPU"
        )
    n_pos, n_hid = hidden.shape
    vocab = weight.shape[0]
    n_cand = cand_ids.shape[1]
    if n_cand > MAX_CANDIDATES:
        raise ValueError(f"the Triton head supports at most {MAX_CANDIDATES} candidates, got {n_cand}")
    capturing = dev.type == "cuda" and torch.cuda.is_current_stream_capturing()
    if validate and not capturing:
        check_values(cand_ids, vocab)
    if n_pos == 0:
        return empty_output(hidden, n_cand)

    # Unit stride along H is all the kernels need (rows may be strided, e.g. a gathered view).
    if hidden.stride(1) != 1:
        hidden = hidden.contiguous()
    if weight.stride(1) != 1:
        weight = weight.contiguous()
    if cand_ids.stride(1) != 1:
        cand_ids = cand_ids.contiguous()

    cfg = config or pick_config(n_pos, vocab, weight.dtype, dev)
    tiles = triton.cdiv(vocab, cfg.block_v)
    want = cfg.n_splits or _auto_splits(n_pos, tiles, cfg.block_p, dev)
    tiles_per_split = triton.cdiv(tiles, max(1, min(want, tiles)))
    n_splits = triton.cdiv(tiles, tiles_per_split)  # every split owns >= 1 tile

    same_16bit = hidden.dtype == weight.dtype and weight.dtype in (torch.float16, torch.bfloat16)
    dot_f32 = not same_16bit or (weight.dtype == torch.bfloat16 and _interpreting())

    f32 = {"dtype": torch.float32, "device": dev}
    part_m = torch.empty(n_splits, n_pos, **f32)
    part_s = torch.empty(n_splits, n_pos, **f32)
    part_t = torch.empty(n_splits, n_pos, **f32)
    bias_arg = bias if bias is not None else weight  # placeholder pointer when absent

    _partials_kernel[(triton.cdiv(n_pos, cfg.block_p), n_splits)](
        hidden,
        weight,
        bias_arg,
        part_m,
        part_s,
        part_t,
        n_pos,
        vocab,
        n_hid,
        hidden.stride(0),
        weight.stride(0),
        tiles_per_split,
        HAS_BIAS=bias is not None,
        EVEN_K=n_hid % cfg.block_k == 0,
        EVEN_V=vocab % cfg.block_v == 0,
        DOT_F32=dot_f32,
        DOT_PRECISION="ieee",
        V_AXIS=cfg.v_axis,
        BLOCK_P=cfg.block_p,
        BLOCK_V=cfg.block_v,
        BLOCK_K=cfg.block_k,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )

    cand_lp = torch.empty(n_pos, n_cand, **f32)
    entropy = torch.empty(n_pos, **f32)
    mass = torch.empty(n_pos, **f32)
    block_s = triton.next_power_of_2(n_splits)
    block_c = max(2, triton.next_power_of_2(n_cand))  # no size-1 tensor dims
    # ~8K fp32 register elements per program for each of the [BP2, BC, BK2] gather tile, the
    # [BP2, BS] partials and the [BP2, BC, BC] duplicate test; one position per program while
    # that still leaves the GPU short of programs (small P: latency, not throughput, matters).
    block_p2 = min(8, 8192 // max(block_s, block_c * block_c, 16 * block_c))
    block_p2 = max(1, min(block_p2, triton.next_power_of_2(triton.cdiv(n_pos, _num_sms(dev)))))
    block_k2 = max(16, min(triton.next_power_of_2(n_hid), 8192 // (block_p2 * block_c)))
    _finish_kernel[(triton.cdiv(n_pos, block_p2),)](
        part_m,
        part_s,
        part_t,
        hidden,
        weight,
        bias_arg,
        cand_ids,
        cand_lp,
        entropy,
        mass,
        n_pos,
        vocab,
        n_hid,
        n_cand,
        n_splits,
        hidden.stride(0),
        weight.stride(0),
        cand_ids.stride(0),
        HAS_BIAS=bias is not None,
        BLOCK_P=block_p2,
        BLOCK_S=block_s,
        BLOCK_C=block_c,
        BLOCK_K=block_k2,
        num_warps=4,
        num_stages=3,
    )
    return HeadOutput(cand_lp, entropy, mass)
