"""The verdict head: log-probabilities of the allowed next tokens over the full vocabulary.

At ``P`` verdict positions (nodes of the verdict grammar's token trie) the scorer needs, for a
handful of candidate ids (the trie children, ``C <= 16``, padded with ``-1``), their
log-probability under the full-vocabulary softmax, and the probability mass the grammar keeps.
One contract (`HeadOutput`), three implementations: `verdict_head_reference` (plain torch, fp32
math, exact, in bounded chunks of ``[positions, V]``), the fused Triton kernel
(`judgelm.scoring.triton_head`, never writes ``[P, V]``), and `naive_head` (full logits,
``log_softmax``, ``gather``: the benchmark's peer). `verdict_head` dispatches.

Shared semantics (pinned by the tests): padding candidates get ``-inf`` and count nowhere; a
candidate id repeated within a position reports the same log-probability in every slot, but
counts once toward ``grammar_mass`` (the mass of the *set* of allowed tokens, never above 1).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from judgelm.scoring.head_contract import HeadOutput, check_inputs, check_values, empty_output

__all__ = ["HeadOutput", "naive_head", "triton_available", "verdict_head", "verdict_head_reference"]

# The reference processes positions in chunks of at most this many fp32 logits ([rows, V]):
# 2**25 elements = 128 MiB, i.e. 1,048 positions of a 32k vocabulary. Two such blocks are alive
# at the peak (the log-probabilities and the entropy terms).
_REF_MAX_LOGITS = 1 << 25
# ...and upcasts a bf16/fp16 weight at most this many elements at a time ([rows, H] fp32):
# 2**24 elements = 64 MiB, instead of a full fp32 copy of W (1.6 GB for 49,152 x 8,192).
_REF_MAX_WEIGHT = 1 << 24


def _first_occurrence(cand_ids: Tensor) -> Tensor:
    """[P, C] bool: a non-padding id that does not appear in an earlier slot of its row."""
    n_cand = cand_ids.shape[1]
    same = cand_ids[:, :, None] == cand_ids[:, None, :]  # [P, C(i), C(j)]
    earlier = torch.ones(n_cand, n_cand, dtype=torch.bool, device=cand_ids.device).tril(-1)  # j < i
    dup = (same & earlier).any(-1)  # [P, C]
    return (cand_ids >= 0) & ~dup


def _grammar_mass(cand_logprobs: Tensor, cand_ids: Tensor) -> Tensor:
    """[P] probability of the distinct candidate tokens, from fp32 log-probabilities [P, C]."""
    return torch.where(_first_occurrence(cand_ids), cand_logprobs.exp(), 0.0).sum(-1)


def verdict_head_reference(
    hidden: Tensor,
    weight: Tensor,
    cand_ids: Tensor,
    *,
    bias: Tensor | None = None,
    with_entropy: bool = True,
) -> HeadOutput:
    """Plain-torch verdict head in fp32 (exact up to fp32 rounding); runs on any device.

    ``hidden`` [P, H], ``weight`` [V, H] (bf16/fp16/fp32), ``cand_ids`` [P, C] int (``-1`` pads),
    ``bias`` [V] or None. Positions are processed in chunks, so at most ~256 MiB of fp32
    temporaries is alive. On CUDA the fp32 matmul follows torch's global TF32 switch.
    """
    check_inputs(hidden, weight, cand_ids, bias)
    check_values(cand_ids, weight.shape[0])
    return _reference_impl(
        hidden,
        weight,
        cand_ids,
        bias=bias,
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
    max_logits: int,
    max_weight: int,
    with_entropy: bool = True,
) -> HeadOutput:
    """The reference with explicit chunk budgets (tests shrink them to exercise chunking)."""
    n_pos, n_hid = hidden.shape
    vocab = weight.shape[0]
    n_cand = cand_ids.shape[1]
    if n_pos == 0:
        return empty_output(hidden, n_cand)
    dev = hidden.device
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
        logp = logits.sub_(torch.logsumexp(logits, dim=-1)[:, None])  # in place: [rows, V] log-probs
        if entropy is not None:
            entropy[p0:p1] = -logp.exp().mul_(logp).sum(-1)  # one [rows, V] temporary
        cand_lp[p0:p1] = logp.gather(1, gather_ids[p0:p1])
        del logits, logp
    cand_lp.masked_fill_(~valid, float("-inf"))
    return HeadOutput(cand_lp, entropy, _grammar_mass(cand_lp, ids))


def naive_head(hidden: Tensor, weight: Tensor, cand_ids: Tensor, *, bias: Tensor | None = None) -> HeadOutput:
    """The peer baseline: full logits in the model dtype, ``log_softmax``, ``gather``.

    Materialises several ``[P, V]`` tensors (the 16-bit logits, their fp32 copy, the
    log-probabilities and the probabilities). Used by the benchmark; not for production.
    """
    check_inputs(hidden, weight, cand_ids, bias)
    if hidden.shape[0] == 0:
        return empty_output(hidden, cand_ids.shape[1])
    b = bias.to(weight.dtype) if bias is not None else None
    logp = torch.log_softmax(F.linear(hidden.to(weight.dtype), weight, b).float(), dim=-1)  # [P, V]
    entropy = -(logp.exp() * logp).sum(-1)
    ids = cand_ids.long()
    cand_lp = logp.gather(1, ids.clamp(min=0)).masked_fill(ids < 0, float("-inf"))
    return HeadOutput(cand_lp, entropy, _grammar_mass(cand_lp, ids))


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
    backend: Literal["auto", "triton", "torch"] = "auto",
    with_entropy: bool = True,
) -> HeadOutput:
    """Candidate log-probabilities, entropy and grammar mass at ``P`` positions.

    ``hidden`` [P, H]: hidden states at the verdict positions. ``weight`` [V, H]: the LM head.
    ``cand_ids`` [P, C]: candidate token ids, ``-1`` pads. ``bias`` [V] or None.

    ``backend="auto"`` runs the fused Triton kernel when the tensors are on CUDA and triton
    imports, else the chunked fp32 reference; ``"triton"`` and ``"torch"`` force one.
    ``with_entropy=False`` lets the reference skip the entropy pass (the kernel computes it
    anyway, at no extra memory traffic).
    """
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    use_triton = backend == "triton" or (backend == "auto" and hidden.is_cuda and triton_available())
    if use_triton:
        from judgelm.scoring.triton_head import MAX_CANDIDATES, verdict_head_triton

        if backend == "triton" or cand_ids.dim() != 2 or cand_ids.shape[1] <= MAX_CANDIDATES:
            return verdict_head_triton(hidden, weight, cand_ids, bias=bias)
    return verdict_head_reference(hidden, weight, cand_ids, bias=bias, with_entropy=with_entropy)
