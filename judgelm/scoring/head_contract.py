"""What every verdict-head implementation returns and accepts (`head.py`'s reference and naive
heads, `triton_head.py`'s kernel): the output type and the input checks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HeadOutput", "check_inputs", "check_values", "empty_output"]


@dataclass(frozen=True)
class HeadOutput:
    """What the verdict head returns; every tensor is fp32 on the input device."""

    # [P, C] log softmax(W h + b) at the candidate ids over the FULL vocabulary; -inf at padding
    cand_logprobs: Tensor
    # [P] entropy (nats) of the full-vocabulary softmax; None when not asked for
    # (``with_entropy=False``: the torch path then skips one [P, V] exp pass)
    entropy: Tensor | None
    # [P] sum of the probabilities of the distinct candidate tokens
    grammar_mass: Tensor


def check_inputs(hidden: Tensor, weight: Tensor, cand_ids: Tensor, bias: Tensor | None) -> None:
    """Shape/dtype/device checks that need no device synchronisation."""
    if hidden.dim() != 2:
        raise ValueError(f"hidden must be [P, H], got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"weight must be [V, H] with H={hidden.shape[1]}, got shape {tuple(weight.shape)}")
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
    for name, t in tensors.items():
        if t.device != hidden.device:
            raise ValueError(f"{name} is on {t.device} but hidden is on {hidden.device}")


def check_values(cand_ids: Tensor, vocab: int) -> None:
    """Candidate ids must lie in [-1, V). One host sync on an accelerator."""
    if bool(((cand_ids < -1) | (cand_ids >= vocab)).any()):
        raise ValueError(f"cand_ids must lie in [-1, {vocab}) (-1 = padding)")


def empty_output(hidden: Tensor, n_cand: int) -> HeadOutput:
    """The output for zero positions."""
    z = torch.empty(0, dtype=torch.float32, device=hidden.device)
    return HeadOutput(torch.empty(0, n_cand, dtype=torch.float32, device=hidden.device), z, z.clone())
