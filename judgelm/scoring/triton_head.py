"""Fused Triton verdict head: full-vocabulary log-softmax statistics without [P, V] logits.

Two kernels, two launches:

1. ``_partials_kernel``, grid ``(cdiv(P, BLOCK_P), n_splits)``. Program ``(i, s)`` owns
   ``BLOCK_P`` positions and a contiguous range of vocabulary tiles (split ``s``). For each
   ``BLOCK_V x BLOCK_P`` tile it computes the logits with ``tl.dot`` over ``H`` in ``BLOCK_K``
   steps (fp32 accumulation, software-pipelined loads), applies bias and temperature, and folds
   the tile into a streaming triple per position, in log2 units (``z2 = z * log2(e)``; exp2 is
   the native instruction)::

       m = max z2,   s = sum 2^(z2 - m),   t = sum 2^(z2 - m) * (z2 - m)

   ``t`` is kept *relative to the running max*, so ``entropy = ln2 * (log2 s - t / s)`` has no
   cancellation of two large numbers (``lse - E[z]`` would lose ~|z| * eps). The logits tile
   lives only in registers; the kernel writes ``3 * n_splits * P`` floats.

   Tile orientation (``V_AXIS``): for P <= 64 (the common case) the tile is ``[BLOCK_V,
   BLOCK_P]`` ("swap-AB": the weight rows are the MMA's M side, the few positions its N side,
   which suits Hopper's wgmma with M >= 64); for larger P it is ``[BLOCK_P, BLOCK_V]`` so that
   the vocabulary reductions run along the accumulator's N axis (intra-warp shuffles instead
   of a cross-warp shared-memory reduction). Both variants were compiled for sm_90 with
   triton 3.8 (``triton.compile`` with an sm_90 target + ``ptxas -v``) to check that the
   loads are pipelined (cp.async), the dot is a wgmma and nothing spills.

2. ``_finish_kernel``, grid ``(cdiv(P, BLOCK_P2),)``: merges the ``n_splits`` triples of each
   position, computes the candidate logits with a small gather-dot (the ``C`` rows of ``W``
   named by the ids, times ``h``, fp32 accumulation: ``P * C * H`` MACs, ~0.4% of the main
   GEMM at C=16, V=32k), and finishes log-probabilities, entropy, grammar mass (first
   occurrence of each id only) and the expected value.

   Why a second Triton kernel and not torch ops on ``[P, n_splits]``: the epilogue is ~20
   elementwise/reduction steps; in eager torch that is ~20 launches (~100 us of launch
   latency), more than the whole bandwidth-bound main kernel at P=1 (streaming a 32k x 4096
   bf16 W once takes ~80 us on an H100). One extra launch costs a few microseconds.
   Why the candidate logits are not picked out of the main kernel's tiles: doing so needs a
   per-candidate masked reduction over the tile; at BLOCK_P >= 64 that pushed the main kernel
   to 255 registers with spills (measured with ptxas), slowing every tile to serve the rare
   tiles that hold a candidate.

Splitting the vocabulary across programs is what gives parallelism when P is small: with
P=1 there is one position block, so ``n_splits`` ~ 2 x (number of SMs) programs each stream
~1/264th of W. For large P the position blocks fill the GPU and few splits are used. Reads of
W by concurrent programs of one split coincide in time (grid axis 0 is the position block), so
for large P most W traffic is served by L2.

Memory: besides the outputs the kernels allocate ``3 * n_splits * P`` fp32 (< 1 MB at
P=4096); never ``[P, V]``.

Interpreter (``TRITON_INTERPRET=1``, CPU tensors) is supported for testing. Its ``tl.dot`` is
wrong for bf16 operands (numpy has no bf16), so under the interpreter bf16 tiles are upcast to
fp32 before the dot. That is exact: bf16 -> fp32 is lossless and the dot accumulates in fp32
either way, so only the summation order differs from the GPU path.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from judgelm.scoring.head import (
    HeadOutput,
    _check_shapes,
    _check_values,
    _empty_output,
)

__all__ = ["MAX_CANDIDATES", "HeadKernelConfig", "pick_config", "verdict_head_triton"]

# The finish kernel holds [BLOCK_P2, C, BLOCK_K2] gathered weights and a [BLOCK_P2, C, C]
# duplicate test in registers, so C is bounded. The trie has C <= 16;
# verdict_head(backend="auto") falls back to the reference above this.
MAX_CANDIDATES = 64

_LOG2E = 1.4426950408889634  # 1 / ln 2: the kernels work in log2 units
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


def pick_config(
    n_pos: int, vocab: int, n_hid: int, dtype: torch.dtype, device: torch.device
) -> HeadKernelConfig:
    """A small heuristic for H100-class GPUs (no autotuning: a first call should not pay for
    tens of compilations; ``benchmarks/scoring_head.py --sweep`` times alternatives).

    * P <= 64: swap-AB tile ``[128, block_p]`` with block_p = 16/32/64, 4 warps, 4 stages.
      This regime is bandwidth-bound on streaming W once; a narrow N wastes little MMA work.
    * P > 64: ``[128 positions, 128 vocab]`` tile, 8 warps, 3 stages (turning compute-bound:
      P=4096 x 32k x 4096 is 1.1 TFLOP).
    * ``block_k`` = 64 for 16-bit inputs (128-byte rows per load), 32 for fp32.
    * ``n_splits`` makes ~2 programs per SM in total, and every split gets >= 1 tile.
    * Shared memory: stages * (block_v + block_p) * block_k * itemsize = 72-96 KB (< 228 KB).
      ptxas -v (sm_90a, triton 3.8, bf16): 80/124/190/128 registers for block_p =
      16/32/64/128, no spills; the loads are cp.async-pipelined and the dot is a wgmma.

    ``n_hid`` is accepted for future tuning (H only changes the K-loop length today).
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
    scale_ptr,  # [P] fp32 log2(e)/T per position (unused unless PER_POS_T)
    part_m_ptr,  # [NS, P] fp32 out: running max (log2 units)
    part_s_ptr,  # [NS, P] fp32 out: sum 2^(z2 - m)
    part_t_ptr,  # [NS, P] fp32 out: sum 2^(z2 - m) (z2 - m)
    P,
    V,
    H,
    stride_hp,
    stride_wv,
    scale,  # log2(e)/T when the temperature is a scalar
    tiles_per_split,
    HAS_BIAS: tl.constexpr,
    PER_POS_T: tl.constexpr,
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
    row_scale = (  # [BP]
        tl.load(scale_ptr + offs_p_ld) if PER_POS_T else tl.zeros([BLOCK_P], tl.float32) + scale
    )
    row_scale = tl.expand_dims(row_scale, V_AXIS)  # broadcasts along the vocabulary axis
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
        z = acc * row_scale  # logits / T in log2 units, registers only
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
    scale_ptr,  # [P] fp32 log2(e)/T (unused unless PER_POS_T)
    ids_ptr,  # [P, C] int, -1 pads, rows stride_ip
    vals_ptr,  # [P, C] fp32 values (unused unless HAS_VALUES), rows stride_vp
    lp_ptr,  # [P, C] fp32 out: candidate log-probabilities (nats)
    lse_ptr,  # [P] fp32 out
    ent_ptr,  # [P] fp32 out
    mass_ptr,  # [P] fp32 out
    exp_ptr,  # [P] fp32 out (unused unless HAS_VALUES)
    P,
    V,
    H,
    C,
    NS,
    stride_hp,
    stride_wv,
    stride_ip,
    stride_vp,
    scale,
    HAS_BIAS: tl.constexpr,
    PER_POS_T: tl.constexpr,
    HAS_VALUES: tl.constexpr,
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
    tl.store(lse_ptr + offs_p, lse2 * _LN2, mask=p_ok)
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
    row_scale = (  # [BP]
        tl.load(scale_ptr + offs_p_ld) if PER_POS_T else tl.zeros([BLOCK_P], tl.float32) + scale
    )
    lp2 = tl.where(valid, acc * row_scale[:, None] - lse2[:, None], float("-inf"))  # log2 p
    tl.store(lp_ptr + offs_p[:, None] * C + offs_c[None, :], lp2 * _LN2, mask=pc_ok)

    # 3. Grammar mass over the first occurrence of each id (slot i is a duplicate if a slot
    #    j < i holds the same id), and the expected value over finite-valued candidates.
    same = (ids[:, :, None] == ids[:, None, :]) & (offs_c[None, None, :] < offs_c[None, :, None])
    dup = tl.max(same.to(tl.int32), axis=2)  # [BP, BC]
    uniq = valid & (dup == 0)
    mass = tl.sum(tl.where(uniq, tl.exp2(lp2), 0.0), axis=1)
    tl.store(mass_ptr + offs_p, mass, mask=p_ok)

    if HAS_VALUES:
        vals = tl.load(
            vals_ptr + offs_p_ld[:, None] * stride_vp + offs_c[None, :],
            mask=pc_ok,
            other=float("nan"),
        )
        fin = uniq & (vals == vals) & (tl.abs(vals) < float("inf"))  # finite-valued candidates
        best = tl.max(tl.where(fin, lp2, float("-inf")), axis=1)  # [BP]
        best = tl.where(best > float("-inf"), best, 0.0)  # no scored candidate: den = 0 below
        wv = tl.where(fin, tl.exp2(lp2 - best[:, None]), 0.0)  # relative weights, max is 1
        num = tl.sum(wv * tl.where(fin, vals, 0.0), axis=1)
        den = tl.sum(wv, axis=1)
        tl.store(exp_ptr + offs_p, tl.where(den > 0, num / den, float("nan")), mask=p_ok)


# ----------------------------------------------------------------------------- launcher


def verdict_head_triton(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float | Tensor = 1.0,
    cand_values: Tensor | None = None,
    config: HeadKernelConfig | None = None,
    validate: bool = True,
) -> HeadOutput:
    """The fused kernel; same contract as :func:`judgelm.scoring.head.verdict_head_reference`.

    Needs CUDA tensors, or CPU tensors with ``TRITON_INTERPRET=1`` set before triton was
    imported. ``validate`` checks id ranges and temperatures (one host sync); it is skipped
    automatically while a CUDA graph is being captured. ``config`` overrides the heuristic
    (:func:`pick_config`).
    """
    _check_shapes(hidden, weight, cand_ids, bias, temperature, cand_values)
    dev = hidden.device
    if dev.type != "cuda" and not _interpreting():
        raise RuntimeError(
            "the Triton verdict head needs CUDA tensors (or TRITON_INTERPRET=1 for testing); "
            "use backend='torch' on CPU"
        )
    n_pos, n_hid = hidden.shape
    vocab = weight.shape[0]
    n_cand = cand_ids.shape[1]
    if n_cand > MAX_CANDIDATES:
        raise ValueError(
            f"the Triton head supports at most {MAX_CANDIDATES} candidates, got {n_cand}"
        )
    capturing = dev.type == "cuda" and torch.cuda.is_current_stream_capturing()
    if validate and not capturing:
        _check_values(cand_ids, vocab, temperature)
    if n_pos == 0:
        return _empty_output(hidden, n_cand, cand_values is not None)

    # Unit stride along H is all the kernels need (rows may be strided, e.g. a gathered view).
    if hidden.stride(1) != 1:
        hidden = hidden.contiguous()
    if weight.stride(1) != 1:
        weight = weight.contiguous()
    if cand_ids.stride(1) != 1:
        cand_ids = cand_ids.contiguous()

    cfg = config or pick_config(n_pos, vocab, n_hid, weight.dtype, dev)
    tiles = triton.cdiv(vocab, cfg.block_v)
    want = cfg.n_splits or _auto_splits(n_pos, tiles, cfg.block_p, dev)
    tiles_per_split = triton.cdiv(tiles, max(1, min(want, tiles)))
    n_splits = triton.cdiv(tiles, tiles_per_split)  # every split owns >= 1 tile

    per_pos_t = isinstance(temperature, Tensor)
    if per_pos_t:
        temp32 = temperature.to(device=dev, dtype=torch.float32)
        scale_t = (_LOG2E / temp32).expand(n_pos).contiguous()  # [P] log2(e) / T
        scale = 1.0
    else:
        scale_t = hidden  # placeholder pointer, never read
        scale = _LOG2E / float(temperature)

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
        scale_t,
        part_m,
        part_s,
        part_t,
        n_pos,
        vocab,
        n_hid,
        hidden.stride(0),
        weight.stride(0),
        scale,
        tiles_per_split,
        HAS_BIAS=bias is not None,
        PER_POS_T=per_pos_t,
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
    lse = torch.empty(n_pos, **f32)
    entropy = torch.empty(n_pos, **f32)
    mass = torch.empty(n_pos, **f32)
    expected: Tensor | None = None
    values = part_m  # placeholder pointer when no values are given
    if cand_values is not None:
        values = cand_values.to(torch.float32)
        if values.stride(1) != 1:
            values = values.contiguous()
        expected = torch.empty(n_pos, **f32)

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
        scale_t,
        cand_ids,
        values,
        cand_lp,
        lse,
        entropy,
        mass,
        expected if expected is not None else lse,
        n_pos,
        vocab,
        n_hid,
        n_cand,
        n_splits,
        hidden.stride(0),
        weight.stride(0),
        cand_ids.stride(0),
        values.stride(0),
        scale,
        HAS_BIAS=bias is not None,
        PER_POS_T=per_pos_t,
        HAS_VALUES=expected is not None,
        BLOCK_P=block_p2,
        BLOCK_S=block_s,
        BLOCK_C=block_c,
        BLOCK_K=block_k2,
        num_warps=4,
        num_stages=3,
    )
    return HeadOutput(cand_lp, lse, entropy, mass, expected)
