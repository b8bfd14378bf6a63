"""The verdict head: log-probabilities of the allowed next tokens over the full vocabulary.

A judge reads its verdict from logits instead of parsing generated text. At each of ``P``
"verdict positions" (nodes of a token trie of allowed score strings) we need, for a handful of
candidate token ids (the trie children: digits, the separator, the newline; ``C <= 16``, padded
with ``-1``), their log-probability under the *full-vocabulary* softmax at temperature ``T``,
plus the log-normaliser, the entropy, the probability mass the grammar keeps and, when the
candidates carry numeric values, the expected value under the renormalised candidate
distribution.

Three implementations with one contract (:class:`HeadOutput`):

* :func:`verdict_head_reference` - plain torch, fp32 math, exact. It never holds more than a
  bounded block of ``[positions, V]`` fp32 logits (positions are processed in chunks, a
  low-precision weight is upcast in vocabulary chunks), so a large batch on CPU does not blow
  memory. Runs everywhere.
* :func:`judgelm.scoring.triton_head.verdict_head_triton` - the fused Triton kernel: logits
  tiles are computed on the fly and reduced by a streaming log-sum-exp / entropy; ``[P, V]``
  is never written to memory.
* :func:`naive_head` - what a peer would write (full logits, ``log_softmax``, ``gather``); it
  materialises ``[P, V]`` and exists as the benchmark baseline.

:func:`verdict_head` dispatches: the kernel for CUDA tensors when triton imports, else the
reference.

Semantics shared by all three (the tests pin them):

* padding (``-1``) candidates get ``-inf`` log-probability and count nowhere;
* a candidate id repeated within a position reports the same log-probability in every slot,
  but only its first occurrence counts toward ``grammar_mass`` and ``expected`` (the mass is
  that of the *set* of allowed tokens, so it never exceeds 1);
* ``expected`` averages the finite ``cand_values`` (NaN or inf mark "not a terminal score")
  weighted by candidate probability, renormalised over those candidates; NaN when a position
  has none. The weights are computed relative to the best such candidate, so a position whose
  grammar mass underflows fp32 still gets a correct expectation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "HeadOutput",
    "naive_head",
    "triton_available",
    "verdict_head",
    "verdict_head_reference",
]

# The reference processes positions in chunks of at most this many fp32 logits ([rows, V]):
# 2**25 elements = 128 MiB, i.e. 1,048 positions of a 32k vocabulary. Two such blocks are alive
# at the peak (the log-probabilities and the entropy terms).
_REF_MAX_LOGITS = 1 << 25
# ...and upcasts a bf16/fp16 weight at most this many elements at a time ([rows, H] fp32):
# 2**24 elements = 64 MiB, instead of a full fp32 copy of W (1.6 GB for 49,152 x 8,192).
_REF_MAX_WEIGHT = 1 << 24


@dataclass(frozen=True)
class HeadOutput:
    """What the verdict head returns; every tensor is fp32 on the input device."""

    # [P, C] log softmax(z) at the candidate ids over the FULL vocabulary; -inf at padding
    cand_logprobs: Tensor
    # [P] logsumexp over the full vocabulary of z = (W h + b) / T
    lse: Tensor
    # [P] entropy (nats) of the full-vocabulary softmax at T; None when not asked for
    # (``with_entropy=False``: the torch path then skips one [P, V] exp pass)
    entropy: Tensor | None
    # [P] sum of the probabilities of the distinct candidate tokens
    grammar_mass: Tensor
    # [P] sum_c p_c v_c / sum_c p_c over finite-valued candidates (NaN if none); None without
    # cand_values
    expected: Tensor | None


# ----------------------------------------------------------------------------- validation


def _check_shapes(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    bias: Tensor | None,
    temperature: float | Tensor,
    cand_values: Tensor | None,
) -> None:
    """Shape/dtype/device checks that need no device synchronisation."""
    if hidden.dim() != 2:
        raise ValueError(f"hidden must be [P, H], got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[1]:
        raise ValueError(
            f"weight must be [V, H] with H={hidden.shape[1]}, got shape {tuple(weight.shape)}"
        )
    if weight.shape[0] == 0:
        raise ValueError("weight has an empty vocabulary")
    n_pos = hidden.shape[0]
    if cand_ids.dim() != 2 or cand_ids.shape[0] != n_pos:
        raise ValueError(f"cand_ids must be [P={n_pos}, C], got shape {tuple(cand_ids.shape)}")
    if cand_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"cand_ids must be int64 or int32, got {cand_ids.dtype}")
    for name, t in (("hidden", hidden), ("weight", weight)):
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"{name} must be fp32, fp16 or bf16, got {t.dtype}")
    tensors = {"weight": weight, "cand_ids": cand_ids}
    if bias is not None:
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must be [V={weight.shape[0]}], got shape {tuple(bias.shape)}")
        tensors["bias"] = bias
    if cand_values is not None:
        if cand_values.shape != cand_ids.shape:
            raise ValueError(
                f"cand_values must match cand_ids {tuple(cand_ids.shape)}, "
                f"got {tuple(cand_values.shape)}"
            )
        tensors["cand_values"] = cand_values
    if isinstance(temperature, Tensor):
        if temperature.dim() > 1 or (temperature.dim() == 1 and temperature.shape[0] != n_pos):
            raise ValueError(
                f"temperature must be a scalar or [P={n_pos}], got shape {tuple(temperature.shape)}"
            )
        tensors["temperature"] = temperature
    elif not (math.isfinite(float(temperature)) and float(temperature) > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    for name, t in tensors.items():
        if t.device != hidden.device:
            raise ValueError(f"{name} is on {t.device} but hidden is on {hidden.device}")


def _check_values(cand_ids: Tensor, vocab: int, temperature: float | Tensor) -> None:
    """Value checks (ids in [-1, V), temperatures > 0). One host sync on an accelerator."""
    bad = ((cand_ids < -1) | (cand_ids >= vocab)).any()
    if isinstance(temperature, Tensor):
        t = temperature.float()
        bad = bad | ~(torch.isfinite(t) & (t > 0)).all()
    if bool(bad):
        raise ValueError(
            f"cand_ids must lie in [-1, {vocab}) (-1 = padding) and temperatures must be "
            "finite and > 0"
        )


def _temperature_column(
    temperature: float | Tensor, n_pos: int, device: torch.device
) -> Tensor | float:
    """A float, or a [P, 1] fp32 column that broadcasts over the vocabulary."""
    if isinstance(temperature, Tensor):
        return temperature.to(device=device, dtype=torch.float32).expand(n_pos).reshape(n_pos, 1)
    return float(temperature)


# ----------------------------------------------------------------------------- shared epilogue


def _first_occurrence(cand_ids: Tensor) -> Tensor:
    """[P, C] bool: a non-padding id that does not appear in an earlier slot of its row."""
    n_cand = cand_ids.shape[1]
    same = cand_ids[:, :, None] == cand_ids[:, None, :]  # [P, C(i), C(j)]
    earlier = torch.ones(n_cand, n_cand, dtype=torch.bool, device=cand_ids.device).tril(-1)  # j < i
    dup = (same & earlier).any(-1)  # [P, C]
    return (cand_ids >= 0) & ~dup


def _mass_and_expected(
    cand_logprobs: Tensor, cand_ids: Tensor, cand_values: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """grammar_mass [P] and expected [P] from fp32 candidate log-probabilities [P, C]."""
    uniq = _first_occurrence(cand_ids)  # [P, C]
    neg_inf = torch.tensor(float("-inf"), device=cand_logprobs.device)
    mass = torch.where(uniq, cand_logprobs.exp(), 0.0).sum(-1)
    if cand_values is None:
        return mass, None
    if cand_ids.shape[1] == 0:  # no candidates: nothing to average (amax needs C > 0)
        return mass, torch.full_like(mass, float("nan"))
    values = cand_values.float()
    fin = uniq & torch.isfinite(values)  # [P, C] candidates that carry a score
    # Weights relative to the best scored candidate: exact ratios even when sum p underflows.
    best = torch.where(fin, cand_logprobs, neg_inf).amax(-1, keepdim=True)  # [P, 1]
    w = torch.where(fin, (cand_logprobs - best).exp(), 0.0)  # [P, C]; NaN rows masked to 0
    num = (w * torch.where(fin, values, 0.0)).sum(-1)
    den = w.sum(-1)
    expected = torch.where(den > 0, num / den, torch.full_like(num, float("nan")))
    return mass, expected


def _empty_output(hidden: Tensor, n_cand: int, with_values: bool) -> HeadOutput:
    dev = hidden.device
    z = torch.empty(0, dtype=torch.float32, device=dev)
    return HeadOutput(
        cand_logprobs=torch.empty(0, n_cand, dtype=torch.float32, device=dev),
        lse=z,
        entropy=z.clone(),
        grammar_mass=z.clone(),
        expected=z.clone() if with_values else None,
    )


# ----------------------------------------------------------------------------- reference


def verdict_head_reference(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float | Tensor = 1.0,
    cand_values: Tensor | None = None,
    with_entropy: bool = True,
) -> HeadOutput:
    """Plain-torch verdict head in fp32 (exact up to fp32 rounding); runs on any device.

    ``hidden`` [P, H], ``weight`` [V, H] (bf16/fp16/fp32), ``cand_ids`` [P, C] int (``-1`` pads),
    ``bias`` [V] or None, ``temperature`` a float or [P], ``cand_values`` [P, C] or None.
    Positions are processed in chunks, so at most ~256 MiB of fp32 temporaries is alive.
    Note: on CUDA the fp32 matmul follows torch's global TF32 switch (off by default).
    """
    _check_shapes(hidden, weight, cand_ids, bias, temperature, cand_values)
    _check_values(cand_ids, weight.shape[0], temperature)
    return _reference_impl(
        hidden,
        weight,
        cand_ids,
        bias=bias,
        temperature=temperature,
        cand_values=cand_values,
        max_logits=_REF_MAX_LOGITS,
        max_weight=_REF_MAX_WEIGHT,
        with_entropy=with_entropy,
    )


def _reference_impl(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None,
    temperature: float | Tensor,
    cand_values: Tensor | None,
    max_logits: int,
    max_weight: int,
    with_entropy: bool = True,
) -> HeadOutput:
    """The reference with explicit chunk budgets (tests shrink them to exercise chunking)."""
    n_pos, n_hid = hidden.shape
    vocab = weight.shape[0]
    n_cand = cand_ids.shape[1]
    if n_pos == 0:
        return _empty_output(hidden, n_cand, cand_values is not None)
    dev = hidden.device
    temp = _temperature_column(temperature, n_pos, dev)
    bias32 = bias.float() if bias is not None else None  # [V]
    ids = cand_ids.long()
    valid = ids >= 0  # [P, C]
    gather_ids = ids.clamp(min=0)

    rows = max(1, min(n_pos, max_logits // vocab))  # positions per chunk
    # An fp32 weight is used in place; a 16-bit one is upcast `vrows` vocabulary rows at a time.
    vrows = vocab
    if weight.dtype != torch.float32:
        vrows = max(1, min(vocab, max_weight // max(n_hid, 1)))

    cand_lp = torch.empty(n_pos, n_cand, dtype=torch.float32, device=dev)
    lse = torch.empty(n_pos, dtype=torch.float32, device=dev)
    entropy = torch.empty(n_pos, dtype=torch.float32, device=dev) if with_entropy else None
    for p0 in range(0, n_pos, rows):
        p1 = min(n_pos, p0 + rows)
        h = hidden[p0:p1].float()  # [rows, H]
        logits = torch.empty(p1 - p0, vocab, dtype=torch.float32, device=dev)  # [rows, V]
        for v0 in range(0, vocab, vrows):
            v1 = min(vocab, v0 + vrows)
            torch.matmul(h, weight[v0:v1].float().T, out=logits[:, v0:v1])  # exact bf16 products
        if bias32 is not None:
            logits += bias32
        logits /= temp if isinstance(temp, float) else temp[p0:p1]
        chunk_lse = torch.logsumexp(logits, dim=-1)  # [rows]
        logp = logits.sub_(chunk_lse[:, None])  # in place: [rows, V] log-probabilities
        if entropy is not None:
            entropy[p0:p1] = -logp.exp().mul_(logp).sum(-1)  # one [rows, V] temporary
        lse[p0:p1] = chunk_lse
        cand_lp[p0:p1] = logp.gather(1, gather_ids[p0:p1])
        del logits, logp
    cand_lp.masked_fill_(~valid, float("-inf"))
    mass, expected = _mass_and_expected(cand_lp, ids, cand_values)
    return HeadOutput(cand_lp, lse, entropy, mass, expected)


# ----------------------------------------------------------------------------- naive baseline


def naive_head(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float | Tensor = 1.0,
    cand_values: Tensor | None = None,
) -> HeadOutput:
    """The peer baseline: full logits in the model dtype, ``log_softmax``, ``gather``.

    Materialises several ``[P, V]`` tensors (the 16-bit logits, their fp32 copy, the
    log-probabilities and the probabilities). Used by the benchmark; not for production.
    """
    _check_shapes(hidden, weight, cand_ids, bias, temperature, cand_values)
    n_pos = hidden.shape[0]
    if n_pos == 0:
        return _empty_output(hidden, cand_ids.shape[1], cand_values is not None)
    b = bias.to(weight.dtype) if bias is not None else None
    logits = F.linear(hidden.to(weight.dtype), weight, b).float()  # [P, V]
    temp = _temperature_column(temperature, n_pos, hidden.device)
    z = logits / temp  # [P, V]
    logp = torch.log_softmax(z, dim=-1)  # [P, V]
    lse = z[:, 0] - logp[:, 0]  # log_softmax = z - lse
    entropy = -(logp.exp() * logp).sum(-1)
    ids = cand_ids.long()
    cand_lp = logp.gather(1, ids.clamp(min=0)).masked_fill(ids < 0, float("-inf"))
    mass, expected = _mass_and_expected(cand_lp, ids, cand_values)
    return HeadOutput(cand_lp, lse, entropy, mass, expected)


# ----------------------------------------------------------------------------- dispatcher


@functools.cache
def triton_available() -> bool:
    """Whether the Triton kernel module imports (triton installed and usable)."""
    try:
        import judgelm.scoring.triton_head  # noqa: F401
    except Exception:  # ImportError, or a triton that fails to initialise
        return False
    return True


def verdict_head(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float | Tensor = 1.0,
    cand_values: Tensor | None = None,
    backend: Literal["auto", "triton", "torch"] = "auto",
    with_entropy: bool = True,
) -> HeadOutput:
    """Candidate log-probabilities, log-normaliser, entropy, grammar mass and expected value.

    ``hidden`` [P, H]: hidden states at the verdict positions. ``weight`` [V, H]: the LM head.
    ``cand_ids`` [P, C]: candidate token ids, ``-1`` pads. ``bias`` [V] or None.
    ``temperature``: a positive float or a [P] tensor. ``cand_values`` [P, C]: numeric value of
    each candidate, NaN where it is not a terminal score.

    ``backend="auto"`` runs the fused Triton kernel when the tensors are on CUDA and triton
    imports, else the chunked fp32 reference; ``"triton"`` and ``"torch"`` force one.
    ``with_entropy=False`` lets the reference skip the entropy pass (the kernel computes it
    anyway, at no extra memory traffic).
    """
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    kwargs = {"bias": bias, "temperature": temperature, "cand_values": cand_values}
    use_triton = backend == "triton" or (
        backend == "auto" and hidden.is_cuda and triton_available()
    )
    if use_triton:
        from judgelm.scoring.triton_head import MAX_CANDIDATES, verdict_head_triton

        if backend == "auto" and cand_ids.dim() == 2 and cand_ids.shape[1] > MAX_CANDIDATES:
            return verdict_head_reference(hidden, weight, cand_ids, **kwargs, with_entropy=with_entropy)
        return verdict_head_triton(hidden, weight, cand_ids, **kwargs)
    return verdict_head_reference(hidden, weight, cand_ids, **kwargs, with_entropy=with_entropy)
